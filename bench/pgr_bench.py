"""PGR server timings: preparing the testbed cold and warm, one official submission (every task,
5 seeds, shuffled-teacher control included), and quick evaluations per hour.

    .venv/bin/python bench/pgr_bench.py [--json bench/results/pgr.json] [--cold]

`--cold` also measures with an empty feature cache (minutes: it embeds every task's texts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from servers import catalog
from servers.kit.settings import Settings
from servers.storage.store import open_repository

METHOD = "from servers.w2s.methods.aux_confidence import aux_confidence as method\n"


async def measure(cache_dir: Path, data_dir: Path, evaluations: int) -> dict[str, Any]:
    settings = Settings(
        data_dir=data_dir,
        w2s_cache_dir=cache_dir,
        pgr_evaluations_per_hour=evaluations + 1,
        pgr_team_evaluations_per_hour=evaluations + 1,
    )
    snapshot = await (await open_repository(settings)).save(
        agent="bench", files={"method.py": METHOD}, message="bench", based_on=None, delete=[]
    )
    started = time.perf_counter()
    async with Client(catalog.factory("pgr")(settings, local_agent="bench")) as client:
        while not (info := (await client.call_tool("task_info", {})).structured_content)["ready"]:
            await asyncio.sleep(1)  # the server prepares its data in a child process
        prepared = time.perf_counter() - started
        task = info["tasks"][0]
        rng = random.Random(0)  # distinct, far-apart predictions: each one is scored, none answered from history
        queries = ["".join(rng.choice("01") for _ in range(task["sizes"]["validation"])) for _ in range(evaluations)]
        started = time.perf_counter()
        for predictions in queries:
            await client.call_tool("evaluate_predictions", {"task": task["name"], "predictions": predictions})
        per_evaluation = (time.perf_counter() - started) / evaluations
        started = time.perf_counter()
        submitted = await client.call_tool("submit", {"snapshot": snapshot.id, "entry_point": "method.py:method"})
        submission_id = submitted.structured_content["id"]
        while True:
            result = (await client.call_tool("submission", {"submission_id": submission_id})).structured_content
            if result["state"] in ("done", "flagged", "failed"):
                break
            await asyncio.sleep(0.5)
        submission_s = time.perf_counter() - started
    return {
        "prepare_s": prepared,
        "submission_s": submission_s,
        "submission_state": result["state"],
        "bundles": result["progress"]["total"],
        "pgr_mean": result["pgr_mean"],
        "evaluation_ms": 1000 * per_evaluation,
        "evaluations_per_hour_capacity": 3600 / per_evaluation,
    }


async def run(cold: bool, cache_dir: Path | None) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="aar-pgr-bench-") as scratch:
        cache = cache_dir or Path(scratch) / "cache"
        if cold:
            rows.append({"cache": "cold", **await measure(Path(scratch) / "cold-cache", Path(scratch) / "cold", 20)})
        else:
            await measure(cache, Path(scratch) / "warmup", 1)  # fill the cache
        rows.append(
            {
                "cache": "warm",
                **await measure(cache if not cold else Path(scratch) / "cold-cache", Path(scratch) / "warm", 50),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=Path("bench/results/pgr.json"))
    parser.add_argument("--cold", action="store_true", help="Start from an empty feature cache.")
    parser.add_argument("--cache-dir", type=Path, help="Reuse this feature cache (warm runs only).")
    args = parser.parse_args()
    rows = asyncio.run(run(args.cold, args.cache_dir))
    print(f"{'cache':5} {'prepare s':>10} {'submission s':>13} {'bundles':>8} {'eval ms':>8} {'evals/h capacity':>17}")
    for row in rows:
        print(
            f"{row['cache']:5} {row['prepare_s']:10.1f} {row['submission_s']:13.1f} {row['bundles']:8d}"
            f" {row['evaluation_ms']:8.1f} {row['evaluations_per_hour_capacity']:17.0f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
