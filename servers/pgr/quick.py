"""Quick feedback that is useful to a researcher and useless as a label oracle.

An answer is validation accuracy on a grid of ``ACCURACY_STEP`` (12 examples of 600), and PGR
computed from that coarse accuracy, so no single flip and no small group of flips shows. A query
within ``MIN_DISTANCE`` of one the team already made (a few flipped predictions) gets that
query's answer again, free: differential probing learns nothing from it. What a whole team can
still learn is bounded in docs/integrity.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from servers.w2s.scoring import pgr

__all__ = ["ACCURACY_STEP", "MIN_DISTANCE_FRACTION", "Answer", "coarse_answer", "min_distance", "nearest_answer"]

ACCURACY_STEP = 0.02
MIN_DISTANCE_FRACTION = 0.05
"""Queries differing from an earlier one in fewer than this share of predictions get its answer."""


@dataclass(frozen=True)
class Answer:
    accuracy: float
    pgr: float | None


def coarse_answer(accuracy: float, acc_weak: float, acc_ceiling: float) -> Answer:
    """Accuracy on the grid, and the PGR of that coarse accuracy (so PGR is no finer than accuracy)."""
    coarse = round(round(accuracy / ACCURACY_STEP) * ACCURACY_STEP, 4)
    value = pgr(acc_weak, acc_ceiling, coarse)
    return Answer(coarse, None if value is None else round(value, 2))


def min_distance(n: int) -> int:
    """Fewest differing predictions that make a query new, for a validation split of n examples."""
    return max(1, math.ceil(MIN_DISTANCE_FRACTION * n))


def _bits(predictions: str) -> np.ndarray:
    return np.frombuffer(predictions.encode("ascii"), dtype=np.uint8)


def nearest_answer(predictions: str, earlier: Sequence[tuple[str, float, float | None]]) -> Answer | None:
    """The answer of an earlier query (predictions, accuracy, pgr) closer than ``min_distance``, if any."""
    comparable = [row for row in earlier if len(row[0]) == len(predictions)]
    if not comparable:
        return None
    distances = (np.stack([_bits(text) for text, _, _ in comparable]) != _bits(predictions)).sum(axis=1)
    best = int(distances.argmin())
    if distances[best] >= min_distance(len(predictions)):
        return None
    _, accuracy, value = comparable[best]
    return Answer(accuracy, value)
