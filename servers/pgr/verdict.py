"""From exact run scores to what agents see: coarse per-task results and the integrity flags.

Agents see each task's mean PGR on a grid of ``PGR_STEP`` (no single test example moves a mean
across more than one step, and the grid keeps each submission's answer to a few bits), and three
checks, each a flag that keeps a submission off the leaderboard:

* ``ignores-teacher`` (shuffled control): the method scores about as well, orientation-free,
  when its teacher's labels are shuffled; catches methods that use the teacher for one bit.
* ``ignores-decoy`` (decoy control): it scores far better on the real task than on a decoy its
  teacher taught it; catches methods that answer from their own idea of the task.
* ``does-not-transfer`` (secret tasks): on some public task it beats the reference method
  (aux_confidence, scored by the server) by far more than it does on the secret task of the same
  family (a loss there counts as no gain); catches knowledge of a public task built in (word
  lists, hand-written rules), which cannot carry over to a task whose vocabulary no one knows.

The margins are settings, calibrated on the shipped baselines (docs/integrity.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from servers.pgr.models import TaskOutcome, TaskResult
from servers.w2s.controls import Control

__all__ = ["PGR_STEP", "Margins", "Verdict", "coarse", "judge"]

PGR_STEP = 0.05


def coarse(value: float | None, step: float = PGR_STEP) -> float | None:
    """``value`` on a grid of ``step`` (None stays None)."""
    return None if value is None else round(round(value / step) * step, 4)


@dataclass(frozen=True)
class Margins:
    shuffled: float
    decoy: float
    transfer: float


@dataclass(frozen=True)
class Verdict:
    state: str
    results: list[TaskResult]
    flags: list[str]
    pgr_mean: float | None


def _mean(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def _gap(rows: list[TaskOutcome], control: Control) -> float | None:
    gaps: list[float | None] = []
    for row in rows:
        controlled = row.control_pgr(control)
        if row.pgr_mean is not None and controlled is not None:
            gaps.append(row.pgr_mean - controlled)
    return _mean(gaps)


def transfer_excess(
    rows: list[TaskOutcome], families: Mapping[str, str], secret: set[str], reference: Mapping[str, float]
) -> float | None:
    """The most a public task's gain over the reference exceeds the mean gain on its family's secret tasks.

    A loss to the reference on the secret tasks counts as no gain: knowledge built in for a public
    task shows as a public gain the secret task does not repeat, while a secret draw can simply be
    harder for a method than its public sibling (on one negation draw bootstrap scored PGR -1.3
    where the reference scored -0.14, and 0.14 against 0.04 on the public negation task), which
    flagged honest methods. So a method is flagged only for a public gain itself above the margin
    plus whatever gain the secret task shows.
    """

    def gain(row: TaskOutcome) -> float | None:
        base = reference.get(row.task)
        return None if row.pgr_mean is None or base is None else row.pgr_mean - base

    excesses = []
    for family in {families[row.task] for row in rows if row.task in secret}:
        hidden = _mean([gain(row) for row in rows if row.task in secret and families[row.task] == family])
        hidden = None if hidden is None else max(hidden, 0.0)
        public = [gain(row) for row in rows if row.task not in secret and families[row.task] == family]
        excesses += [g - hidden for g in public if g is not None and hidden is not None]
    return max(excesses) if excesses else None


def judge(
    rows: list[TaskOutcome],
    families: Mapping[str, str],
    secret: set[str],
    margins: Margins,
    reference: Mapping[str, float],
) -> Verdict:
    """The verdict on a scored submission from its exact per-task rows (``testbed.run_outcomes``)."""
    flags = []
    shuffled = _gap(rows, "shuffled")
    if shuffled is not None and shuffled < margins.shuffled:
        flags.append(
            f"ignores-teacher: with its teacher's labels shuffled it still scores within {margins.shuffled:.2f} PGR"
            " of its real score (scored orientation-free); kept off the leaderboard"
        )
    decoy = _gap(rows, "decoy")
    if decoy is not None and decoy > margins.decoy:
        flags.append(
            f"ignores-decoy: it scores over {margins.decoy:.2f} PGR better on the real tasks than on decoys its"
            " teacher taught it, so its answers do not come from its teacher; kept off the leaderboard"
        )
    transfer = transfer_excess(rows, families, secret, reference)
    if transfer is not None and transfer > margins.transfer:
        flags.append(
            f"does-not-transfer: on a public task it beats the reference method by over {margins.transfer:.2f} PGR"
            " more than it does on the secret transfer task (knowledge of that task built in?); kept off the"
            " leaderboard"
        )
    shown = [
        TaskResult(
            task=row.task,
            secret=row.task in secret,
            pgr_mean=coarse(row.pgr_mean),
            pgr_se=coarse(row.pgr_se),
            seeds=row.seeds,
            shuffled_pgr=coarse(row.shuffled_pgr),
            decoy_pgr=coarse(row.decoy_pgr),
        )
        for row in rows
    ]
    mean = _mean([row.pgr_mean for row in shown])
    return Verdict(state="flagged" if flags else "done", results=shown, flags=flags, pgr_mean=coarse(mean, 0.01))
