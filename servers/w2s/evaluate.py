"""Evaluate a method on a task over seeds: weak, ceiling and W2S accuracy and PGR per seed.

The method sees only ``MethodInput`` (no labels). The controls (``servers.w2s.controls``) hand it a
shuffled or a decoy teacher: a method that follows its teacher loses its score under the first and
learns the decoy under the second; one that ignores the teacher does neither, which is how the
server flags it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from servers.w2s.api import Method, StrongMode, strong_mode
from servers.w2s.controls import CONTROLS, Control, control_accuracy, decoy_task, shuffled_order
from servers.w2s.scoring import accuracy, pgr, to_labels
from servers.w2s.splits import EvalSplit
from servers.w2s.tasks import Task, load_task
from servers.w2s.testbed import Testbed

__all__ = ["Control", "SeedResult", "default_cache_dir", "evaluate"]

logger = logging.getLogger(__name__)

LOCAL_CONTROL_KEY = b"local"
"""Controls run here (baseline tables) use a fixed key; the PGR server uses its own secret one."""


@dataclass(frozen=True, kw_only=True)
class SeedResult:
    """One seed's scores; ``pgr`` is None when the ceiling-minus-weak gap is too small to divide by."""

    task: str
    seed: int
    split: EvalSplit
    control: Control
    mode: StrongMode
    acc_weak: float
    acc_ceiling: float
    acc_w2s: float
    pgr: float | None


def default_cache_dir(data_dir: Path) -> Path:
    """Where the cache lives unless a cache dir is given."""
    return Path(data_dir) / "w2s-cache"


def evaluate(
    task: str | Path | Task,
    method: Method,
    seeds: Iterable[int] = range(5),
    *,
    split: EvalSplit = "test",
    control: Control = "none",
    data_dir: Path = Path("data"),
    cache_dir: Path | None = None,
    tasks_root: Path | None = None,
    control_key: bytes = LOCAL_CONTROL_KEY,
) -> list[SeedResult]:
    """Run method on each seed of the task and score it on the split (``test`` or ``validation``)."""
    if split not in ("validation", "test"):
        raise ValueError(f"split must be 'validation' or 'test', got {split!r}")
    if control not in CONTROLS:
        raise ValueError(f"control must be one of {CONTROLS}, got {control!r}")
    loaded = task if isinstance(task, Task) else load_task(task, tasks_root)
    testbed = Testbed(cache_dir or default_cache_dir(data_dir))
    if control == "decoy":
        loaded = decoy_task(loaded, testbed.features(loaded, loaded.spec.strong), control_key)
    mode = strong_mode(method)
    results = []
    for seed in seeds:
        data = testbed.seed_data(loaded, seed, mode)
        n_train = len(data.splits.train)
        order = shuffled_order(n_train, control_key + bytes([seed % 256])) if control == "shuffled" else None
        inp = testbed.method_input(data, split, weak_order=order)
        started = time.perf_counter()
        predicted = to_labels(method(inp), len(inp.eval_texts))
        acc_w2s = control_accuracy(control, accuracy(predicted, loaded.labels[data.splits[split]]))
        weak, ceiling = data.acc_weak[split], data.acc_ceiling[split]
        result = SeedResult(
            task=loaded.name,
            seed=seed,
            split=split,
            control=control,
            mode=mode,
            acc_weak=weak,
            acc_ceiling=ceiling,
            acc_w2s=acc_w2s,
            pgr=pgr(weak, ceiling, acc_w2s),
        )
        logger.info(
            "task %s seed %d: weak %.3f ceiling %.3f w2s %.3f (method %.1fs)",
            loaded.name, seed, weak, ceiling, acc_w2s, time.perf_counter() - started,
        )  # fmt: skip
        results.append(result)
    return results
