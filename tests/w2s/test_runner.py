"""The runner, as a sandbox runs it: only the sandbox-visible modules importable, no labels."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from servers.w2s.bundle import parse_predictions, save_bundle
from servers.w2s.methods import plain_ce
from servers.w2s.tasks import Task
from servers.w2s.testbed import Testbed

ROOT = Path(__file__).resolve().parents[2]
LABEL_SIDE = [
    "servers.pgr", "servers.w2s.tasks", "servers.w2s.splits", "servers.w2s.weak", "servers.w2s.cache",
    "servers.w2s.testbed", "servers.w2s.evaluate", "servers.w2s.table", "servers.w2s.controls", "servers.w2s.wordnet",
]  # fmt: skip


def _run_sandboxed(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = (
        f"import sys\nfor name in {LABEL_SIDE!r}: sys.modules[name] = None\n"
        f"from servers.w2s.runner import main\nsys.exit(main({list(args)!r}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", script], cwd=workdir, env=env, capture_output=True, text=True)


def test_the_runner_predicts_one_bundle_and_declares_the_mode(living: Task, w2s_cache: Path, tmp_path: Path) -> None:
    testbed = Testbed(w2s_cache)
    inp = testbed.method_input(testbed.seed_data(living, 1), "test", method_seed=12345, model_access=False)
    save_bundle(tmp_path / "run.pt", inp, dataclasses.asdict(living.spec.strong))
    expected = plain_ce(inp).argmax(1).numpy()
    (tmp_path / "method.py").write_text("from servers.w2s.methods.plain_ce import plain_ce as method\n")
    run = _run_sandboxed(tmp_path, "--entry", "method.py:method", "--bundle", "run.pt", "--out", "predictions.txt")
    assert run.returncode == 0, run.stderr
    assert (parse_predictions((tmp_path / "predictions.txt").read_text(), len(expected)) == expected).all()
    declared = _run_sandboxed(tmp_path, "--entry", "method.py:method", "--declare-mode", "mode.txt")
    assert declared.returncode == 0 and (tmp_path / "mode.txt").read_text().strip() == "frozen"


def test_a_frozen_run_cannot_use_the_strong_models_weights(living: Task, w2s_cache: Path, tmp_path: Path) -> None:
    testbed = Testbed(w2s_cache)
    inp = testbed.method_input(testbed.seed_data(living, 0), "test", model_access=False)
    save_bundle(tmp_path / "run.pt", inp, dataclasses.asdict(living.spec.strong))
    (tmp_path / "method.py").write_text(
        "def method(inp):\n    return inp.strong.fine_tune(inp.train_texts, inp.weak_soft_labels, inp.eval_texts)\n"
    )
    run = _run_sandboxed(tmp_path, "--entry", "method.py:method", "--bundle", "run.pt")
    assert run.returncode != 0 and "this run is frozen" in run.stderr


def test_the_runner_checks_a_method_on_a_tasks_public_inputs(living: Task, w2s_cache: Path, tmp_path: Path) -> None:
    testbed = Testbed(w2s_cache)
    inp = testbed.method_input(testbed.seed_data(living, 0), "validation")
    (tmp_path / "tasks" / living.name).mkdir(parents=True)
    save_bundle(tmp_path / "tasks" / living.name / "validation.pt", inp, dataclasses.asdict(living.spec.strong))
    (tmp_path / "method.py").write_text(
        "import numpy as np\n\ndef method(inp):\n    return np.ones(len(inp.eval_texts), dtype=int)\n"
    )
    run = _run_sandboxed(tmp_path, "--task", living.name, "--inputs", "tasks", "--entry", "method.py:method")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "predictions.txt").read_text().strip() == "1" * len(inp.eval_texts)


def test_a_failing_method_fails_the_run_with_its_traceback(living: Task, w2s_cache: Path, tmp_path: Path) -> None:
    testbed = Testbed(w2s_cache)
    inp = testbed.method_input(testbed.seed_data(living, 0), "test")
    save_bundle(tmp_path / "b.pt", inp, dataclasses.asdict(living.spec.strong))
    (tmp_path / "method.py").write_text("def method(inp):\n    raise ValueError('my bug 42')\n")
    run = _run_sandboxed(tmp_path, "--entry", "method.py:method", "--bundle", "b.pt")
    assert run.returncode != 0 and "my bug 42" in run.stderr
