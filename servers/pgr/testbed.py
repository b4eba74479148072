"""The PGR server's view of the W2S testbed: tasks with their hidden labels, cached per-seed
data, public inputs for the agents' sandboxes, and scoring of predictions.

Only this process ever holds labels. What it writes for others holds none: the public inputs
(seed 0, validation split) that every sandbox sees at /tasks, and the bundles of a submission.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from servers.w2s.api import FROZEN, StrongMode
from servers.w2s.bundle import parse_predictions, save_bundle
from servers.w2s.scoring import accuracy, pgr
from servers.w2s.tasks import Task, list_tasks, load_task
from servers.w2s.testbed import SeedData, Testbed

logger = logging.getLogger(__name__)

QUICK_SEED = 0
"""Quick feedback and the public inputs use one fixed seed's validation split."""


@dataclass(frozen=True)
class BundleRef:
    """Which (task, seed, control) a randomly named bundle holds: kept on the server only."""

    bundle_id: str
    task: str
    seed: int
    control: str


@dataclass(frozen=True)
class TaskSummary:
    name: str
    description: str
    sizes: dict[str, int]
    acc_weak: float
    acc_ceiling: float


def _encoder(task: Task) -> dict[str, Any]:
    return dataclasses.asdict(task.spec.strong)


def _bundle_bytes(testbed: Testbed, data: SeedData, split: str, shuffled: bool) -> bytes:
    buffer = io.BytesIO()
    save_bundle(buffer, testbed.method_input(data, split, shuffled=shuffled), _encoder(data.task))  # type: ignore[arg-type]
    return buffer.getvalue()


class TaskBench:
    """The tasks the server scores, loaded once; heavy work runs on a worker thread."""

    def __init__(self, tasks_root: Path | None, cache_dir: Path, seeds: int) -> None:
        self.tasks: dict[str, Task] = {name: load_task(name, tasks_root) for name in list_tasks(tasks_root)}
        self.testbed = Testbed(cache_dir)
        self.seeds = list(range(seeds))
        self._lock = asyncio.Lock()
        self._current: asyncio.Future[Any] | None = None

    async def run(self, function: Any, *args: Any) -> Any:
        """Torch work, one at a time, off the event loop."""
        async with self._lock:
            self._current = asyncio.ensure_future(asyncio.to_thread(function, *args))
            return await asyncio.shield(self._current)

    async def drain(self) -> None:
        """Wait for work already on its thread (a cancelled caller does not stop the thread)."""
        if self._current is not None:
            await asyncio.gather(self._current, return_exceptions=True)

    def seed_data(self, task: str, seed: int, mode: StrongMode = FROZEN) -> SeedData:
        return self.testbed.seed_data(self.tasks[task], seed, mode)

    def summary(self, task: str) -> TaskSummary:
        data = self.seed_data(task, QUICK_SEED)
        return TaskSummary(
            name=task,
            description=self.tasks[task].spec.description.strip(),
            sizes={name: int(len(data.splits[name])) for name in ("train", "validation", "test")},
            acc_weak=round(data.acc_weak["validation"], 4),
            acc_ceiling=round(data.acc_ceiling["validation"], 4),
        )

    def export_public_inputs(self, folder: Path) -> None:
        """Write each task's seed-0 validation inputs (no labels) where every sandbox sees them at /tasks."""
        for name in self.tasks:
            data = self.seed_data(name, QUICK_SEED)
            target = folder / name
            target.mkdir(parents=True, exist_ok=True)
            (target / "validation.pt").write_bytes(_bundle_bytes(self.testbed, data, "validation", False))
            summary = dataclasses.asdict(self.summary(name))
            (target / "info.json").write_text(json.dumps(summary, indent=2))
        logger.info("public inputs of %d tasks in %s", len(self.tasks), folder)

    def quick_score(self, task: str, predictions: str) -> tuple[float, float | None]:
        """Accuracy and PGR of predictions for the seed-0 validation split."""
        data = self.seed_data(task, QUICK_SEED)
        rows = data.splits["validation"]
        predicted = parse_predictions(predictions, len(rows))
        acc = accuracy(predicted, self.tasks[task].labels[rows])
        return acc, pgr(data.acc_weak["validation"], data.acc_ceiling["validation"], acc)

    def make_bundles(self) -> tuple[list[BundleRef], dict[str, bytes]]:
        """Test-split bundles for every task and seed, each also with shuffled weak labels, in random order."""
        refs: list[BundleRef] = []
        files: dict[str, bytes] = {}
        for task in self.tasks:
            for seed in self.seeds:
                data = self.seed_data(task, seed)
                for control in ("none", "shuffled"):
                    ref = BundleRef(secrets.token_hex(8), task, seed, control)
                    refs.append(ref)
                    files[f"inputs/{ref.bundle_id}.pt"] = _bundle_bytes(
                        self.testbed, data, "test", control == "shuffled"
                    )
        return refs, files

    def score_bundle(self, ref: BundleRef, predictions: str, mode: StrongMode) -> dict[str, Any]:
        data = self.seed_data(ref.task, ref.seed, mode)
        rows = data.splits["test"]
        predicted = parse_predictions(predictions, len(rows))
        acc = accuracy(predicted, self.tasks[ref.task].labels[rows])
        weak, ceiling = data.acc_weak["test"], data.acc_ceiling["test"]
        return {"acc_w2s": acc, "acc_weak": weak, "acc_ceiling": ceiling, "pgr": pgr(weak, ceiling, acc)}


def summarise(scores: list[tuple[BundleRef, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per task: PGR mean and standard error over seeds, for the real run and the shuffled control."""
    results = []
    for task in sorted({ref.task for ref, _ in scores}):
        row: dict[str, Any] = {"task": task}
        for control, prefix in (("none", ""), ("shuffled", "control_")):
            values = [s["pgr"] for ref, s in scores if ref.task == task and ref.control == control]
            defined = np.array([v for v in values if v is not None], dtype=float)
            accs = [s["acc_w2s"] for ref, s in scores if ref.task == task and ref.control == control]
            row[f"{prefix}pgr_mean"] = float(defined.mean()) if len(defined) else None
            row[f"{prefix}pgr_se"] = float(defined.std(ddof=1) / np.sqrt(len(defined))) if len(defined) > 1 else None
            row[f"{prefix}acc_mean"] = float(np.mean(accs)) if accs else None
        row["seeds"] = len([1 for ref, _ in scores if ref.task == task and ref.control == "none"])
        results.append(row)
    return results
