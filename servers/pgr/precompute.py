"""Heavy label-side work in a process of its own, so the server's request path never waits for it.

``python -m servers.pgr.precompute prepare`` caches every scored task's seeds (features, splits,
weak labels, frozen ceilings, decoys), printing one ``prepared TASK SEED`` line to stdout per seed
so the server can report its progress; ``ceilings`` trains the fine-tuned ceilings (every scored task,
seed and decoy) into the shared disk cache; ``reference`` scores the reference method
(aux_confidence) on every scored task and writes its mean PGR per task, which the transfer check
compares a submission's gains with. Both are trusted server code: no agent code runs.
The reference's scores are cached too, per task, keyed by the task's data and recipe, the seeds and
the testbed's code (every module of servers/w2s): a server over a new data directory, or the next
`aar run`, reuses them instead of training the reference method again on every task.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import logging
import sys
from pathlib import Path

import numpy as np

from servers.pgr.testbed import TaskBench
from servers.w2s.api import FINETUNE
from servers.w2s.cache import CacheMiss
from servers.w2s.evaluate import evaluate
from servers.w2s.methods import BASELINES
from servers.w2s.tasks import Task
from servers.w2s.testbed import CACHE_VERSION

__all__ = ["REFERENCE_METHOD", "cached_reference_means", "main"]

logger = logging.getLogger(__name__)

REFERENCE_METHOD = "aux_confidence"


def _bench(args: argparse.Namespace) -> TaskBench:
    return TaskBench(args.tasks_dir, args.secret_dir, args.cache_dir, args.seeds, args.key_file.read_bytes())


def prepare(bench: TaskBench) -> None:
    for task in bench.scored:
        for seed in bench.seeds:
            bench.prepare(task, seed)
            print(f"prepared {task} {seed}", flush=True)


def ceilings(bench: TaskBench) -> None:
    for task in bench.scored:
        for seed in bench.seeds:
            for control in ("none", "decoy"):
                bench.seed_data(task, seed, FINETUNE, control)
                print(f"ceiling {task} seed {seed} {control}", file=sys.stderr, flush=True)


@functools.cache
def _testbed_code() -> str:
    """A hash of every module of servers/w2s: the reference's score depends on the method and the testbed."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1] / "w2s"
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _reference_key(task: Task, seeds: list[int]) -> dict[str, object]:
    spec = task.spec
    recipe = {part: dataclasses.asdict(getattr(spec, part)) for part in ("fractions", "weak", "strong", "head")}
    recipe["finetune"] = dataclasses.asdict(spec.finetune)
    return {"v": CACHE_VERSION, "method": REFERENCE_METHOD, "code": _testbed_code(), "data": task.data_hash,
            "recipe": recipe, "seeds": seeds}  # fmt: skip


def reference_means(bench: TaskBench) -> dict[str, float]:
    """Mean test PGR of the reference method per scored task (where defined), from the bench's cache where
    it is stored there (PGR per seed, NaN where undefined), else scored and stored."""
    cache = bench.testbed.cache

    def score(task: Task) -> dict[str, np.ndarray]:
        results = evaluate(task, BASELINES[REFERENCE_METHOD], bench.seeds, cache_dir=cache.root)
        return {"pgr": np.array([np.nan if result.pgr is None else result.pgr for result in results])}

    means: dict[str, float] = {}
    for name, task in bench.scored.items():
        key = _reference_key(task, bench.seeds)
        pgr = cache.get_or_compute("reference", key, functools.partial(score, task))["pgr"]
        if not np.isnan(pgr).all():
            means[name] = float(np.nanmean(pgr))
        print(f"reference {name}: {means.get(name)}", file=sys.stderr, flush=True)
    return means


def cached_reference_means(bench: TaskBench) -> dict[str, float] | None:
    """`reference_means` from the cache alone; None, having trained nothing, unless every task is there."""
    try:
        with bench.testbed.cache.stored_only("reference"):
            return reference_means(bench)
    except CacheMiss:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servers.pgr.precompute", description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=["prepare", "ceilings", "reference"])
    parser.add_argument("--tasks-dir", type=Path)
    parser.add_argument("--secret-dir", type=Path)
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--seeds", type=int, required=True)
    parser.add_argument("--key-file", type=Path, required=True)
    parser.add_argument("--out", type=Path, help="reference: where to write the JSON result")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    bench = _bench(args)
    if args.job == "prepare":
        prepare(bench)
    elif args.job == "ceilings":
        ceilings(bench)
    else:
        out = args.out or Path("reference.json")
        out.write_text(json.dumps({"method": REFERENCE_METHOD, "means": reference_means(bench)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
