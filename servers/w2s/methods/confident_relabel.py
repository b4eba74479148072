"""Filter the teacher's least confident labels and relabel them with the student.

Confident learning (Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in
Dataset Labels", JAIR 2021) prunes the labels a model trusts least and relabels them; here the
teacher's own confidence ranks its labels. A head trained on the teacher's most confident
``KEEP`` share (the ``top_confident`` baseline) relabels the rest with its hardened predictions,
and the final head learns from all of train with the auxiliary confidence loss. The student
overrules the teacher only where the teacher itself was unsure.
"""

from __future__ import annotations

import torch

from servers.w2s.api import MethodInput
from servers.w2s.heads import fit_predict
from servers.w2s.losses import aux_confidence_loss
from servers.w2s.methods.top_confident import confident_rows

PAPER = "Northcutt et al. 2021, Confident Learning, JAIR 70 (prune and relabel)"

KEEP = 0.5
COEF = 0.5
WARMUP = 0.1


def confident_relabel(inp: MethodInput) -> torch.Tensor:
    """Train on the confident half, relabel the unsure half with that student, then train on all of it."""
    strong, targets = inp.strong, inp.weak_soft_labels.clone()
    keep = confident_rows(targets, KEEP)
    unsure = torch.ones(len(targets), dtype=torch.bool)
    unsure[keep] = False
    relabelled = fit_predict(
        strong.train_features[keep],
        targets[keep],
        strong.train_features[unsure],
        recipe=strong.head_recipe,
        seed=inp.seed,
    )
    targets[unsure] = torch.nn.functional.one_hot(relabelled.argmax(dim=1), 2).float()
    return fit_predict(
        strong.train_features,
        targets,
        strong.eval_features,
        recipe=strong.head_recipe,
        loss=aux_confidence_loss(COEF, WARMUP),
        seed=inp.seed,
    )
