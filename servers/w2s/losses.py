"""Training losses shared by heads and fine-tuning.

A loss is ``loss(logits (b, 2), targets (b, 2) probabilities, progress in [0, 1]) -> scalar``;
``progress`` is the fraction of training done, so losses can warm up.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812 PyTorch's own convention

__all__ = ["LossFn", "aux_confidence_loss", "soft_cross_entropy"]

LossFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
    """Cross-entropy against soft targets: the student imitates the teacher's probabilities."""
    del progress
    return F.cross_entropy(logits, targets)


def aux_confidence_loss(coef: float = 0.5, warmup: float = 0.1) -> LossFn:
    """The auxiliary confidence loss of Burns et al. 2023 (weak-to-strong generalisation).

    The target mixes the weak label with the student's own hardened prediction, so the student
    can overrule the teacher where it is confident. Hardening thresholds the batch at the quantile
    that matches the weak labels' class balance (as in the paper's code), which stops the student
    collapsing onto one class. The mixing weight rises linearly from 0 to ``coef`` over the first
    ``warmup`` fraction of training.
    """

    def loss(logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        weight = coef * min(1.0, progress / warmup) if warmup > 0 else coef
        probs = torch.softmax(logits.detach(), dim=-1)
        threshold = torch.quantile(probs[:, 1], 1.0 - targets[:, 1].mean())
        hard_one = (probs[:, 1] > threshold).float()
        hardened = torch.stack([1.0 - hard_one, hard_one], dim=1)
        return F.cross_entropy(logits, (1.0 - weight) * targets + weight * hardened)

    return loss
