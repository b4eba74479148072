from __future__ import annotations

import numpy as np
import pytest

from servers.w2s.splits import SPLIT_NAMES, SplitFractions, make_splits
from servers.w2s.tasks import Task


def test_splits_are_disjoint_cover_every_row_and_keep_the_fractions(living: Task) -> None:
    splits = make_splits(living.labels, SplitFractions(), seed=3)
    parts = [splits[name] for name in SPLIT_NAMES]
    joined = np.concatenate(parts)
    assert len(joined) == len(set(joined.tolist())) == len(living.labels)
    assert [len(p) for p in parts] == [2400, 2400, 600, 600]
    for part in parts:
        assert abs(living.labels[part].mean() - living.labels.mean()) < 0.01


def test_the_same_seed_gives_the_same_split_and_another_seed_another_but_the_same_test(living: Task) -> None:
    first, again, other = (make_splits(living.labels, SplitFractions(), seed=s) for s in (0, 0, 1))
    for name in SPLIT_NAMES:
        assert np.array_equal(first[name], again[name])
    assert not np.array_equal(first.train, other.train)
    assert np.array_equal(first.test, other.test), "the hidden test split is one fixed set for every seed"


def test_no_seed_ever_shows_a_hidden_test_text(living: Task) -> None:
    test = set(make_splits(living.labels, SplitFractions(), seed=0).test.tolist())
    for seed in range(10):
        splits = make_splits(living.labels, SplitFractions(), seed=seed)
        shown = np.concatenate([splits.weak_train, splits.train, splits.validation])
        assert not test & set(shown.tolist())


def test_fractions_that_do_not_sum_to_one_are_refused() -> None:
    with pytest.raises(ValueError):
        SplitFractions(weak_train=0.5, train=0.5, validation=0.1, test=0.1)
