"""The PGR server's view of the W2S testbed: tasks with their hidden labels, cached per-seed
data, public inputs for the agents' sandboxes, the runs of an official submission, and scoring.

Only this process ever holds labels. What it writes for others holds none: the public inputs
(seed 0, validation split) that every sandbox sees at /tasks, and one bundle per official run.
The secret transfer task and every control run's randomness come from keys agents never see.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import secrets
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from servers.pgr.models import TaskOutcome
from servers.pgr.secret_task import MIN_GAP, MIN_TEACHER, Fitness
from servers.w2s.api import FINETUNE, FROZEN, StrongMode
from servers.w2s.bundle import parse_predictions, save_bundle
from servers.w2s.cache import CacheMiss
from servers.w2s.controls import Control, control_accuracy, decoy_task, shuffled_order
from servers.w2s.scoring import accuracy, pgr
from servers.w2s.tasks import Task, list_tasks, load_task
from servers.w2s.testbed import SeedData, Testbed

__all__ = ["QUICK_SEED", "RunRef", "RunScore", "TaskBench", "TaskSummary"]

logger = logging.getLogger(__name__)

QUICK_SEED = 0
"""Quick feedback and the public inputs use one fixed seed's validation split."""
CONTROL_KINDS: tuple[Control, ...] = ("shuffled", "decoy")

T = TypeVar("T")


@dataclass(frozen=True)
class RunRef:
    """One official run: which (task, seed, control) its bundle holds. Kept on the server only."""

    run_id: str
    task: str
    seed: int
    control: Control


@dataclass(frozen=True)
class RunScore:
    """One run's scores; PGR is None where the ceiling-minus-weak gap is too small."""

    acc_w2s: float
    acc_weak: float
    acc_ceiling: float
    pgr: float | None


@dataclass(frozen=True)
class TaskSummary:
    name: str
    description: str
    sizes: dict[str, int]
    acc_weak: float
    acc_ceiling: float


