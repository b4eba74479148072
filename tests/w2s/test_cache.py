from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from servers.w2s import testbed as testbed_module
from servers.w2s.cache import DiskCache
from servers.w2s.tasks import Task
from servers.w2s.testbed import Testbed


def test_a_cache_hit_returns_the_stored_arrays_without_computing(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    calls: list[int] = []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"x": np.arange(3)}

    first = cache.get_or_compute("ns", {"seed": 1}, compute)
    again = cache.get_or_compute("ns", {"seed": 1}, compute)
    other = cache.get_or_compute("ns", {"seed": 2}, compute)
    assert len(calls) == 2 and (cache.hits, cache.misses) == (1, 2)
    assert np.array_equal(first["x"], again["x"]) and np.array_equal(first["x"], other["x"])


def test_a_prepared_seed_is_served_from_disk_without_models(
    living: Task, w2s_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cold = Testbed(w2s_cache).seed_data(living, seed=1)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("recomputed despite a warm cache")

    monkeypatch.setattr(testbed_module, "load_encoder", refuse)
    monkeypatch.setattr(testbed_module, "tfidf_weak", refuse)
    monkeypatch.setattr(testbed_module, "fit_predict", refuse)
    warm_testbed = Testbed(w2s_cache)
    warm = warm_testbed.seed_data(living, seed=1)
    assert warm_testbed.cache.misses == 0 and warm_testbed.cache.hits == 3
    assert warm.acc_weak == cold.acc_weak and warm.acc_ceiling == cold.acc_ceiling
    assert np.array_equal(warm.weak_train_probs, cold.weak_train_probs)
