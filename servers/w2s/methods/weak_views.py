"""Co-supervision by several weak views: students that each see one part of the strong features check each other.

Co-training (Blum and Mitchell, "Combining Labeled and Unlabeled Data with Co-Training", COLT
1998) lets learners with different views of the data correct each other's labels; co-supervised
weak-to-strong learning (Liu and Alahi, "Co-Supervised Learning: Improving Weak-to-Strong
Generalization with Hierarchical Mixture of Experts", arXiv:2402.15505, 2024) uses several
supervisors instead of one. Here ``VIEWS`` students each learn the teacher's labels from a
disjoint random subset of the strong features; where the other views agree, their hardened vote
joins the teacher's label (weight ``COEF``) in the final student's target. Errors of the teacher
that not every view can fit are voted down.
"""

from __future__ import annotations

import torch

from servers.w2s.api import MethodInput
from servers.w2s.heads import fit_predict
from servers.w2s.losses import soft_cross_entropy

PAPER = "Blum and Mitchell 1998, co-training, COLT; Liu and Alahi 2024, co-supervised W2S, arXiv:2402.15505"

VIEWS = 4
COEF = 0.5


def weak_views(inp: MethodInput) -> torch.Tensor:
    """Teacher labels mixed with the hardened mean vote of ``VIEWS`` feature-subset students."""
    strong = inp.strong
    train, teacher = strong.train_features, inp.weak_soft_labels
    order = torch.randperm(train.shape[1], generator=torch.Generator().manual_seed(inp.seed))
    votes = torch.stack(
        [
            fit_predict(train[:, view], teacher, train[:, view], recipe=strong.head_recipe, seed=inp.seed)
            for view in order.chunk(VIEWS)
        ]
    ).mean(dim=0)
    hardened = torch.nn.functional.one_hot(votes.argmax(dim=1), 2).float()
    targets = (1 - COEF) * teacher + COEF * hardened
    return fit_predict(
        train, targets, strong.eval_features, recipe=strong.head_recipe, loss=soft_cross_entropy, seed=inp.seed
    )
