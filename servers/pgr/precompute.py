"""Heavy label-side work in a process of its own, so the server's request path never waits for it.

``python -m servers.pgr.precompute prepare`` caches every scored task's seeds (features, splits,
weak labels, frozen ceilings, decoys), printing one ``prepared TASK SEED`` line to stdout per seed
so the server can report its progress; ``ceilings`` trains the fine-tuned ceilings (every scored task,
seed and decoy) into the shared disk cache; ``reference`` scores the reference method
(aux_confidence) on every scored task and writes its mean PGR per task, which the transfer check
compares a submission's gains with. Both are trusted server code: no agent code runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from servers.pgr.testbed import TaskBench
from servers.w2s.api import FINETUNE
from servers.w2s.evaluate import evaluate
from servers.w2s.methods import BASELINES

__all__ = ["REFERENCE_METHOD", "main"]

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


def reference_means(bench: TaskBench, cache_dir: Path) -> dict[str, float]:
    """Mean test PGR of the reference method per scored task (where defined)."""
    means: dict[str, float] = {}
    for name, task in bench.scored.items():
        results = evaluate(task, BASELINES[REFERENCE_METHOD], bench.seeds, cache_dir=cache_dir)
        values = [result.pgr for result in results if result.pgr is not None]
        if values:
            means[name] = float(np.mean(values))
        print(f"reference {name}: {means.get(name)}", file=sys.stderr, flush=True)
    return means


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
        out.write_text(json.dumps({"method": REFERENCE_METHOD, "means": reference_means(bench, args.cache_dir)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
