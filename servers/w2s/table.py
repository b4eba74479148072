"""Mean and standard error over seeds, for every task and method, and a readable table of them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from servers.w2s.api import Method
from servers.w2s.evaluate import Control, SeedResult, evaluate
from servers.w2s.splits import EvalSplit
from servers.w2s.tasks import list_tasks, load_task

__all__ = ["Stat", "TableRow", "format_table", "mean_se", "run_table", "summarise"]


@dataclass(frozen=True)
class Stat:
    """Mean, standard error of the mean, and how many values they summarise."""

    mean: float
    se: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3f}±{self.se:.3f}"


@dataclass(frozen=True, kw_only=True)
class TableRow:
    """One (task, method, control): accuracies and PGR over seeds (PGR over seeds where it is defined)."""

    task: str
    method: str
    control: Control
    split: EvalSplit
    weak: Stat
    ceiling: Stat
    w2s: Stat
    pgr: Stat | None


def mean_se(values: Sequence[float]) -> Stat:
    """Mean and standard error (sample standard deviation / sqrt(n)); se is 0 for a single value."""
    n = len(values)
    mean = sum(values) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n) if n > 1 else 0.0
    return Stat(mean, se, n)


def summarise(method: str, results: Sequence[SeedResult]) -> TableRow:
    """Aggregate one method's seed results on one task."""
    first = results[0]
    defined = [r.pgr for r in results if r.pgr is not None]
    return TableRow(
        task=first.task,
        method=method,
        control=first.control,
        split=first.split,
        weak=mean_se([r.acc_weak for r in results]),
        ceiling=mean_se([r.acc_ceiling for r in results]),
        w2s=mean_se([r.acc_w2s for r in results]),
        pgr=mean_se(defined) if defined else None,
    )


def run_table(
    methods: Mapping[str, Method],
    tasks: Sequence[str] | None = None,
    seeds: Iterable[int] = range(5),
    *,
    split: EvalSplit = "test",
    controls: Sequence[Control] = ("none",),
    data_dir: Path = Path("data"),
    cache_dir: Path | None = None,
    tasks_root: Path | None = None,
) -> list[TableRow]:
    """Evaluate every method on every task (default: all packs) under every control."""
    seed_list = list(seeds)
    rows = []
    for name in tasks if tasks is not None else list_tasks(tasks_root):
        task = load_task(name, tasks_root)
        for method_name, method in methods.items():
            for control in controls:
                results = evaluate(
                    task, method, seed_list, split=split, control=control, data_dir=data_dir, cache_dir=cache_dir
                )
                rows.append(summarise(method_name, results))
    return rows


def format_table(rows: Sequence[TableRow]) -> str:
    """A fixed-width text table: task, method, control, weak, ceiling, w2s and PGR as mean±se."""
    header = ("task", "method", "control", "weak", "ceiling", "w2s", "PGR", "seeds")
    body = [
        (
            r.task,
            r.method,
            r.control,
            str(r.weak),
            str(r.ceiling),
            str(r.w2s),
            f"{r.pgr.mean:+.2f}±{r.pgr.se:.2f}" if r.pgr else "undefined",
            f"{r.w2s.n}" if r.pgr is None or r.pgr.n == r.w2s.n else f"{r.pgr.n}/{r.w2s.n}",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    split = rows[0].split if rows else "test"
    return "\n".join([*lines, f"(accuracy on {split}; mean±standard error over seeds)"])
