"""Train only on the weak labels the teacher is most sure of: confident weak labels are more often right."""

from __future__ import annotations

import torch

from servers.w2s.api import MethodInput
from servers.w2s.heads import fit_predict

PAPER = "Northcutt et al. 2021, Confident Learning, JAIR 70 (pruning the least trusted labels)"

KEEP = 0.5


def confident_rows(weak_soft_labels: torch.Tensor, keep: float) -> torch.Tensor:
    """Indices of the ``keep`` share of rows with the largest |P(1) - 0.5| (at least one)."""
    confidence = (weak_soft_labels[:, 1] - 0.5).abs()
    return torch.argsort(confidence, descending=True, stable=True)[: max(1, round(keep * len(confidence)))]


def top_confident(inp: MethodInput) -> torch.Tensor:
    """Plain cross-entropy on the half of train with the largest |P(1) - 0.5| under the weak model."""
    keep = confident_rows(inp.weak_soft_labels, KEEP)
    strong = inp.strong
    return fit_predict(
        strong.train_features[keep],
        inp.weak_soft_labels[keep],
        strong.eval_features,
        recipe=strong.head_recipe,
        seed=inp.seed,
    )
