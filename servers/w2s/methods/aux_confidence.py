"""The auxiliary confidence loss of Burns et al. 2023: let the student overrule a weak teacher.

Coefficient 0.5, reached by a linear warm-up over the first 10% of training.
"""

from __future__ import annotations

import torch

from servers.w2s.api import MethodInput
from servers.w2s.heads import fit_predict
from servers.w2s.losses import aux_confidence_loss

PAPER = "Burns et al. 2023, Weak-to-Strong Generalization, arXiv:2312.09390 (section 4.3.2)"

COEF = 0.5
WARMUP = 0.1


def aux_confidence(inp: MethodInput) -> torch.Tensor:
    """Linear head trained on weak soft labels mixed with its own hardened predictions."""
    strong = inp.strong
    return fit_predict(
        strong.train_features,
        inp.weak_soft_labels,
        strong.eval_features,
        recipe=strong.head_recipe,
        loss=aux_confidence_loss(COEF, WARMUP),
        seed=inp.seed,
    )
