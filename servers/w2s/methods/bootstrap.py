"""Bootstrapping through intermediate students (Burns et al. 2023, "Weak-to-Strong Generalization",
arXiv:2312.09390, section 4.3.1).

Instead of one large weak-to-strong step, the teacher's labels pass through a chain of students
of growing capacity, each trained on the previous one's predictions. With one frozen strong
model, capacity is the number of top principal components of its features a student sees:
``DIMS`` then all of them. A small student cannot represent the teacher's idiosyncratic errors,
only the task's main directions; each step hands the next a cleaner teacher.
"""

from __future__ import annotations

import torch

from servers.w2s.api import MethodInput
from servers.w2s.heads import fit_predict
from servers.w2s.losses import aux_confidence_loss, soft_cross_entropy

PAPER = "Burns et al. 2023, Weak-to-Strong Generalization, arXiv:2312.09390 (section 4.3.1, bootstrapping)"

DIMS = (16, 64)
COEF = 0.5
WARMUP = 0.1
STAGE_LOSS = soft_cross_entropy


def bootstrap(inp: MethodInput) -> torch.Tensor:
    """Each intermediate student (top-``d`` components) relabels train for the next; the last sees everything."""
    strong = inp.strong
    train, evaluation = strong.train_features, strong.eval_features
    centre = train.mean(dim=0)
    _, _, components = torch.linalg.svd(train - centre, full_matrices=False)
    targets = inp.weak_soft_labels
    loss = aux_confidence_loss(COEF, WARMUP)
    for dims in DIMS:
        project = components[:dims].T
        targets = fit_predict(
            (train - centre) @ project, targets, (train - centre) @ project,
            recipe=strong.head_recipe, loss=STAGE_LOSS, seed=inp.seed,
        )  # fmt: skip
    return fit_predict(train, targets, evaluation, recipe=strong.head_recipe, loss=loss, seed=inp.seed)
