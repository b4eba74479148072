"""`aar run`: a team of researchers against the servers, all in one process, until the budgets end it.

The orchestration is deliberately thin: find or create the run directory, bring up the servers
(launched or connected) and the model backend (Claude, or the scripted researcher served
locally), start one `Agent` per researcher as an asyncio task, show them live, and write the
summary. Agents never raise (except on cancellation), so one agent's end is never the team's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from client import pgr_policy
from client.agent import Agent, AgentConfig, AgentStatus, TeamShare
from client.backends import BackendChoice, choose_backend
from client.backends.anthropic import MessagesBackend
from client.bridge import ToolBridge
from client.budget import RunClock, describe_left
from client.console.app import create_console
from client.console.front import ServerLinks
from client.console.run import LiveTeam, RunView
from client.console.serve import ConsoleOptions, console_running
from client.live_view import live_view, render_text, status_table, summary_table
from client.record import AgentLog, AgentProgress, RunDir, Tally, read_events
from client.run_manifest import RunManifest, ToolCatalogue, load_manifest, manifest_from_dict, resolve_manifest_path
from client.scripted.faults import FaultPlan
from client.scripted.server import serve_in_thread
from client.servers import LaunchedServers, ServerSet, connected_servers
from client.steering import ActionLog, TeamControls
from client.summary import build_summary, write_summary
from servers.kit.identity import operator_identity

logger = logging.getLogger(__name__)

PGR_READY_S = 1800.0
TICK_S = 5.0
"""How often run.json's elapsed time is brought up to date (a kill -9 loses at most this much of it)."""


@dataclass
class RunRequest:
    """What `aar run` was asked to do."""

    manifest: str | Path | None = None
    resume: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    agents: int | None = None
    backend: str | None = None
    runs_root: Path = Path("runs")
    live: bool = False
    faults: FaultPlan | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    announce: Callable[[str], None] = print
    console: ConsoleOptions | None = None
    """Serve the lab console while the team works (None: no console)."""
    run_dir: RunDir | None = None
    """Set once the run directory exists (so an interrupted caller can still find the summary)."""


@dataclass
class RunResult:
    run_dir: RunDir
    summary: dict[str, Any]
    text: str


def _open_run(request: RunRequest) -> tuple[RunDir, RunManifest, dict[str, Any], BackendChoice]:
    """The run directory (created only once the manifest and the backend are known to be usable)."""
    if request.resume is not None:
        run_dir = RunDir.existing(request.resume)
        info = run_dir.read_info()
        manifest = manifest_from_dict(info["manifest"], run_dir.path / "run.json", request.overrides)
        choice = choose_backend(request.backend or manifest.backend, request.environ)
    else:
        path = resolve_manifest_path(request.manifest)
        manifest = load_manifest(path, request.overrides, agents=request.agents)
        choice = choose_backend(request.backend or manifest.backend, request.environ)
        run_dir = RunDir.create(request.runs_root, manifest.name, path.read_text())
        info = {
            "run": run_dir.path.name,
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "manifest_path": str(path),
            "elapsed_s": 0.0,
            "sessions": [],
        }
    info["manifest"] = manifest.model_dump(mode="json")
    run_dir.write_info(info)
    return run_dir, manifest, info, choice


KICKOFF_ROSTER = 50
"""Teammates the kickoff names with their directions; the rest of a bigger team is one line. A
thousand agents' roster in every kickoff was a million lines to build and tokens in every call."""


def _kickoff(manifest: RunManifest, name: str, progress: AgentProgress, clock: RunClock) -> str:
    others = [agent for agent in manifest.agents if agent.name != name]
    lines = [f"- {agent.name}: {agent.direction}" for agent in others[:KICKOFF_ROSTER]]
    if len(others) > KICKOFF_ROSTER:
        lines.append(f"- and {len(others) - KICKOFF_ROSTER} more: the forum shows what they work on")
    team = "\n".join(lines)
    return string.Template(manifest.kickoff).safe_substitute(
        agent=name,
        direction=manifest.agent(name).direction,
        team=team or "- (you work alone)",
        team_size=len(manifest.agents),
        budget=describe_left(manifest.agent_budget(name), progress, clock),
    )


