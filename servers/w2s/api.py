"""The method API: everything a weak-to-strong method sees, and nothing more.

A method is a callable ``method(inp: MethodInput) -> Prediction``. It gets the train texts with
the weak model's soft labels, the unlabelled evaluation texts and the strong model, and returns
class probabilities of shape (n_eval, 2) or hard labels of shape (n_eval,) for the evaluation
texts. It never receives ground truth: this module imports no task data and no label code, so it
(and ``servers.w2s.methods``) can be imported where the task packs are absent.

The strong model is offered two ways:

* frozen: ``strong.train_features`` / ``strong.eval_features`` are cached, mean-pooled,
  standardised features; train a head on them (see ``servers.w2s.heads``). This is the default.
* fine-tuning: ``strong.fine_tune(...)`` trains the whole model with a linear head, and
  ``strong.embed(...)`` embeds other texts. Both need the model's weights, so a method that uses
  them must be marked with ``@finetunes``: its score is compared with a fine-tuned ceiling, and in
  official runs only such methods see the weights (a frozen run has no model to load).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import torch

from servers.w2s.losses import LossFn, soft_cross_entropy

__all__ = [
    "FINETUNE",
    "FROZEN",
    "NO_MODEL_ACCESS",
    "FinetuneRecipe",
    "HeadRecipe",
    "LossFn",
    "Method",
    "MethodInput",
    "ModelAccessError",
    "Prediction",
    "StrongBackend",
    "StrongMode",
    "StrongModel",
    "finetunes",
    "strong_mode",
]

StrongMode = Literal["frozen", "finetune"]
FROZEN: StrongMode = "frozen"
FINETUNE: StrongMode = "finetune"

Prediction = np.ndarray | torch.Tensor
"""Probabilities (n_eval, 2) or hard labels (n_eval,) in {0, 1}."""


@dataclass(frozen=True, kw_only=True)
class HeadRecipe:
    """How the task trains a linear head on frozen features (the ceiling uses the same recipe)."""

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 32
    weight_decay: float = 0.0


@dataclass(frozen=True, kw_only=True)
class FinetuneRecipe:
    """How the task fine-tunes the whole strong model (used by ``@finetunes`` methods)."""

    epochs: int = 2
    lr: float = 5e-5
    batch_size: int = 32
    weight_decay: float = 0.0


class StrongBackend(Protocol):
    """What a loaded strong model can do; implemented by ``servers.w2s.encoders.Encoder``."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def fine_tune(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        predict_texts: Sequence[str],
        *,
        recipe: FinetuneRecipe,
        loss: LossFn,
        seed: int,
    ) -> np.ndarray: ...


class ModelAccessError(RuntimeError):
    """A frozen official run asked for the strong model's weights."""


class _NoModelAccess:
    """The backend of a frozen official run: the features are all there is."""

    def _refuse(self, *_: object, **__: object) -> np.ndarray:
        raise ModelAccessError(
            "this run is frozen: the strong model's weights are not available to it; use"
            " strong.train_features / strong.eval_features, or mark the method @finetunes to embed or fine-tune"
        )

    embed = fine_tune = _refuse


NO_MODEL_ACCESS: StrongBackend = _NoModelAccess()


@dataclass(frozen=True, kw_only=True, eq=False)
class StrongModel:
    """The strong model: cached frozen features plus helpers to embed new texts and fine-tune."""

    kind: str
    model_dir: str
    train_features: torch.Tensor
    eval_features: torch.Tensor
    head_recipe: HeadRecipe
    finetune_recipe: FinetuneRecipe
    backend: StrongBackend = field(repr=False)
    feature_mean: np.ndarray = field(repr=False)
    feature_std: np.ndarray = field(repr=False)

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Features for other texts, standardised exactly like ``train_features``."""
        raw = self.backend.embed(list(texts))
        return torch.from_numpy((raw - self.feature_mean) / self.feature_std).float()

    def fine_tune(
        self,
        texts: Sequence[str],
        targets: np.ndarray | torch.Tensor,
        predict_texts: Sequence[str],
        *,
        loss: LossFn = soft_cross_entropy,
        seed: int = 0,
        recipe: FinetuneRecipe | None = None,
    ) -> torch.Tensor:
        """Fine-tune a fresh copy on (texts, soft targets (n, 2)); return probabilities for predict_texts."""
        probs = self.backend.fine_tune(
            list(texts),
            np.asarray(targets, dtype=np.float32),
            list(predict_texts),
            recipe=recipe or self.finetune_recipe,
            loss=loss,
            seed=seed,
        )
        return torch.from_numpy(probs)


@dataclass(frozen=True, kw_only=True, eq=False)
class MethodInput:
    """One W2S problem: learn from weak soft labels on train, predict the evaluation texts."""

    task: str
    train_texts: tuple[str, ...]
    weak_soft_labels: torch.Tensor
    """Weak model probabilities for ``train_texts``, shape (n_train, 2); column 1 is P(label 1)."""
    eval_texts: tuple[str, ...]
    strong: StrongModel
    seed: int


Method = Callable[[MethodInput], Prediction]


def finetunes(method: Method) -> Method:
    """Mark a method as fine-tuning the strong model, so it is scored against a fine-tuned ceiling."""
    method.strong_mode = FINETUNE  # type: ignore[attr-defined]
    return method


def strong_mode(method: Method) -> StrongMode:
    """The strong-model mode a method asks for: ``"finetune"`` if marked ``@finetunes``, else ``"frozen"``."""
    mode = getattr(method, "strong_mode", FROZEN)
    if mode not in (FROZEN, FINETUNE):
        raise ValueError(f"unknown strong_mode {mode!r}; expected 'frozen' or 'finetune'")
    return mode
