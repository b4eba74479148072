"""Helpers for client tests: write run manifests, run a team in-process, read its records."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from client.record import RunDir, read_events
from client.scripted.faults import Fault, FaultPlan
from client.team import RunRequest, RunResult, run_team
from tests.support import HttpServer

QUICK_TOOLS = [
    "forum__*",
    "storage__*",
    "sandbox__write_file",
    "sandbox__read_file",
    "sandbox__save_snapshot",
    "sandbox__load_snapshot",
]
"""Everything but running code and scoring: a researcher cycles in well under a second."""


def toml_value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def write_manifest(
    directory: Path,
    *,
    agents: Iterable[str],
    server: HttpServer | None = None,
    use: list[str] | None = None,
    tools: list[str] | None = QUICK_TOOLS,
    agent_budget: dict[str, Any] | None = None,
    team_budget: dict[str, Any] | None = None,
    budgets: dict[str, dict[str, Any]] | None = None,
    extra: str = "",
    servers_extra: str = "",
) -> Path:
    """A run manifest; with `server`, in connect mode against it (one token per agent)."""
    agents = list(agents)
    use = use or ["forum", "storage", "sandbox"]
    lines = ['name = "test"', 'system_prompt = "You are a researcher."']
    if tools is not None:
        lines.append(f"tools = {toml_value(tools)}")
    lines.append(textwrap.dedent(extra))
    lines += ["[servers]", f"use = {toml_value(use)}", servers_extra]
    if server is not None:
        lines.append('mode = "connect"')
        lines += ["[servers.urls]", *[f"{name} = {toml_value(server.url(name))}" for name in use]]
        lines += ["[servers.tokens]", *[f"{agent} = {toml_value(server.token(agent))}" for agent in agents]]
    lines += ["[retry]", "initial_s = 0.01", "max_s = 0.05"]
    lines += [
        "[budget.agent]",
        *[f"{k} = {toml_value(v)}" for k, v in ({"turns": 6} if agent_budget is None else agent_budget).items()],
    ]
    lines += ["[budget.team]", *[f"{k} = {toml_value(v)}" for k, v in (team_budget or {}).items()]]
    for agent in agents:
        lines += ["[[agents]]", f'name = "{agent}"', f'direction = "Direction of {agent}."']
        if budgets and agent in budgets:
            lines += ["[agents.budget]", *[f"{k} = {toml_value(v)}" for k, v in budgets[agent].items()]]
    path = directory / "manifest.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def run(directory: Path, manifest: Path, *faults: Fault, **request: Any) -> RunResult:
    """Run the team in this process with the scripted researcher (no API key in its environment)."""
    return await run_team(
        RunRequest(
            manifest=manifest,
            runs_root=directory / "runs",
            faults=FaultPlan(faults=list(faults)),
            environ={},
            announce=lambda line: None,
            **request,
        )
    )


def events(run_dir: RunDir | Path, agent: str, kind: str | None = None) -> list[dict[str, Any]]:
    path = run_dir.path if isinstance(run_dir, RunDir) else run_dir
    found = read_events(path / "agents" / f"{agent}.jsonl")
    return [event for event in found if kind is None or event["type"] == kind]


def stop_reason(run_dir: RunDir | Path, agent: str) -> str:
    return events(run_dir, agent, "stop")[-1]["reason"]  # type: ignore[no-any-return]
