"""Per-seed splits of a task into weak-train, train, validation and test.

Splits are stratified by label so every split keeps the task's class balance, and depend only on
(labels, fractions, seed): the same seed always gives the same split on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["SPLIT_NAMES", "EvalSplit", "SplitFractions", "Splits", "make_splits"]

SPLIT_NAMES = ("weak_train", "train", "validation", "test")
EvalSplit = Literal["validation", "test"]


@dataclass(frozen=True, kw_only=True)
class SplitFractions:
    """Fractions of the data per split; they must be positive and sum to 1."""

    weak_train: float = 0.4
    train: float = 0.4
    validation: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        values = [self.weak_train, self.train, self.validation, self.test]
        if min(values) <= 0 or abs(sum(values) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be positive and sum to 1, got {values}")


@dataclass(frozen=True, kw_only=True, eq=False)
class Splits:
    """Sorted, disjoint row indices of each split."""

    weak_train: np.ndarray
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in SPLIT_NAMES:
            raise KeyError(f"unknown split {name!r}; expected one of {SPLIT_NAMES}")
        return getattr(self, name)


def make_splits(labels: np.ndarray, fractions: SplitFractions, seed: int) -> Splits:
    """Shuffle each class with the seed and cut it by the fractions."""
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum([fractions.weak_train, fractions.train, fractions.validation])
    parts: list[list[np.ndarray]] = [[], [], [], []]
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        cuts = np.round(cumulative * len(rows)).astype(int)
        for part, chunk in zip(parts, np.split(rows, cuts), strict=True):
            part.append(chunk)
    weak_train, train, validation, test = (np.sort(np.concatenate(p)) for p in parts)
    return Splits(weak_train=weak_train, train=train, validation=validation, test=test)
