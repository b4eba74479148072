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
    "servers.w2s.testbed", "servers.w2s.evaluate", "servers.w2s.table",
]  # fmt: skip


def _run_sandboxed(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = (
        f"import sys\nfor name in {LABEL_SIDE!r}: sys.modules[name] = None\n"
        f"from servers.w2s.runner import main\nsys.exit(main({list(args)!r}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", script], cwd=workdir, env=env, capture_output=True, text=True)


def test_the_runner_predicts_every_bundle_and_reports_mode_and_progress(
    living: Task, w2s_cache: Path, tmp_path: Path
) -> None:
    testbed = Testbed(w2s_cache)
    (tmp_path / "inputs").mkdir()
    expected = {}
    for seed, shuffled in ((0, False), (1, True)):
        inp = testbed.method_input(testbed.seed_data(living, seed), "test", shuffled=shuffled)
        save_bundle(tmp_path / "inputs" / f"b{seed}.pt", inp, dataclasses.asdict(living.spec.strong))
        expected[f"b{seed}"] = plain_ce(inp).argmax(1).numpy()
    (tmp_path / "method.py").write_text("from servers.w2s.methods.plain_ce import plain_ce as method\n")
    run = _run_sandboxed(tmp_path, "--entry", "method.py:method", "--bundles", "inputs", "--outputs", "outputs")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "outputs" / "mode.txt").read_text().strip() == "frozen"
    assert "done 2/2" in run.stderr
    for name, labels in expected.items():
        text = (tmp_path / "outputs" / f"{name}.txt").read_text()
        assert (parse_predictions(text, len(labels)) == labels).all()


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
    (tmp_path / "inputs").mkdir()
    inp = testbed.method_input(testbed.seed_data(living, 0), "test")
    save_bundle(tmp_path / "inputs" / "b.pt", inp, dataclasses.asdict(living.spec.strong))
    (tmp_path / "method.py").write_text("def method(inp):\n    raise ValueError('my bug 42')\n")
    run = _run_sandboxed(tmp_path, "--entry", "method.py:method", "--bundles", "inputs", "--outputs", "outputs")
    assert run.returncode != 0 and "my bug 42" in run.stderr
