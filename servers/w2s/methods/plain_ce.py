"""Plain cross-entropy on the weak soft labels: the naive weak-to-strong baseline."""

from __future__ import annotations

import torch

from servers.w2s.api import MethodInput
from servers.w2s.heads import fit_predict

PAPER = "Burns et al. 2023, Weak-to-Strong Generalization, arXiv:2312.09390 (naive fine-tuning)"


def plain_ce(inp: MethodInput) -> torch.Tensor:
    """Train the task's linear head on frozen strong features to imitate the weak probabilities."""
    strong = inp.strong
    return fit_predict(
        strong.train_features, inp.weak_soft_labels, strong.eval_features, recipe=strong.head_recipe, seed=inp.seed
    )
