"""Splits of a task into weak-train, train, validation and test.

The test split is the same for every seed (drawn once with ``TEST_SEED``): it is the hidden set
official scores are measured on, and no text of it is ever in a public input or a training split
of any seed. The other rows are re-split per seed. Splits are stratified by label so every split
keeps the task's class balance, and depend only on (labels, fractions, seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["SPLIT_NAMES", "TEST_SEED", "EvalSplit", "SplitFractions", "Splits", "make_splits"]

SPLIT_NAMES = ("weak_train", "train", "validation", "test")
TEST_SEED = 20_261_130
"""Draws the fixed test split; a constant, so every machine hides the same rows."""
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
        split: np.ndarray = getattr(self, name)
        return split


def make_splits(labels: np.ndarray, fractions: SplitFractions, seed: int) -> Splits:
    """Cut each class's fixed test share first, then shuffle the rest with the seed and cut it."""
    test_rng, seed_rng = np.random.default_rng(TEST_SEED), np.random.default_rng(seed)
    rest = fractions.weak_train + fractions.train + fractions.validation
    cumulative = np.cumsum([fractions.weak_train, fractions.train]) / rest
    parts: list[list[np.ndarray]] = [[], [], [], []]
    for label in np.unique(labels):
        rows = test_rng.permutation(np.flatnonzero(labels == label))
        n_test = round(fractions.test * len(rows))
        others = seed_rng.permutation(np.sort(rows[n_test:]))
        cuts = np.round(cumulative * len(others)).astype(int)
        for part, chunk in zip(parts, [*np.split(others, cuts), rows[:n_test]], strict=True):
            part.append(chunk)
    weak_train, train, validation, test = (np.sort(np.concatenate(p)) for p in parts)
    return Splits(weak_train=weak_train, train=train, validation=validation, test=test)
