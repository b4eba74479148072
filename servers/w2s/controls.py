"""Teacher controls: runs a method cannot tell from real ones, which show what its teacher earned.

* ``shuffled``: the weak labels permuted across train. A method that follows its teacher has
  nothing left to learn; it is scored orientation-free (``max(acc, 1 - acc)``), so a method that
  takes only the sign of its answer from the teacher still scores as high as without control.
* ``decoy``: the same texts relabelled by a secret direction in the strong model's feature
  space, with a weak teacher trained on that relabelling, scored against the decoy labels. A
  method that learns from its teacher learns the decoy; one that answers from its own idea of
  the task (clusters, prototypes, word lists) answers the real task and scores near chance.

Both draw their randomness from a key the method never sees (the server's secret).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:  # the task loader imports torch; the PGR models and the console need only the names here
    from servers.w2s.tasks import Task

__all__ = ["CONTROLS", "DECOY_NOISE", "Control", "control_accuracy", "decoy_task", "shuffled_order"]

Control = Literal["none", "shuffled", "decoy"]
CONTROLS: tuple[Control, ...] = ("none", "shuffled", "decoy")

DECOY_COMPONENTS = 8
"""The decoy direction mixes this many top principal components of the strong features."""
DECOY_NOISE = 0.1
"""Share of decoy labels flipped at random, so the decoy is not perfectly separable (real tasks are not)."""


def _rng(key: bytes, *parts: object) -> np.random.Generator:
    digest = hashlib.sha256(key + repr(parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def shuffled_order(n: int, key: bytes) -> np.ndarray:
    """The permutation of the weak labels in a shuffled-teacher run."""
    return _rng(key, "shuffled", n).permutation(n)


def control_accuracy(control: Control, accuracy: float) -> float:
    """The accuracy a control run is scored by: orientation-free for the shuffled teacher."""
    return max(accuracy, 1.0 - accuracy) if control == "shuffled" else accuracy


def decoy_task(task: Task, features: np.ndarray, key: bytes) -> Task:
    """The task's texts relabelled by a secret direction in the strong features, orthogonal to the task's.

    The direction is a random mix of the top principal components (weighted by their spread, so
    it follows structure the strong model really has), made orthogonal to the direction between
    the task's class means, and cut at its median; ``DECOY_NOISE`` of the labels are then flipped.
    Splits stay the task's own (``strata``), so a decoy run holds exactly a real run's texts.
    """
    x = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-6)
    _, spread, components = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    rng = _rng(key, "decoy", task.name, task.data_hash)
    top = components[:DECOY_COMPONENTS]
    direction = (rng.standard_normal(len(top)) * spread[: len(top)]) @ top
    real = x[task.labels == 1].mean(axis=0) - x[task.labels == 0].mean(axis=0)
    real /= np.linalg.norm(real) + 1e-12
    direction -= (direction @ real) * real
    projection = x @ direction
    labels = (projection > np.median(projection)).astype(np.int64)
    flip = rng.random(len(labels)) < DECOY_NOISE
    labels[flip] = 1 - labels[flip]
    digest = hashlib.sha256(task.data_hash.encode() + labels.tobytes()).hexdigest()
    return dataclasses.replace(task, labels=labels, data_hash=digest, strata=task.split_labels)
