"""Smooth the weak labels over the strong model's neighbourhoods before training.

Weak labels that disagree with their neighbours in the strong representation are likely errors;
averaging over the k nearest neighbours (cosine, in standardised strong features) cancels such
isolated errors, while errors the strong model cannot tell apart from right labels stay.
"""

from __future__ import annotations

import torch

from servers.w2s.api import MethodInput
from servers.w2s.heads import fit_predict

PAPER = "Bahri, Jiang and Gupta 2020, Deep k-NN for Noisy Labels, ICML"

K = 15


def knn_relabel(inp: MethodInput) -> torch.Tensor:
    """Plain cross-entropy on the mean weak label of each train example's K nearest neighbours (itself included)."""
    strong = inp.strong
    unit = torch.nn.functional.normalize(strong.train_features, dim=1)
    neighbours = (unit @ unit.T).topk(min(K, len(unit)), dim=1).indices
    targets = inp.weak_soft_labels[neighbours].mean(dim=1)
    return fit_predict(strong.train_features, targets, strong.eval_features, recipe=strong.head_recipe, seed=inp.seed)
