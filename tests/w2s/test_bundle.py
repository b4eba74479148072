from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import torch

from servers.w2s.api import MethodInput
from servers.w2s.bundle import format_predictions, load_bundle, parse_predictions, save_bundle
from servers.w2s.methods import plain_ce
from servers.w2s.tasks import Task
from servers.w2s.testbed import Testbed


def _bundle_bytes(living: Task, w2s_cache: Path) -> tuple[bytes, MethodInput]:
    testbed = Testbed(w2s_cache)
    inp = testbed.method_input(testbed.seed_data(living, seed=0), "validation")
    buffer = io.BytesIO()
    save_bundle(buffer, inp, dataclasses.asdict(living.spec.strong))
    return buffer.getvalue(), inp


def test_a_bundle_round_trips_the_method_input_and_nothing_else(living: Task, w2s_cache: Path) -> None:
    payload, original = _bundle_bytes(living, w2s_cache)
    raw = torch.load(io.BytesIO(payload), weights_only=True)
    assert set(raw) == {"format", "task", "seed", "train_texts", "weak_soft_labels", "eval_texts", "strong"}
    loaded = load_bundle(io.BytesIO(payload))
    assert loaded.train_texts == original.train_texts and loaded.eval_texts == original.eval_texts
    assert torch.equal(loaded.weak_soft_labels, original.weak_soft_labels)
    assert torch.equal(loaded.strong.eval_features, original.strong.eval_features)
    assert loaded.strong.head_recipe == original.strong.head_recipe
    assert torch.equal(plain_ce(loaded), plain_ce(original))


def test_predictions_travel_as_zeros_and_ones() -> None:
    text = format_predictions(torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.4, 0.6]]), 3)
    assert text == "011"
    assert parse_predictions(text + "\n", 3).tolist() == [0, 1, 1]


@pytest.mark.parametrize("bad", ["01", "0112", "01x", "0 1 1"])
def test_malformed_prediction_text_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_predictions(bad, 3)


def test_a_bundle_of_another_format_is_refused() -> None:
    buffer = io.BytesIO()
    torch.save({"format": 99}, buffer)
    buffer.seek(0)
    with pytest.raises(ValueError, match="format"):
        load_bundle(buffer)


def test_bundled_features_are_plain_float_tensors(living: Task, w2s_cache: Path) -> None:
    loaded = load_bundle(io.BytesIO(_bundle_bytes(living, w2s_cache)[0]))
    assert loaded.strong.train_features.dtype == torch.float32
    assert np.all(loaded.strong.feature_std > 0)