class TaskBench:
    """The tasks the server scores (public and secret), loaded once; heavy work runs on a worker thread.

    ``key`` is the server's secret: it draws the control runs' shuffles and decoys.
    """

    def __init__(
        self, tasks_root: Path | None, secret_root: Path | None, cache_dir: Path, seeds: int, key: bytes
    ) -> None:
        self.tasks: dict[str, Task] = {name: load_task(name, tasks_root) for name in list_tasks(tasks_root)}
        self.secret: dict[str, Task] = {}
        if secret_root is not None:
            self.load_secret(secret_root)
        self.testbed = Testbed(cache_dir)
        self.seeds = list(range(seeds))
        self._key = key
        self._decoys: dict[str, Task] = {}
        self._lock = asyncio.Lock()
        self._current: asyncio.Future[Any] | None = None

    def load_secret(self, secret_root: Path) -> None:
        """Score the packs in `secret_root` too, under opaque names (a pack's folder name may say what it is about)."""
        packs = list_tasks(secret_root) if secret_root.is_dir() else []
        names = {"secret": packs[0]} if len(packs) == 1 else {f"secret-{i}": p for i, p in enumerate(packs, 1)}
        self.secret = {name: load_task(pack, secret_root).renamed(name) for name, pack in names.items()}

    def narrow_tasks(self) -> dict[str, float]:
        """Scored tasks (an operator's packs too) whose frozen ceiling leads the teacher by under MIN_GAP on
        the test split, mean over the bench's seeds, with that lead; from the prepared cache."""
        leads = {
            name: statistics.fmean(_lead(self.seed_data(name, seed)) for seed in self.seeds) for name in self.scored
        }
        return {name: lead for name, lead in leads.items() if lead < MIN_GAP}

    def draw_fitness(self, folder: Path) -> Fitness:
        """How well the pack in `folder` can measure PGR on each of the bench's seeds (the check of a
        secret task's draw): the teacher first, which costs a second, then the ceiling's lead, which
        embeds every text. The cache is keyed by data, not name, so preparing the published pack
        reuses this work."""
        task = load_task(folder)
        teacher = min(self.testbed.teacher_accuracy(task, seed) for seed in self.seeds)
        if teacher < MIN_TEACHER:
            return Fitness(teacher=teacher, lead=None)
        return Fitness(teacher=teacher, lead=min(_lead(self.testbed.seed_data(task, seed)) for seed in self.seeds))

    @property
    def scored(self) -> dict[str, Task]:
        """Every task an official score averages over: the public ones, then the secret ones."""
        return {**self.tasks, **self.secret}

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Torch work, one at a time, off the event loop."""
        async with self._lock:
            self._current = asyncio.ensure_future(asyncio.to_thread(function, *args))
            return await asyncio.shield(self._current)

    async def drain(self) -> None:
        """Wait for work already on its thread (a cancelled caller does not stop the thread)."""
        if self._current is not None:
            await asyncio.gather(self._current, return_exceptions=True)

    def task(self, name: str, control: Control = "none") -> Task:
        """A scored task, or its decoy relabelling for a decoy control run."""
        task = self.scored[name]
        if control != "decoy":
            return task
        if name not in self._decoys:
            features = self.testbed.features(task, task.spec.strong)
            self._decoys[name] = decoy_task(task, features, self._key)
        return self._decoys[name]

    def seed_data(self, task: str, seed: int, mode: StrongMode = FROZEN, control: Control = "none") -> SeedData:
        return self.testbed.seed_data(self.task(task, control), seed, mode)

    def prepare(self, task: str, seed: int) -> None:
        """Cache a seed of a task with both control relabellings (frozen ceilings)."""
        for control in ("none", "decoy"):
            self.seed_data(task, seed, FROZEN, control)

    def prepare_with_cached_features(self, on_seed: Callable[[], None]) -> bool:
        """Prepare every task seed here if every text's strong features are cached: the rest (weak models,
        frozen ceilings, this server's decoys) takes seconds. False, having embedded nothing, otherwise."""
        try:
            with self.testbed.cache.stored_only("features"):
                for task in self.scored:
                    for seed in self.seeds:
                        self.prepare(task, seed)
                        on_seed()
        except CacheMiss:
            return False
        return True

    def summary(self, task: str) -> TaskSummary:
        data = self.seed_data(task, QUICK_SEED)
        return TaskSummary(
            name=task,
            description=self.tasks[task].spec.description.strip(),
            sizes={name: len(data.splits[name]) for name in ("train", "validation", "test")},
            acc_weak=round(data.acc_weak["validation"], 4),
            acc_ceiling=round(data.acc_ceiling["validation"], 4),
        )

    def export_public_inputs(self, folder: Path) -> None:
        """Write each public task's seed-0 validation inputs (no labels) where every sandbox sees them at /tasks."""
        for name in self.tasks:
            data = self.seed_data(name, QUICK_SEED)
            target = folder / name
            target.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            save_bundle(
                buffer, self.testbed.method_input(data, "validation"), dataclasses.asdict(data.task.spec.strong)
            )
            (target / "validation.pt").write_bytes(buffer.getvalue())
            (target / "info.json").write_text(json.dumps(dataclasses.asdict(self.summary(name)), indent=2))
        logger.info("public inputs of %d tasks in %s", len(self.tasks), folder)

    def validation_size(self, task: str) -> int:
        return len(self.seed_data(task, QUICK_SEED).splits.validation)

    def quick_score(self, task: str, predictions: str) -> tuple[float, float, float]:
        """Exact validation accuracy of predictions for the seed-0 split, with its weak and ceiling accuracy."""
        data = self.seed_data(task, QUICK_SEED)
        rows = data.splits.validation
        acc = accuracy(parse_predictions(predictions, len(rows)), self.tasks[task].labels[rows])
        return acc, data.acc_weak["validation"], data.acc_ceiling["validation"]

    def plan_runs(self) -> list[RunRef]:
        """A submission's runs in random order: every task and seed, plus one run of each control
        per task on a seed drawn in secret. Run ids are random; nothing in a run names its kind."""
        chooser = secrets.SystemRandom()
        refs = [RunRef(secrets.token_hex(8), task, seed, "none") for task in self.scored for seed in self.seeds]
        for task in self.scored:
            for control in CONTROL_KINDS:
                refs.append(RunRef(secrets.token_hex(8), task, chooser.choice(self.seeds), control))
        chooser.shuffle(refs)
        return refs

    def bundle(self, ref: RunRef, mode: StrongMode) -> bytes:
        """The run's test-split inputs, with a fresh secret method seed; weights only for fine-tuning runs."""
        data = self.seed_data(ref.task, ref.seed, FROZEN, ref.control)
        order = None
        if ref.control == "shuffled":
            order = shuffled_order(len(data.splits.train), self._key + ref.run_id.encode())
        inp = self.testbed.method_input(
            data, "test", weak_order=order, method_seed=secrets.randbits(31), model_access=mode == FINETUNE
        )
        buffer = io.BytesIO()
        save_bundle(buffer, inp, dataclasses.asdict(data.task.spec.strong))
        return buffer.getvalue()

    def score_run(self, ref: RunRef, predictions: str, mode: StrongMode) -> RunScore:
        """Score a run against its labels (the decoy's for a decoy run); the ceiling must be cached for `mode`."""
        data = self.seed_data(ref.task, ref.seed, mode, ref.control)
        rows = data.splits.test
        labels = self.task(ref.task, ref.control).labels[rows]
        acc = control_accuracy(ref.control, accuracy(parse_predictions(predictions, len(rows)), labels))
        weak, ceiling = data.acc_weak["test"], data.acc_ceiling["test"]
        return RunScore(acc_w2s=acc, acc_weak=weak, acc_ceiling=ceiling, pgr=pgr(weak, ceiling, acc))

    def test_texts(self) -> dict[str, frozenset[str]]:
        """Every scored task's hidden test texts (for the smuggling check at submit)."""
        return {
            name: frozenset(task.texts[i] for i in self.seed_data(name, QUICK_SEED).splits.test)
            for name, task in self.scored.items()
        }

    def validation_texts(self) -> dict[str, frozenset[str]]:
        """Every public task's validation texts, whose labels the quick feedback is about."""
        return {
            name: frozenset(task.texts[i] for i in self.seed_data(name, QUICK_SEED).splits.validation)
            for name, task in self.tasks.items()
        }