async def run_team(request: RunRequest) -> RunResult:
    """Run (or resume) a team to the end of its budgets; Ctrl-C (cancellation) ends it with everything saved."""
    run_dir, manifest, info, choice = _open_run(request)
    request.run_dir = run_dir
    request.announce(f"run directory: {run_dir.path}")
    request.announce(choice.note)
    catalogue = ToolCatalogue.load()
    names = [agent.name for agent in manifest.agents]
    progresses = {name: AgentProgress.from_events(read_events(run_dir.agent_log_path(name))) for name in names}
    statuses = {name: AgentStatus() for name in names}
    controls = TeamControls(ActionLog(run_dir.steering_path), names)
    live = LiveTeam(statuses, controls)
    for name, control in controls.agents.items():
        if control.paused_by is not None and control.stop_reason is None:
            request.announce(f"{name} is still paused by {control.paused_by}: resume it in the console")

    def announce(line: str) -> None:
        """Say it on the terminal and on the console's team page."""
        request.announce(line)
        live.notes.append(line)

    session: dict[str, Any] = {
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "backend": choice.kind,
    }
    info["sessions"].append(session)
    interrupted = False
    async with contextlib.AsyncExitStack() as stack:
        if request.console is not None:
            view = RunView(run_dir, live)
            await stack.enter_async_context(
                console_running(lambda access: create_console(view, access), request.console, request.announce)
            )
        operators = [operator_identity(name) for name in request.console.operators] if request.console else []
        servers = await _servers(manifest, run_dir, [*names, *operators], request.environ, stack, session)
        operator_tokens = {name: servers.tokens[name] for name in operators if name in servers.tokens}
        live.servers = ServerLinks(servers.urls, operator_tokens)
        run_dir.write_info(info)
        await _await_pgr(servers, names[0], catalogue, announce)
        clock = RunClock(manifest.budget.deadline, float(info.get("elapsed_s", 0.0)))
        backend = await _backend(choice, manifest, request.faults, stack)
        logs = {name: AgentLog(run_dir.agent_log_path(name)) for name in names}
        for log in logs.values():
            stack.callback(log.close)
        tally = Tally.of(progresses.values())
        for progress in progresses.values():
            progress.team = tally
        team = TeamShare(tally, manifest.budget.team, clock, manifest.budget.finish)
        agents = [
            Agent(
                config=AgentConfig(
                    name=name,
                    model=manifest.agent_model(name),
                    max_tokens=manifest.max_tokens,
                    system=manifest.system_prompt,
                    kickoff=_kickoff(manifest, name, progresses[name], clock),
                    budget=manifest.agent_budget(name),
                    price=manifest.price(manifest.agent_model(name)),
                    context=manifest.context,
                    retry=manifest.retry,
                ),
                backend=backend,
                bridge=ToolBridge(
                    urls=servers.urls,
                    token=servers.tokens[name],
                    allowed=manifest.allowed_tools(name, catalogue),
                    catalogue=catalogue,
                    tool_timeout_s=manifest.servers.tool_timeout,
                    reconnect_s=manifest.servers.reconnect,
                    defaults=manifest.tool_defaults(name),
                ),
                log=logs[name],
                progress=progresses[name],
                team=team,
                status=statuses[name],
                control=controls.agents[name],
            )
            for name in names
        ]

        def render() -> Any:
            return status_table(run_dir.path.name, clock, [(n, statuses[n], progresses[n]) for n in names])

        try:
            with live_view(render, enabled=request.live):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(_tick, run_dir, info, clock)
                    async with anyio.create_task_group() as team_tasks:
                        team.stop_all = team_tasks.cancel_scope.cancel
                        for agent in agents:
                            team_tasks.start_soon(agent.run, name=f"agent {agent.name}")
                    tasks.cancel_scope.cancel()
        except asyncio.CancelledError:
            interrupted = True
            raise
        finally:
            info["elapsed_s"] = round(clock.elapsed(), 1)
            session["ended_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            session["interrupted"] = interrupted
            run_dir.write_info(info)
            summary = build_summary(
                run_dir=run_dir,
                manifest_name=manifest.name,
                backend=choice.kind,
                model=manifest.model,
                elapsed_s=clock.elapsed(),
                progresses=progresses,
                interrupted=interrupted,
                stopped=team.stopped,
            )
            text = render_text(summary_table(summary))
            write_summary(run_dir, summary, text)
    return RunResult(run_dir=run_dir, summary=summary, text=text)


async def _await_pgr(servers: ServerSet, agent: str, catalogue: ToolCatalogue, announce: Callable[[str], None]) -> None:
    """Wait until the PGR server has prepared its tasks (minutes on a machine's first run), before the clock starts."""
    if "pgr" not in servers.urls:
        return
    bridge = ToolBridge(
        urls={"pgr": servers.urls["pgr"]},
        token=servers.tokens[agent],
        allowed=[pgr_policy.TASK_INFO],
        catalogue=catalogue,
        tool_timeout_s=60,
        reconnect_s=60,
    )
    async with bridge.running():
        with anyio.move_on_after(PGR_READY_S):
            await pgr_policy.wait_until_ready(bridge, announce)


async def _tick(run_dir: RunDir, info: dict[str, Any], clock: RunClock) -> None:
    while True:
        await anyio.sleep(TICK_S)
        info["elapsed_s"] = round(clock.elapsed(), 1)
        run_dir.write_info(info)


async def _servers(
    manifest: RunManifest,
    run_dir: RunDir,
    names: list[str],
    environ: Mapping[str, str],
    stack: contextlib.AsyncExitStack,
    session: dict[str, Any],
) -> ServerSet:
    if manifest.servers.mode == "connect":
        return connected_servers(manifest, dict(environ))
    launched = LaunchedServers(
        run_dir.servers_dir,
        run_dir.path / "servers.log",
        env=manifest.servers.env,
        unsafe_no_isolation=manifest.servers.unsafe_no_isolation,
    )
    stack.callback(launched.stop)
    urls = await launched.start(manifest.servers.use)
    session["servers"] = {"urls": urls, "pids": launched.pids}
    logger.info("servers: %s (data in %s)", ", ".join(urls.values()), run_dir.servers_dir)
    return ServerSet(urls=urls, tokens=await launched.create_tokens(names))


async def _backend(
    choice: BackendChoice, manifest: RunManifest, faults: FaultPlan | None, stack: contextlib.AsyncExitStack
) -> MessagesBackend:
    base_url: str | None
    if choice.kind == "scripted":
        base_url = stack.enter_context(serve_in_thread(faults or FaultPlan.from_env()))
        api_key = "scripted"
    else:
        base_url, api_key = choice.base_url, choice.api_key or ""
    backend = MessagesBackend(
        api_key=api_key, base_url=base_url, retry=manifest.retry, timeout_s=manifest.model_timeout
    )
    stack.push_async_callback(backend.close)
    return backend
