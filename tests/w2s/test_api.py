from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np

from servers.w2s.api import MethodInput, StrongModel
from servers.w2s.tasks import Task
from servers.w2s.testbed import Testbed

ROOT = Path(__file__).resolve().parents[2]


def test_method_input_fields_hold_texts_weak_labels_and_the_model_never_ground_truth() -> None:
    assert {f.name for f in dataclasses.fields(MethodInput)} == {
        "task", "train_texts", "weak_soft_labels", "eval_texts", "strong", "seed",
    }  # fmt: skip
    assert {f.name for f in dataclasses.fields(StrongModel)} == {
        "kind", "model_dir", "train_features", "eval_features", "head_recipe", "finetune_recipe",
        "backend", "feature_mean", "feature_std",
    }  # fmt: skip


def test_a_built_method_input_carries_weak_probabilities_not_labels(living: Task, w2s_cache: Path) -> None:
    testbed = Testbed(w2s_cache)
    data = testbed.seed_data(living, seed=0)
    inp = testbed.method_input(data, "test")
    truth = living.labels[data.splits.train]
    weak = inp.weak_soft_labels.numpy()
    assert weak.shape == (len(truth), 2)
    assert np.allclose(weak.sum(1), 1.0)
    assert 0.6 < np.mean(weak.argmax(1) == truth) < 0.9  # the weak model's accuracy, not the truth
    assert not np.isin(weak, (0.0, 1.0)).all()
    assert inp.eval_texts == tuple(living.texts[i] for i in data.splits.test)
    assert inp.strong.eval_features.shape == (len(inp.eval_texts), 384)


def test_the_api_and_methods_import_where_task_packs_and_label_code_are_absent() -> None:
    blocked = ["servers.pgr", "servers.w2s.tasks", "servers.w2s.splits", "servers.w2s.weak", "servers.w2s.cache",
               "servers.w2s.testbed", "servers.w2s.evaluate", "servers.w2s.table"]  # fmt: skip
    script = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "import servers.w2s.api, servers.w2s.methods, servers.w2s.bundle, servers.w2s.runner\n"
        "from servers.w2s.methods import BASELINES\n"
        "assert len(BASELINES) >= 4\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True)
