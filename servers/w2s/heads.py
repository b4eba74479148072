"""A linear head on frozen strong-model features: the student of frozen-mode methods and the ceiling.

The head starts at zero (as in Burns et al. 2023), so before training it predicts 50/50 and any
preference it ends with came from the targets.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from servers.w2s.api import HeadRecipe
from servers.w2s.losses import LossFn, soft_cross_entropy

__all__ = ["fit_predict", "predict_proba", "train_linear_head", "zero_head"]


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread: a head's ops are tiny, and on a busy machine a second OpenMP thread
    waiting for a core made training 8-12x slower (6 s against 50-76 s for 1,500 steps, bench/README.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_linear_head(
    features: torch.Tensor,
    targets: torch.Tensor | np.ndarray,
    *,
    recipe: HeadRecipe,
    loss: LossFn = soft_cross_entropy,
    seed: int = 0,
) -> torch.nn.Linear:
    """Train a zero-initialised linear head with Adam on (features, soft targets (n, 2))."""
    x = features.float()
    y = torch.as_tensor(np.asarray(targets, dtype=np.float32))
    if y.shape != (x.shape[0], 2):
        raise ValueError(f"targets must have shape ({x.shape[0]}, 2), got {tuple(y.shape)}")
    head = zero_head(x.shape[1])
    optimiser = torch.optim.Adam(head.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    steps_per_epoch = max(1, -(-n // recipe.batch_size))
    total = recipe.epochs * steps_per_epoch
    step = 0
    with _one_thread():
        for _ in range(recipe.epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, recipe.batch_size):
                batch = order[start : start + recipe.batch_size]
                value = loss(head(x[batch]), y[batch], step / total)
                optimiser.zero_grad()
                value.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
                optimiser.step()
                step += 1
    return head


def zero_head(width: int) -> torch.nn.Linear:
    """A two-class linear head that starts at zero: its first predictions are 50/50, whatever the seed."""
    head = torch.nn.Linear(width, 2)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    return head


@torch.no_grad()
def predict_proba(head: torch.nn.Linear, features: torch.Tensor) -> torch.Tensor:
    """Class probabilities (n, 2) of a trained head."""
    return torch.softmax(head(features.float()), dim=-1)


def fit_predict(
    features: torch.Tensor,
    targets: torch.Tensor | np.ndarray,
    predict_features: torch.Tensor,
    *,
    recipe: HeadRecipe,
    loss: LossFn = soft_cross_entropy,
    seed: int = 0,
) -> torch.Tensor:
    """Train a head on (features, targets) and return probabilities for predict_features."""
    head = train_linear_head(features, targets, recipe=recipe, loss=loss, seed=seed)
    return predict_proba(head, predict_features)
