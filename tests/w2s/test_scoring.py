from __future__ import annotations

import numpy as np
import pytest
import torch

from servers.w2s.scoring import pgr, to_labels


def test_pgr_is_the_fraction_of_the_weak_to_ceiling_gap_recovered() -> None:
    assert pgr(0.70, 0.80, 0.75) == pytest.approx(0.5)
    assert pgr(0.70, 0.80, 0.80) == pytest.approx(1.0)
    assert pgr(0.70, 0.80, 0.70) == pytest.approx(0.0)
    assert pgr(0.70, 0.80, 0.65) == pytest.approx(-0.5)


def test_pgr_is_undefined_when_the_ceiling_barely_beats_the_weak_model() -> None:
    assert pgr(0.70, 0.715, 0.80) is None
    assert pgr(0.70, 0.60, 0.80) is None
    assert pgr(0.70, 0.72, 0.71) == pytest.approx(0.5)


def test_predictions_may_be_probabilities_or_hard_labels() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    assert to_labels(probs, 2).tolist() == [0, 1]
    assert to_labels(np.array([1, 0]), 2).tolist() == [1, 0]


@pytest.mark.parametrize("bad", [np.zeros((3, 2)), np.array([0, 2]), np.array([[np.nan, 1.0], [0.5, 0.5]])])
def test_malformed_predictions_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        to_labels(bad, 2)
