"""A noisy-channel correction of the teacher's labels: estimate how the teacher corrupts the truth, undo it.

Forward loss correction (Patrini, Rozza, Krishna Menon, Nock and Qu, "Making Deep Neural Networks
Robust to Label Noise: a Loss Correction Approach", CVPR 2017). The teacher is a channel
``T[i, j] = P(teacher says j | truth is i)``. The student's clean probabilities pass through ``T``
before the loss, so the student is fitted to explain the teacher's labels as corrupted truth,
and its own output is left to be the truth. ``T`` is estimated with Patrini et al.'s anchor
points: a first student imitates the teacher; the train examples it finds most typical of
each class (its ``ANCHOR`` quantile) show what the teacher says about that class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own convention

from servers.w2s.api import MethodInput
from servers.w2s.heads import fit_predict
from servers.w2s.losses import LossFn

PAPER = "Patrini et al. 2017, Making Deep Neural Networks Robust to Label Noise, CVPR (forward correction)"

ANCHOR = 0.97


def estimate_transition(noisy_probs: torch.Tensor, anchor: float = ANCHOR) -> torch.Tensor:
    """Rows ``T[i]`` = the noisy-label distribution at the ``anchor`` quantile of P(class i)."""
    rows = []
    for label in (0, 1):
        score = noisy_probs[:, label]
        index = int((score - torch.quantile(score, anchor)).abs().argmin())
        rows.append(noisy_probs[index])
    transition = torch.stack(rows)
    return transition / transition.sum(dim=1, keepdim=True)


def forward_corrected(transition: torch.Tensor) -> LossFn:
    """Cross-entropy of the teacher's soft labels against the student's probabilities passed through ``T``."""

    def loss(logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        del progress
        noisy = F.softmax(logits, dim=-1) @ transition
        return -(targets * noisy.clamp_min(1e-6).log()).sum(dim=1).mean()

    return loss


def noisy_channel(inp: MethodInput) -> torch.Tensor:
    """Estimate the teacher's channel from a first student, then train with the forward-corrected loss."""
    strong = inp.strong
    imitation = fit_predict(
        strong.train_features, inp.weak_soft_labels, strong.train_features, recipe=strong.head_recipe, seed=inp.seed
    )
    transition = estimate_transition(imitation)
    return fit_predict(
        strong.train_features,
        inp.weak_soft_labels,
        strong.eval_features,
        recipe=strong.head_recipe,
        loss=forward_corrected(transition),
        seed=inp.seed,
    )