def run_outcomes(scores: list[tuple[RunRef, RunScore]], order: list[str]) -> list[TaskOutcome]:
    """Exact per-task means, tasks in ``order`` (never shown as they are: see servers.pgr.verdict)."""

    def mean_pgr(task: str, control: Control) -> float | None:
        values = [s.pgr for ref, s in scores if ref.task == task and ref.control == control and s.pgr is not None]
        return float(np.mean(values)) if values else None

    results = []
    for task in [name for name in order if any(ref.task == name for ref, _ in scores)]:
        real = [s.pgr for ref, s in scores if ref.task == task and ref.control == "none" and s.pgr is not None]
        results.append(
            TaskOutcome(
                task=task,
                pgr_mean=float(np.mean(real)) if real else None,
                pgr_se=float(np.std(real, ddof=1) / np.sqrt(len(real))) if len(real) > 1 else None,
                seeds=sum(1 for ref, _ in scores if ref.task == task and ref.control == "none"),
                shuffled_pgr=mean_pgr(task, "shuffled"),
                decoy_pgr=mean_pgr(task, "decoy"),
            )
        )
    return results


def _lead(data: SeedData) -> float:
    """How far the frozen ceiling beats the teacher on one seed's test split."""
    return data.acc_ceiling["test"] - data.acc_weak["test"]
