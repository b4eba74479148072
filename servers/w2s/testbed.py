"""Everything on the label side of one (task, seed): splits, weak labels, ceiling, strong features.

What does not depend on the method is computed once and cached on disk, keyed by the data hash,
the configuration and the seed, so evaluating a method pays only for the method. A local model is
keyed by its path, not its weights: point the task at a new directory (or clear the cache) when
the weights change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from servers.w2s.api import FINETUNE, FROZEN, NO_MODEL_ACCESS, MethodInput, StrongMode, StrongModel
from servers.w2s.cache import DiskCache
from servers.w2s.encoders import EncoderSpec, LazyEncoder, load_encoder
from servers.w2s.heads import fit_predict
from servers.w2s.losses import soft_cross_entropy
from servers.w2s.splits import EvalSplit, Splits, make_splits
from servers.w2s.tasks import Task
from servers.w2s.weak import TfidfSpec, feature_weak, tfidf_weak

__all__ = ["CACHE_VERSION", "SeedData", "Testbed"]

logger = logging.getLogger(__name__)

CACHE_VERSION = 2
"""Bump when a change to this code changes what a cache entry would contain."""

EVAL_SPLITS: tuple[EvalSplit, ...] = ("validation", "test")


@dataclass(frozen=True, kw_only=True, eq=False)
class SeedData:
    """One seed of one task, ready for a method: weak and ceiling accuracy per evaluation split."""

    task: Task
    seed: int
    mode: StrongMode
    splits: Splits
    weak_train_probs: np.ndarray
    acc_weak: dict[str, float]
    acc_ceiling: dict[str, float]
    features: np.ndarray
    feature_mean: np.ndarray
    feature_std: np.ndarray

    def standardised(self, rows: np.ndarray) -> torch.Tensor:
        return _standardise(self.features, self.feature_mean, self.feature_std, rows)


def _standardise(features: np.ndarray, mean: np.ndarray, std: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy((features[rows] - mean) / std).float()


def _one_hot(labels: np.ndarray) -> np.ndarray:
    rows: np.ndarray = np.eye(2, dtype=np.float32)[labels]
    return rows


def _accuracies(probs: np.ndarray, labels: np.ndarray, splits: Splits) -> dict[str, np.ndarray]:
    """Split the stacked (validation, test) predictions back and score each part."""
    n_val = len(splits.validation)
    parts = {"validation": probs[:n_val], "test": probs[n_val:]}
    return {
        f"acc_{name}": np.float64(np.mean(parts[name].argmax(1) == labels[splits[name]]))  # type: ignore[misc]  # a scalar the cache stores as a 0-d array
        for name in EVAL_SPLITS
    }


class Testbed:
    """Prepares (task, seed) data through a disk cache under ``cache_dir``."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, cache_dir: Path) -> None:
        self.cache = DiskCache(cache_dir)

    def features(self, task: Task, spec: EncoderSpec) -> np.ndarray:
        """Raw mean-pooled features of every text of the task (cached)."""
        key = {"v": CACHE_VERSION, "texts": task.texts_hash, "encoder": asdict(spec)}

        def compute() -> dict[str, np.ndarray]:
            logger.info("task %s: embedding %d texts with %s", task.name, len(task.texts), spec.kind)
            return {"features": load_encoder(spec).embed(task.texts)}

        return self.cache.get_or_compute("features", key, compute)["features"]

    def _base_key(self, task: Task, seed: int) -> dict[str, object]:
        return {"v": CACHE_VERSION, "data": task.data_hash, "fractions": asdict(task.spec.fractions), "seed": seed}

    def _weak(self, task: Task, splits: Splits, seed: int) -> dict[str, np.ndarray]:
        spec = task.spec.weak
        key = {**self._base_key(task, seed), "weak": {"type": type(spec).__name__, **asdict(spec)}}

        def compute() -> dict[str, np.ndarray]:
            logger.info("task %s seed %d: training the weak model (%s)", task.name, seed, spec.kind)
            fit_rows, fit_labels = splits.weak_train, task.labels[splits.weak_train]
            predict_rows = np.concatenate([splits.train, splits.validation, splits.test])
            if isinstance(spec, TfidfSpec):
                texts = task.texts
                probs = tfidf_weak(spec, [texts[i] for i in fit_rows], fit_labels, [texts[i] for i in predict_rows])
            else:
                feats = self.features(task, spec)
                probs = feature_weak(feats[fit_rows], fit_labels, feats[predict_rows])
            n_train = len(splits.train)
            return {"train_probs": probs[:n_train], **_accuracies(probs[n_train:], task.labels, splits)}

        return self.cache.get_or_compute("weak", key, compute)

    def _ceiling(
        self,
        task: Task,
        seed: int,
        mode: StrongMode,
        splits: Splits,
        standardised: Callable[[np.ndarray], torch.Tensor],
    ) -> dict[str, np.ndarray]:
        spec = task.spec
        recipe = spec.finetune if mode == FINETUNE else spec.head
        key = {**self._base_key(task, seed), "strong": asdict(spec.strong), "mode": mode, "recipe": asdict(recipe)}

        def compute() -> dict[str, np.ndarray]:
            logger.info("task %s seed %d: training the %s ceiling", task.name, seed, mode)
            targets = _one_hot(task.labels[splits.train])
            eval_rows = np.concatenate([splits.validation, splits.test])
            if mode == FINETUNE:
                probs = LazyEncoder(spec.strong).fine_tune(
                    [task.texts[i] for i in splits.train],
                    targets,
                    [task.texts[i] for i in eval_rows],
                    recipe=spec.finetune,
                    loss=soft_cross_entropy,
                    seed=seed,
                )
            else:
                probs = fit_predict(
                    standardised(splits.train), targets, standardised(eval_rows), recipe=spec.head, seed=seed
                ).numpy()
            return _accuracies(probs, task.labels, splits)

        return self.cache.get_or_compute("ceiling", key, compute)

    def teacher_accuracy(self, task: Task, seed: int) -> float:
        """The weak teacher's test accuracy on one seed, without embedding anything (cached)."""
        weak = self._weak(task, make_splits(task.split_labels, task.spec.fractions, seed), seed)
        return float(weak["acc_test"])

    def seed_data(self, task: Task, seed: int, mode: StrongMode = FROZEN) -> SeedData:
        """Splits, weak labels, weak and ceiling accuracies and strong features for one seed."""
        splits = make_splits(task.split_labels, task.spec.fractions, seed)
        weak = self._weak(task, splits, seed)
        features = self.features(task, task.spec.strong)
        train = features[splits.train]
        mean, std = train.mean(axis=0), train.std(axis=0) + 1e-6
        ceiling = self._ceiling(task, seed, mode, splits, partial(_standardise, features, mean, std))
        return SeedData(
            task=task,
            seed=seed,
            mode=mode,
            splits=splits,
            weak_train_probs=weak["train_probs"],
            acc_weak={name: float(weak[f"acc_{name}"]) for name in EVAL_SPLITS},
            acc_ceiling={name: float(ceiling[f"acc_{name}"]) for name in EVAL_SPLITS},
            features=features,
            feature_mean=mean,
            feature_std=std,
        )

    def method_input(
        self,
        data: SeedData,
        split: EvalSplit,
        *,
        weak_order: np.ndarray | None = None,
        method_seed: int | None = None,
        model_access: bool = True,
    ) -> MethodInput:
        """The method's view of a seed: no labels.

        ``weak_order`` permutes the weak labels across train (the shuffled-teacher control);
        ``method_seed`` replaces the seed the method sees (official runs hide the real one);
        without ``model_access`` the strong model's weights cannot be used (frozen official runs).
        """
        if split not in EVAL_SPLITS:
            raise ValueError(f"split must be one of {EVAL_SPLITS}, got {split!r}")
        task, splits = data.task, data.splits
        weak = data.weak_train_probs if weak_order is None else data.weak_train_probs[weak_order]
        strong = StrongModel(
            kind=task.spec.strong.kind,
            model_dir=str(task.spec.strong.model_dir()) if model_access else "",
            train_features=data.standardised(splits.train),
            eval_features=data.standardised(splits[split]),
            head_recipe=task.spec.head,
            finetune_recipe=task.spec.finetune,
            backend=LazyEncoder(task.spec.strong) if model_access else NO_MODEL_ACCESS,
            feature_mean=data.feature_mean,
            feature_std=data.feature_std,
        )
        return MethodInput(
            task=task.name,
            train_texts=tuple(task.texts[i] for i in splits.train),
            weak_soft_labels=torch.from_numpy(np.asarray(weak, dtype=np.float32)),
            eval_texts=tuple(task.texts[i] for i in splits[split]),
            strong=strong,
            seed=data.seed if method_seed is None else method_seed,
        )
