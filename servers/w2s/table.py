"""Mean and standard error over seeds, for every task and method, and a readable table of them.

With the teacher controls run, each method also gets the verdict the PGR server would give it
(``servers.pgr.verdict``): a baseline that the shuffled or decoy teacher flags must not ship.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from servers.pgr.models import TaskOutcome
from servers.pgr.verdict import Margins, judge
from servers.w2s.api import Method
from servers.w2s.evaluate import Control, SeedResult, evaluate
from servers.w2s.splits import EvalSplit
from servers.w2s.tasks import list_tasks, load_task

__all__ = [
    "MethodSummary",
    "Stat",
    "TableRow",
    "format_summaries",
    "format_table",
    "mean_se",
    "method_summaries",
    "run_table",
    "summarise",
]


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
    """Evaluate every method on every task (default: all packs) under every control.

    A pack whose name another has taken already (a run's secret packs are named after their
    family: ``negation`` beside the public ``negation``) is labelled by the path it was given as,
    so its rows and the means over tasks keep it apart."""
    seed_list = list(seeds)
    rows = []
    labels: set[str] = set()
    for name in tasks if tasks is not None else list_tasks(tasks_root):
        task = load_task(name, tasks_root)
        if task.name in labels:
            task = task.renamed(str(name))
        labels.add(task.name)
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
            _pgr_text(r.pgr),
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


NOT_CHECKED = "not checked (run with --control)"


@dataclass(frozen=True, kw_only=True)
class MethodSummary:
    """One method over every task: mean PGR (each task weighs the same), the controls' verdict, its source."""

    method: str
    tasks: int
    pgr: Stat | None
    verdict: str
    paper: str


def _task_mean(pgrs: Sequence[Stat]) -> Stat:
    """The mean of per-task means, with the standard error of that mean (tasks are independent)."""
    return Stat(
        sum(s.mean for s in pgrs) / len(pgrs), math.sqrt(sum(s.se**2 for s in pgrs)) / len(pgrs), min(s.n for s in pgrs)
    )


def method_summaries(rows: Sequence[TableRow], papers: Mapping[str, str], margins: Margins) -> list[MethodSummary]:
    """Per method: mean PGR over every task of the table (None if one is missing or undefined) and,
    where the controls ran on every task, the PGR server's verdict on it."""
    summaries = []
    tasks = list(dict.fromkeys(r.task for r in rows))
    for method in dict.fromkeys(r.method for r in rows):
        by_control = {(r.task, r.control): r.pgr for r in rows if r.method == method}
        real = [stat for t in tasks if (stat := by_control.get((t, "none"))) is not None]
        verdict = NOT_CHECKED
        if all((t, c) in by_control for t in tasks for c in ("shuffled", "decoy")):
            outcomes = [
                TaskOutcome(
                    task=t,
                    pgr_mean=_mean_of(by_control.get((t, "none"))),
                    pgr_se=None,
                    seeds=0,
                    shuffled_pgr=_mean_of(by_control[(t, "shuffled")]),
                    decoy_pgr=_mean_of(by_control[(t, "decoy")]),
                )
                for t in tasks
            ]
            flags = judge(outcomes, {}, set(), margins, {}).flags
            verdict = ", ".join(flag.split(":")[0] for flag in flags) if flags else "passes"
        summaries.append(
            MethodSummary(
                method=method,
                tasks=len(tasks),
                pgr=_task_mean(real) if len(real) == len(tasks) else None,  # a mean over every task, or none
                verdict=verdict,
                paper=papers.get(method, ""),
            )
        )
    return summaries


def _mean_of(stat: Stat | None) -> float | None:
    return None if stat is None else stat.mean


def _pgr_text(stat: Stat | None) -> str:
    return f"{stat.mean:+.2f}±{stat.se:.2f}" if stat else "undefined"


def format_summaries(summaries: Sequence[MethodSummary]) -> str:
    """Method, mean PGR over tasks (mean±se), the teacher controls' verdict and the paper, one line each."""
    width = max([len("controls"), *(len(s.verdict) for s in summaries)])
    lines = [f"{s.method:<18}  {_pgr_text(s.pgr):<10}  {s.verdict:<{width}}  {s.paper}" for s in summaries]
    header = f"{'method':<18}  {'mean PGR':<10}  {'controls':<{width}}  paper"
    tasks = summaries[0].tasks if summaries else 0
    return "\n".join([header, *lines, f"(mean over {tasks} tasks of each task's mean over seeds; ±standard error)"])
