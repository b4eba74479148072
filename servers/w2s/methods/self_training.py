"""Self-training on the student's own hard labels (pseudo-labelling).

Lee, "Pseudo-Label: The Simple and Efficient Semi-Supervised Learning Method for Deep Neural
Networks", ICML 2013 workshop on challenges in representation learning. A first student imitates
the teacher; its hardened predictions on train become the labels of a second student, trained
on them mixed with the teacher's (``TEACHER`` weight). Where the first student generalised past
the teacher's errors, the second learns its answers with full confidence.
"""

from __future__ import annotations

import torch

from servers.w2s.api import MethodInput
from servers.w2s.heads import fit_predict

PAPER = "Lee 2013, Pseudo-Label, ICML workshop on challenges in representation learning"

TEACHER = 0.5


def self_training(inp: MethodInput) -> torch.Tensor:
    """A student of the teacher relabels train with hard labels; a second student learns them with the teacher's."""
    strong = inp.strong
    first = fit_predict(
        strong.train_features, inp.weak_soft_labels, strong.train_features, recipe=strong.head_recipe, seed=inp.seed
    )
    pseudo = torch.nn.functional.one_hot(first.argmax(dim=1), 2).float()
    targets = TEACHER * inp.weak_soft_labels + (1 - TEACHER) * pseudo
    return fit_predict(strong.train_features, targets, strong.eval_features, recipe=strong.head_recipe, seed=inp.seed)
