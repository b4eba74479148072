"""The library's methods learn from the teacher labels they are given, and nothing else (a leakage check)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from servers.w2s.api import MethodInput
from servers.w2s.methods import BASELINES, paper
from servers.w2s.scoring import to_labels
from servers.w2s.tasks import Task
from servers.w2s.testbed import Testbed


@pytest.fixture(scope="module")
def living_input(living: Task, w2s_cache: Path) -> MethodInput:
    """The validation input of seed 0, with a quarter of train (enough to learn from, quick to run)."""
    testbed = Testbed(w2s_cache)
    full = testbed.method_input(testbed.seed_data(living, 0), "validation")
    n = len(full.train_texts) // 4
    strong = dataclasses.replace(full.strong, train_features=full.strong.train_features[:n])
    return dataclasses.replace(
        full, train_texts=full.train_texts[:n], weak_soft_labels=full.weak_soft_labels[:n], strong=strong
    )


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_a_method_follows_its_teacher_when_the_teacher_flips(name: str, living_input: MethodInput) -> None:
    """With every teacher label inverted, the method's answers invert too: it has no other source of labels."""
    method = BASELINES[name]
    n = len(living_input.eval_texts)
    honest = to_labels(method(living_input), n)
    flipped_input = dataclasses.replace(living_input, weak_soft_labels=living_input.weak_soft_labels.flip(dims=[1]))
    flipped = to_labels(method(flipped_input), n)
    assert np.mean(honest == flipped) < 0.2, f"{name} kept {np.mean(honest == flipped):.0%} of its answers"


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_method_names_its_paper(name: str) -> None:
    assert paper(BASELINES[name]).strip(), f"servers/w2s/methods/{name}.py has no PAPER"
