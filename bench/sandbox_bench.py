"""Sandbox overhead: exec of a trivial command vs a bare subprocess, an agent's first exec (it starts the
agent's box), job start time, concurrent jobs sustained.

Usage: python bench/sandbox_bench.py [RESULTS.json]   (default bench/results/sandbox.json)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from servers.sandbox import Sandbox, SandboxConfig, SandboxLimits

EXEC_RUNS = 40
BOX_RUNS = 10
JOB_RUNS = 20
CONCURRENCY_LEVELS = (8, 16, 32, 64)
HOLD_S = 3.0


def _quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 1),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 1),
    }


async def _bare(command: str) -> float:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        "/bin/bash", "-c", command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    await process.communicate()
    return time.perf_counter() - started


async def _sandboxed(sandbox: Sandbox, command: str) -> float:
    return await _sandboxed_as(sandbox, "bench", command)


async def bench_exec(sandbox: Sandbox) -> dict[str, object]:
    await _sandboxed(sandbox, "true")
    bare = [await _bare("true") for _ in range(EXEC_RUNS)]
    boxed = [await _sandboxed(sandbox, "true") for _ in range(EXEC_RUNS)]
    return {
        "runs": EXEC_RUNS,
        "bare_subprocess": _quantiles(bare),
        "sandbox_exec": _quantiles(boxed),
        "added_p50_ms": round((statistics.median(boxed) - statistics.median(bare)) * 1000, 1),
    }


async def bench_first_exec(sandbox: Sandbox) -> dict[str, object]:
    """The first exec of a new agent: bubblewrap and the box's init start before the command runs."""
    first = [await _sandboxed_as(sandbox, f"new-{n}", "true") for n in range(BOX_RUNS)]
    return {"runs": BOX_RUNS, "first_exec": _quantiles(first)}


async def _sandboxed_as(sandbox: Sandbox, agent: str, command: str) -> float:
    started = time.perf_counter()
    result = await sandbox.exec(agent, command)
    assert result.exit_code == 0, result
    return time.perf_counter() - started


async def bench_job_start(sandbox: Sandbox) -> dict[str, object]:
    """start_job's own latency, and the round trip of a trivial job (queued, sandboxed, run, recorded)."""
    submit, round_trip = [], []
    for _ in range(JOB_RUNS):
        started = time.perf_counter()
        job = await sandbox.start_job("bench", "trivial", "true")
        submit.append(time.perf_counter() - started)
        info = await sandbox.wait_job("bench", job, timeout=60)
        round_trip.append(time.perf_counter() - started)
        assert info.state.value == "succeeded", info
    return {"runs": JOB_RUNS, "start_job_call": _quantiles(submit), "trivial_job_round_trip": _quantiles(round_trip)}


async def bench_concurrency(sandbox: Sandbox) -> list[dict[str, object]]:
    """K jobs from K agents, each holding HOLD_S seconds: sustained when all run at once and end near HOLD_S."""
    rows: list[dict[str, object]] = []
    for level in CONCURRENCY_LEVELS:
        started = time.perf_counter()
        jobs = [(f"agent-{n}", await sandbox.start_job(f"agent-{n}", "hold", f"sleep {HOLD_S}")) for n in range(level)]
        infos = [await sandbox.wait_job(agent, job, timeout=300) for agent, job in jobs]
        elapsed = time.perf_counter() - started
        ok = sum(info.state.value == "succeeded" for info in infos)
        starts = [info.started_at.timestamp() for info in infos if info.started_at]
        peak = max(starts) - min(starts)
        rows.append(
            {
                "jobs": level,
                "succeeded": ok,
                "all_started_within_s": round(peak, 2),
                "wall_s": round(elapsed, 2),
                "sustained": ok == level and elapsed < HOLD_S * 2,
            }
        )
    return rows


async def main(output: Path) -> dict[str, object]:
    limits = SandboxLimits(
        max_running_jobs_total=max(CONCURRENCY_LEVELS),
        max_running_jobs_per_agent=JOB_RUNS,
        max_queued_jobs_per_agent=JOB_RUNS,
    )
    with tempfile.TemporaryDirectory() as data_dir:
        sandbox = await Sandbox.open(SandboxConfig(data_dir=Path(data_dir), limits=limits))
        try:
            results = {
                "machine": {
                    "cpus": os.cpu_count(),
                    "cgroups": sandbox.cgroup_version,
                    "python": sys.version.split()[0],
                },
                "exec": await bench_exec(sandbox),
                "first_exec": await bench_first_exec(sandbox),
                "job_start": await bench_job_start(sandbox),
                "concurrent_jobs": await bench_concurrency(sandbox),
            }
        finally:
            await sandbox.close()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    _print_table(results)
    print(f"\nwritten to {output}")
    return results


def _print_table(results: dict[str, Any]) -> None:
    exec_ = results["exec"]
    jobs = results["job_start"]
    print(f"{'measure':<36}{'p50 ms':>10}{'p90 ms':>10}")
    for label, row in (
        ("bare subprocess (bash -c true)", exec_["bare_subprocess"]),
        ("sandbox exec (bash -c true)", exec_["sandbox_exec"]),
        ("an agent's first exec (box start)", results["first_exec"]["first_exec"]),
        ("start_job call", jobs["start_job_call"]),
        ("trivial job, start to finished", jobs["trivial_job_round_trip"]),
    ):
        print(f"{label:<36}{row['p50_ms']:>10}{row['p90_ms']:>10}")
    print(f"{'exec overhead added at p50':<36}{exec_['added_p50_ms']:>10}")
    print(f"\n{'concurrent jobs':>16}{'succeeded':>11}{'start spread s':>16}{'wall s':>8}{'sustained':>11}")
    for row in results["concurrent_jobs"]:
        print(
            f"{row['jobs']:>16}{row['succeeded']:>11}{row['all_started_within_s']:>16}{row['wall_s']:>8}{row['sustained']!s:>11}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "output", nargs="?", type=Path, default=Path(__file__).resolve().parent / "results" / "sandbox.json"
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(main(parser.parse_args().output))
