"""Benchmark of the research-team client: its own cost per turn, and how it scales with the team.

    .venv/bin/python bench/client_bench.py [--agents 9 50 200] [--seconds 30] [--out bench/results/client.json]

One `aar serve all --http` serves every run, and one scripted Messages API runs in a process of
its own (so that the scripted model's CPU is not counted as the client's). Each team is scripted
researchers (the real SDK against that API, as with Claude) for a fixed wall-clock time, with tools that do not run code
(forum, storage, sandbox files and snapshots), so that the client and the servers, not model
training, are what is measured. Reported per team size:

- turns/s and tool calls/s of the whole team;
- client CPU per turn: CPU time of the client process (the SDK, the MCP clients, records,
  budgets; not the servers, not the scripted model, which run in other processes) per turn;
- client overhead per turn: the wall time of a turn minus the model call (SDK, HTTP and the
  scripted model) and minus the tool calls (the servers): what the client adds between them
  (bookkeeping, records, budgets, and waiting for the event loop); median and 95th percentile,
  each agent's first turn apart (it opens the agent's sessions);
- memory per agent: the client process's peak RSS growth during the run, per agent.

`--model-latency S` makes the scripted API think S seconds before each answer, as a real model
does: a thousand agents then wait on the model most of the time, as they would with Claude,
instead of all competing for two cores at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from client.record import read_events  # noqa: E402
from client.scripted.faults import ENV as FAULT_PLAN_ENV  # noqa: E402
from client.servers import LaunchedServers  # noqa: E402
from client.team import RunRequest, run_team  # noqa: E402
from tests.client.support import QUICK_TOOLS  # noqa: E402

TOOLS = QUICK_TOOLS
USE = ["forum", "storage", "sandbox"]


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def manifest_text(agents: list[str], urls: dict[str, str], tokens: dict[str, str], seconds: float) -> str:
    lines = [
        'name = "bench"',
        'system_prompt = "You are a researcher."',
        f"tools = {json.dumps(TOOLS)}",
        "[servers]",
        'mode = "connect"',
        f"use = {json.dumps(USE)}",
        "[servers.urls]",
        *[f'{name} = "{urls[name]}"' for name in USE],
        "[servers.tokens]",
        *[f'{agent} = "{tokens[agent]}"' for agent in agents],
        "[budget]",
        f"deadline = {seconds}",
        "[context]",
        "compact_at_tokens = 100000",
    ]
    for agent in agents:
        lines += ["[[agents]]", f'name = "{agent}"', 'direction = "Benchmark."']
    return "\n".join(lines) + "\n"


def overheads(run_dir: Path, agents: list[str]) -> tuple[list[float], list[float]]:
    """Per turn: time between the ends of consecutive turns, minus model time, minus tool time.

    Each agent's first turn is returned apart (the second list): it includes opening the agent's
    sessions with every server, which a thousand agents all do in the same minute."""
    values: list[float] = []
    first: list[float] = []
    for agent in agents:
        previous_end: float | None = None
        model_s = tools_s = 0.0
        turns = first
        for event in read_events(run_dir / "agents" / f"{agent}.jsonl"):
            if event["type"] == "model_call":
                model_s += event["model_s"]
            elif event["type"] == "tool_result":
                tools_s += event["duration_s"]
            elif event["type"] == "message" and event["role"] == "user":
                if previous_end is not None and model_s:
                    turns.append(max(0.0, event["t"] - previous_end - model_s - tools_s))
                    turns = values
                previous_end, model_s, tools_s = event["t"], 0.0, 0.0
    return values, first


def _p95(values: list[float]) -> float | None:
    return round(1000 * statistics.quantiles(values, n=20)[-1], 2) if len(values) > 20 else None


async def one_team(
    size: int, servers: LaunchedServers, urls: dict[str, str], api_url: str, seconds: float, scratch: Path
) -> dict[str, Any]:
    agents = [f"agent{n:03d}" for n in range(size)]
    tokens = await servers.create_tokens(agents)
    path = scratch / f"bench-{size}.toml"
    path.write_text(manifest_text(agents, urls, tokens, seconds))
    baseline = rss_mib()
    peak = baseline
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mib())
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    cpu_before = sum(os.times()[:2])
    started = time.perf_counter()
    result = await run_team(
        RunRequest(
            manifest=path,
            runs_root=scratch / "runs",
            environ={"ANTHROPIC_API_KEY": "bench", "ANTHROPIC_BASE_URL": api_url},
            announce=lambda line: None,
        )
    )
    wall = time.perf_counter() - started
    cpu = sum(os.times()[:2]) - cpu_before
    done.set()
    await sampler
    team = result.summary["team"]
    per_turn, first_turns = overheads(result.run_dir.path, agents)
    stops = {row["stop_reason"] for row in result.summary["agents"]}
    return {
        "agents": size,
        "seconds": round(result.summary["elapsed_s"], 1),
        "wall_s": round(wall, 1),
        "turns": team["turns"],
        "tool_calls": team["tool_calls"],
        "turns_per_s": round(team["turns"] / result.summary["elapsed_s"], 1),
        "tool_calls_per_s": round(team["tool_calls"] / result.summary["elapsed_s"], 1),
        "client_cpu_ms_per_turn": round(1000 * cpu / max(1, team["turns"]), 1),
        "overhead_ms_median": round(1000 * statistics.median(per_turn), 2) if per_turn else None,
        "overhead_ms_p95": _p95(per_turn),
        "first_turn_overhead_ms_median": round(1000 * statistics.median(first_turns), 1) if first_turns else None,
        "first_turn_overhead_ms_p95": _p95(first_turns),
        "rss_mib_peak_growth": round(peak - baseline, 1),
        "mib_per_agent": round((peak - baseline) / size, 2),
        "stop_reasons": sorted(stops, key=str),
    }


def start_scripted_api(latency_s: float) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "client.scripted.server", "--port", str(port)]
    plan = json.dumps({"latency_s": latency_s})
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), FAULT_PLAN_ENV: plan})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # another process: poll until it listens
        with socket.socket() as attempt:
            if attempt.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}"
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the scripted Messages API did not start")


async def main_async(sizes: list[int], seconds: float, out: Path, latency_s: float) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="aar-client-bench-") as scratch_name:
        scratch = Path(scratch_name)
        servers = LaunchedServers(scratch / "servers", scratch / "servers.log", env={}, unsafe_no_isolation=False)
        api, api_url = start_scripted_api(latency_s)
        try:
            urls = await servers.start(USE)
            for size in sizes:
                print(f"running {size} agents for {seconds:g} s ...", file=sys.stderr, flush=True)
                rows.append(await one_team(size, servers, urls, api_url, seconds, scratch))
        finally:
            servers.stop()
            api.terminate()
            api.wait(10)
    header = (
        f"{'agents':>6} {'turns/s':>8} {'tools/s':>8} {'CPU ms/turn':>12} {'overhead ms (p50/p95)':>22}"
        f" {'MiB/agent':>10} {'turns':>7} {'1st turn ms (p50/p95)':>22}"
    )
    print(header)
    for row in rows:
        overhead = f"{row['overhead_ms_median']}/{row['overhead_ms_p95']}"
        print(
            f"{row['agents']:>6} {row['turns_per_s']:>8} {row['tool_calls_per_s']:>8}"
            f" {row['client_cpu_ms_per_turn']:>12} {overhead:>22}"
            f" {row['mib_per_agent']:>10} {row['turns']:>7}"
            f" {row['first_turn_overhead_ms_median']}/{row['first_turn_overhead_ms_p95']}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "python": platform.python_version(),
        "cpus": __import__("os").cpu_count(),
        "platform": platform.platform(),
    }
    result = {"machine": machine, "seconds": seconds, "model_latency_s": latency_s, "rows": rows}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[9, 50, 200])
    parser.add_argument("--seconds", type=float, default=30.0, help="wall-clock time of each team")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "client.json")
    parser.add_argument("--model-latency", type=float, default=0.0, help="seconds the scripted model thinks per call")
    args = parser.parse_args()
    asyncio.run(main_async(args.agents, args.seconds, args.out, args.model_latency))


if __name__ == "__main__":
    main()
