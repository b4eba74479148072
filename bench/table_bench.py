"""Issue 14's whole table in one sitting: every row measured in the same run, on the same machine state.

    .venv/bin/python bench/table_bench.py --study-repo /tmp/study --study-bin /tmp/studyvenv/bin

Runs, one after the other, each as its own process (so that none shares an event loop or a core's
warm caches with the next):

1. `anchor_bench.py`: the study's Flask server beside AAR Lab's forum under the same `wrk` load
   (posts/s, search p50 for a word in every post and for a rare word, catching up);
2. `client_bench.py --agents 1000 --model-latency 10`: the client's overhead per turn at 1,000
   scripted agents whose model thinks 10 s per call, as a real one does;
3. `sandbox_bench.py`: `exec` overhead over a bare subprocess;
4. a first `aar run` on a fresh data directory (no testbed cache, no reference scores): the
   newcomer's first wait, in phases read from the run's own summary.

Prints the table with each aim and whether it is met, and writes bench/results/table.json (the
per-bench JSON files sit beside it). Takes 20-30 minutes on two cores, most of it the first run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def run_bench(script: str, *args: str) -> None:
    print(f"== {script} {' '.join(args)}", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT, check=True)


def first_run(scratch: Path) -> dict[str, Any]:
    """Time `aar run` on an empty data directory; its summary says how long the team's clock ran."""
    env = {**os.environ, "AAR_DATA_DIR": str(scratch / "data")}
    env.pop("ANTHROPIC_API_KEY", None)
    print("== aar run on a fresh data directory", file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run([str(ROOT / ".venv" / "bin" / "aar"), "run", "--runs-dir", str(scratch / "runs")],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - started
    [summary_path] = (scratch / "runs").glob("*/summary.json")
    summary = json.loads(summary_path.read_text())
    return {
        "wall_s": round(wall, 1),
        "team_clock_s": summary["elapsed_s"],
        "before_the_clock_s": round(wall - summary["elapsed_s"], 1),
        "submissions": summary["team"]["submissions"],
        "best_pgr": summary["team"]["best_pgr"],
    }


def median_of(rows: list[dict[str, Any]], endpoint: str, server: str, key: str) -> float:
    return statistics.median(float(row[key]) for row in rows if row["endpoint"] == endpoint and row["server"] == server)


def table(
    anchor: dict[str, Any], client: dict[str, Any], sandbox: dict[str, Any], first: dict[str, Any]
) -> list[tuple[str, str, str, str, bool]]:
    """(measure, study, AAR Lab, aim, met) rows, in the issue's order."""
    rows = anchor["rows"]
    study_posts, aar_posts = (median_of(rows, "post", server, "per_second") for server in ("study", "aar"))
    aar_post_p99 = median_of(rows, "post", "aar", "p99_ms")
    search = {
        endpoint: (median_of(rows, endpoint, "study", "p50_ms"), median_of(rows, endpoint, "aar", "p50_ms"))
        for endpoint in ("search, common word", "search, rare word")
    }
    dump, feed = anchor["catch_up"]["study: full dump"], anchor["catch_up"]["forum: feed of 100 new posts"]
    [agents] = client["rows"]
    exec_added = sandbox["exec"]["added_p50_ms"]
    out = [
        ("forum posts per second, 9 connections", f"{study_posts:.0f}", f"{aar_posts:.0f} (p99 {aar_post_p99:.0f} ms)",
         "1.5x the study's, p99 < 30 ms", aar_posts >= 1.5 * study_posts and aar_post_p99 < 30),
    ]  # fmt: skip
    for endpoint, (study_p50, aar_p50) in search.items():
        out.append((f"{endpoint}, p50", f"{study_p50:.0f} ms", f"{aar_p50:.1f} ms", "< 10 ms", aar_p50 < 10))
    out += [
        ("catching up on 100 new posts", f"full dump, {dump['bytes'] / 1e6:.1f} MB, {dump['ms']:.0f} ms",
         f"{feed['bytes'] / 1e3:.0f} KB, {feed['ms']:.1f} ms", "keep", feed["ms"] < dump["ms"]),
        (f"client, {agents['agents']} scripted agents, p95 overhead per turn", "-",
         f"{agents['overhead_ms_p95']} ms ({agents['turns']} turns)", "< 50 ms",
         agents["overhead_ms_p95"] is not None and agents["overhead_ms_p95"] < 50),
        ("first `aar run` on a fresh data directory", "-",
         (f"{first['wall_s'] / 60:.1f} min (team clock {first['team_clock_s'] / 60:.1f} min, "
          f"before it {first['before_the_clock_s'] / 60:.1f} min)"), "< 4 min", first["wall_s"] < 240),
        ("sandbox `exec` overhead over a bare subprocess, p50", "-", f"{exec_added} ms", "< 10 ms", exec_added < 10),
    ]  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study-repo", type=Path, required=True, help="A checkout of the study's harness.")
    parser.add_argument("--study-bin", type=Path, required=True, help="bin/ of a venv with gunicorn and flask.")
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--client-seconds", type=int, default=120)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    paths = {name: RESULTS / f"table-{name}.json" for name in ("anchor", "client", "sandbox")}
    run_bench("anchor_bench.py", "--study-repo", str(args.study_repo), "--study-bin", str(args.study_bin),
              "--json", str(paths["anchor"]))  # fmt: skip
    run_bench("client_bench.py", "--agents", str(args.agents), "--model-latency", "10",
              "--seconds", str(args.client_seconds), "--out", str(paths["client"]))  # fmt: skip
    run_bench("sandbox_bench.py", str(paths["sandbox"]))
    with tempfile.TemporaryDirectory(prefix="aar-first-run-") as scratch:
        first = first_run(Path(scratch))
    anchor, client, sandbox = (json.loads(paths[name].read_text()) for name in ("anchor", "client", "sandbox"))
    rows = table(anchor, client, sandbox, first)
    print("\n| measure | study's server | AAR Lab | aim | met |\n|---|---|---|---|---|")
    for measure, study, aar, aim, met in rows:
        print(f"| {measure} | {study} | {aar} | {aim} | {'yes' if met else '**no**'} |")
    load_after = os.getloadavg()
    print(f"\nload average before {load_before[0]:.1f}, after {load_after[0]:.1f}; {os.cpu_count()} CPUs")
    (RESULTS / "table.json").write_text(json.dumps({
        "rows": [dict(zip(("measure", "study", "aar", "aim", "met"), row, strict=True)) for row in rows],
        "first_run": first, "load": [load_before[0], load_after[0]],
    }, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
