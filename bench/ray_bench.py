"""What AAR_EXECUTOR=ray costs and buys on this machine: a real loopback Ray cluster of N worker nodes.

1. Scheduling overhead per sandbox command: `exec("true")` through the local Sandbox and through an
   agent's Ray actor (RaySandbox), median of --commands calls each.
2. Overhead per official run: one isolated run (`true` writing its output file) through LocalRuns and
   through RayRuns (a Ray task that opens a sandbox on the node), median of --runs each.
3. Throughput: nine agents' official runs (--work-s CPU-seconds each, a stand-in for a method) on 1, 2
   and 3 worker nodes; runs per hour, and official submissions per hour at --runs-per-submission.

Every node is on 127.0.0.1 in this one machine, so (3) is bounded by its cores, not by the nodes:
see bench/README.md for what to expect on real nodes. Prints a table, writes bench/results/ray.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # keep every Ray address on loopback
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from servers.cluster.node_sandbox import NodeSandboxSpec
from servers.cluster.sandbox_actors import RaySandbox
from servers.kit.settings import Settings
from servers.pgr.isolated_runs import LocalRuns, RunRequest
from servers.pgr.ray_runs import RayRuns
from servers.sandbox.server import sandbox_config
from servers.sandbox.store import Sandbox
from servers.w2s.api import FINETUNE, FROZEN
from tests.ray.support import LocalCluster

AGENTS = 9


def _request(run_id: str, command: str) -> RunRequest:
    return RunRequest(run_id, FROZEN, {"in.txt": b"x"}, command, 600.0, "out.txt")


async def _median_ms(calls: int, call) -> float:  # type: ignore[no-untyped-def]
    await call(-1)  # warm: actor placement, worker start, imports
    times = []
    for index in range(calls):
        started = time.perf_counter()
        await call(index)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def overheads(cluster: LocalCluster, root: Path, commands: int, runs: int) -> dict[str, float]:
    config = sandbox_config(Settings(data_dir=root / "local"))
    local = await Sandbox.open(config)
    ray_sandbox = await RaySandbox.open(NodeSandboxSpec(config, False), root / "nodes")
    specs = {mode: NodeSandboxSpec(config, False) for mode in (FROZEN, FINETUNE)}
    ray_runs = RayRuns(specs, root / "nodes", cpus=1, retries=0)
    local_runs = LocalRuns({FROZEN: local, FINETUNE: local})
    run_command = "cp in.txt out.txt"
    try:
        figures = {
            "exec_local_ms": await _median_ms(commands, lambda i: local.exec("bench", "true")),
            "exec_ray_ms": await _median_ms(commands, lambda i: ray_sandbox.exec("bench", "true")),
            "run_local_ms": await _median_ms(runs, lambda i: local_runs.execute(_request(f"l{i}", run_command))),
            "run_ray_ms": await _median_ms(runs, lambda i: ray_runs.execute(_request(f"r{i}", run_command))),
        }
    finally:
        await local.close()
        await ray_sandbox.close()
    figures["exec_added_ms"] = figures["exec_ray_ms"] - figures["exec_local_ms"]
    figures["run_added_ms"] = figures["run_ray_ms"] - figures["run_local_ms"]
    return figures


async def throughput(root: Path, runs: int, work_s: float) -> float:
    """Runs per hour for nine agents' runs (runs in all) on the cluster as it is."""
    config = sandbox_config(Settings(data_dir=root / "unused"))
    specs = {mode: NodeSandboxSpec(config, False) for mode in (FROZEN, FINETUNE)}
    ray_runs = RayRuns(specs, root / "nodes", cpus=1, retries=0)
    spin = f"python -c 'import time\nwhile time.process_time() < {work_s}: pass' && cp in.txt out.txt"
    await ray_runs.execute(_request("warm", "cp in.txt out.txt"))
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(ray_runs.execute(_request(f"t{i}", spin)) for i in range(runs)))
    elapsed = time.perf_counter() - started
    assert all(outcome.output == "x" for outcome in outcomes), outcomes[0]
    return runs / elapsed * 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=30)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--work-s", type=float, default=2.0, help="CPU-seconds of one stand-in official run")
    parser.add_argument("--runs-per-agent", type=int, default=2)
    parser.add_argument("--runs-per-submission", type=int, default=15, help="3 public + 2 secret tasks x 3")
    parser.add_argument("--max-nodes", type=int, default=3)
    args = parser.parse_args()
    import ray

    results: dict[str, object] = {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as folder:
        root = Path(folder)
        cluster = LocalCluster.start()
        try:
            results |= asyncio.run(overheads(cluster, root, args.commands, args.runs))
            per_nodes = {}
            for count in range(1, args.max_nodes + 1):
                while len(cluster.nodes) > count:
                    cluster.kill(sorted(cluster.nodes)[-1])
                while len(cluster.nodes) < count:
                    cluster.add(f"node-{len(cluster.nodes)}")
                runs_per_hour = asyncio.run(throughput(root, AGENTS * args.runs_per_agent, args.work_s))
                per_nodes[count] = {
                    "runs_per_hour": round(runs_per_hour),
                    "submissions_per_hour": round(runs_per_hour / args.runs_per_submission, 1),
                }
            results["throughput"] = per_nodes
        finally:
            ray.shutdown()
            cluster.cluster.shutdown()
    results["load_after"] = os.getloadavg()[0]
    print(f"{'measure':40} value")
    for key in ("exec_local_ms", "exec_ray_ms", "exec_added_ms", "run_local_ms", "run_ray_ms", "run_added_ms"):
        print(f"{key:40} {results[key]:.1f}")
    for count, row in per_nodes.items():
        print(f"{count} worker node(s): {row['runs_per_hour']} runs/h, {row['submissions_per_hour']} submissions/h")
    out = Path(__file__).parent / "results" / "ray.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
