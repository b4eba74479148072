"""The scripted researcher's method template, run on a small synthetic input (no task data)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from client.scripted.methods import Knobs, read_knobs, render
from servers.w2s.api import NO_MODEL_ACCESS, FinetuneRecipe, HeadRecipe, MethodInput, StrongModel


def _input(n: int = 40, width: int = 12, *, systematic: bool = False, lr: float = 1e-3) -> MethodInput:
    """Random features; the teacher's labels random, or (`systematic`) a function of the features that a
    student can learn, as a teacher's errors are when it errs the same way on every text of a kind."""
    generator = torch.Generator().manual_seed(0)
    train_features = torch.randn(n, width, generator=generator)
    weak = (train_features[:, 0] > 0).float() * 0.8 + 0.1 if systematic else torch.rand(n, generator=generator)
    strong = StrongModel(
        kind="synthetic",
        model_dir="",
        train_features=train_features,
        eval_features=torch.randn(n // 2, width, generator=generator),
        head_recipe=HeadRecipe(epochs=3, lr=lr),
        finetune_recipe=FinetuneRecipe(),
        backend=NO_MODEL_ACCESS,
        feature_mean=np.zeros(width),
        feature_std=np.ones(width),
    )
    return MethodInput(
        task="synthetic",
        train_texts=tuple(f"t{i}" for i in range(n)),
        weak_soft_labels=torch.stack([1 - weak, weak], dim=1),
        eval_texts=tuple(f"e{i}" for i in range(n // 2)),
        strong=strong,
        seed=0,
    )


def test_the_simplicity_students_train_to_convergence_and_the_final_student_keeps_the_task_recipe() -> None:
    knobs = Knobs(base="aux_confidence", mix=0.0, simple=8)
    code = render(knobs, agent="ada", cycle=1, title="t", rationale="r")
    assert read_knobs(code) == knobs  # SIMPLE_EPOCHS is a constant of the template, not a knob
    namespace: dict[str, Any] = {}
    exec(compile(code, "method.py", "exec"), namespace)  # noqa: S102 - the template is this project's code
    calls = _record_fits(namespace)
    assert namespace["method"](_input()).shape == (20, 2)
    converged = 3 * namespace["SIMPLE_EPOCHS"]
    # students of 8 and min(16, 32, all 12) components, the gate's two half-students, the final student
    fits = [(width, epochs) for width, epochs, _ in calls]
    assert fits == [(8, converged), (12, converged), (12, 3), (12, 3), (12, 3)]
    assert namespace["SIMPLE_EPOCHS"] > 1


def _record_fits(namespace: dict[str, Any]) -> list[tuple[int, int, Any]]:
    """Wrap the template's fit_predict: each call's (feature width, epochs, loss) is recorded."""
    calls: list[tuple[int, int, Any]] = []
    fit_predict = namespace["fit_predict"]

    def recorded(features: torch.Tensor, targets: torch.Tensor, predict: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        calls.append((features.shape[1], kwargs["recipe"].epochs, kwargs.get("loss")))
        probs: torch.Tensor = fit_predict(features, targets, predict, **kwargs)
        return probs

    namespace["fit_predict"] = recorded
    return calls


def test_the_gate_drops_the_confidence_loss_where_the_teacher_errs_systematically() -> None:
    """A teacher whose labels a student learns from the features (the negation tasks' kind of error) gets
    plain cross-entropy; random teacher errors (the WordNet tasks' kind) keep the confidence loss; GATE 1
    keeps it always."""
    losses = {}
    for gate in (0.82, 1.0):
        code = render(Knobs(base="aux_confidence", mix=0.0, gate=gate), agent="ada", cycle=1, title="t", rationale="r")
        assert read_knobs(code) == Knobs(base="aux_confidence", mix=0.0, gate=gate)
        for systematic in (True, False):
            namespace: dict[str, Any] = {}
            exec(compile(code, "method.py", "exec"), namespace)  # noqa: S102 - the template is this project's code
            inp = _input(400, systematic=systematic, lr=0.05)
            agreement = namespace["teacher_agreement"](inp)
            assert (agreement > 0.9) if systematic else (agreement < 0.7), agreement
            calls = _record_fits(namespace)
            namespace["method"](inp)
            losses[gate, systematic] = calls[-1][2] is namespace["soft_cross_entropy"]
    assert losses == {(0.82, True): True, (0.82, False): False, (1.0, True): False, (1.0, False): False}
