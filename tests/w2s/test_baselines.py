from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from servers.w2s.evaluate import evaluate
from servers.w2s.methods import BASELINES, aux_confidence, plain_ce
from servers.w2s.tasks import Task, load_task


def _mean_pgr(results: list[Any]) -> float:
    values = [r.pgr for r in results]
    assert all(v is not None for v in values)
    return float(np.mean(values))


def test_the_confidence_loss_beats_plain_cross_entropy_on_the_default_task(living: Task, w2s_cache: Path) -> None:
    plain = evaluate(living, plain_ce, range(5), cache_dir=w2s_cache)
    aux = evaluate(living, aux_confidence, range(5), cache_dir=w2s_cache)
    assert all(r.acc_ceiling - r.acc_weak > 0.02 for r in plain)
    assert _mean_pgr(aux) > _mean_pgr(plain) > 0


def test_shuffling_the_weak_labels_ruins_a_method_that_follows_its_teacher(living: Task, w2s_cache: Path) -> None:
    honest = evaluate(living, plain_ce, range(2), cache_dir=w2s_cache)
    shuffled = evaluate(living, plain_ce, range(2), control="shuffled", cache_dir=w2s_cache)
    assert _mean_pgr(shuffled) < _mean_pgr(honest) - 1.0
    assert all(r.control == "shuffled" for r in shuffled)


def test_every_baseline_returns_a_prediction_for_each_evaluation_text(living: Task, w2s_cache: Path) -> None:
    for method in BASELINES.values():
        [result] = evaluate(living, method, [0], split="validation", cache_dir=w2s_cache)
        assert 0.5 < result.acc_w2s <= 1.0


@pytest.mark.timeout(1200)  # a second task's features on a cold cache
def test_on_the_hard_pack_imitation_recovers_little_and_the_confidence_loss_much_more(w2s_cache: Path) -> None:
    task = load_task("wordnet-food-substance")
    plain = _mean_pgr(evaluate(task, plain_ce, range(5), cache_dir=w2s_cache))
    aux = _mean_pgr(evaluate(task, aux_confidence, range(5), cache_dir=w2s_cache))
    assert plain < 0.2 and aux > plain + 0.5, (plain, aux)
