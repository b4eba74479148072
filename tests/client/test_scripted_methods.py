"""The scripted researcher's method template, run on a small synthetic input (no task data)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from client.scripted.methods import Knobs, read_knobs, render
from servers.w2s.api import NO_MODEL_ACCESS, FinetuneRecipe, HeadRecipe, MethodInput, StrongModel


def _input(n: int = 40, width: int = 12) -> MethodInput:
    generator = torch.Generator().manual_seed(0)
    weak = torch.rand(n, generator=generator)
    strong = StrongModel(
        kind="synthetic",
        model_dir="",
        train_features=torch.randn(n, width, generator=generator),
        eval_features=torch.randn(n // 2, width, generator=generator),
        head_recipe=HeadRecipe(epochs=3),
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
    calls: list[tuple[int, int]] = []
    fit_predict = namespace["fit_predict"]

    def recorded(features: torch.Tensor, targets: torch.Tensor, predict: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        calls.append((features.shape[1], kwargs["recipe"].epochs))
        probs: torch.Tensor = fit_predict(features, targets, predict, **kwargs)
        return probs

    namespace["fit_predict"] = recorded
    assert namespace["method"](_input()).shape == (20, 2)
    converged = 3 * namespace["SIMPLE_EPOCHS"]
    assert calls == [(8, converged), (12, converged), (12, 3)]  # students of 8 and min(16, 32, all 12) components
    assert namespace["SIMPLE_EPOCHS"] > 1
