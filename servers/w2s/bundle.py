"""Method inputs as files, and predictions as text: how a method runs in a sandbox without labels.

A bundle holds exactly what a method sees (``MethodInput``: texts, weak soft labels, frozen
features, recipes) plus the strong model's spec so ``embed``/``fine_tune`` work where it is
loaded. It is a torch file of plain tensors, lists and dicts, loaded with ``weights_only=True``,
so opening one executes nothing. Predictions travel as one '0' or '1' per evaluation text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from servers.w2s.api import NO_MODEL_ACCESS, FinetuneRecipe, HeadRecipe, MethodInput, Prediction, StrongModel
from servers.w2s.encoders import EncoderSpec, LazyEncoder
from servers.w2s.scoring import to_labels

__all__ = ["BUNDLE_FORMAT", "format_predictions", "load_bundle", "parse_predictions", "save_bundle"]

BUNDLE_FORMAT = 2

BundleFile = str | Path | IO[bytes]


def save_bundle(file: BundleFile, inp: MethodInput, encoder: Mapping[str, Any]) -> None:
    """Write a method input; ``encoder`` is the strong model's ``EncoderSpec`` as a dict."""
    strong = inp.strong
    payload = {
        "format": BUNDLE_FORMAT,
        "task": inp.task,
        "seed": inp.seed,
        "train_texts": list(inp.train_texts),
        "weak_soft_labels": inp.weak_soft_labels.float(),
        "eval_texts": list(inp.eval_texts),
        "strong": {
            "kind": strong.kind,
            "model_dir": strong.model_dir,
            "train_features": strong.train_features.float(),
            "eval_features": strong.eval_features.float(),
            "feature_mean": torch.from_numpy(np.asarray(strong.feature_mean, dtype=np.float32)),
            "feature_std": torch.from_numpy(np.asarray(strong.feature_std, dtype=np.float32)),
            "head_recipe": asdict(strong.head_recipe),
            "finetune_recipe": asdict(strong.finetune_recipe),
            "encoder": dict(encoder),
            "model_access": strong.backend is not NO_MODEL_ACCESS,
        },
    }
    torch.save(payload, file)


def load_bundle(file: BundleFile) -> MethodInput:
    """Read a method input written by ``save_bundle``; its strong model loads lazily when used."""
    payload = torch.load(file, weights_only=True)
    if payload.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"unsupported bundle format {payload.get('format')!r}; expected {BUNDLE_FORMAT}")
    strong = payload["strong"]
    return MethodInput(
        task=payload["task"],
        train_texts=tuple(payload["train_texts"]),
        weak_soft_labels=payload["weak_soft_labels"],
        eval_texts=tuple(payload["eval_texts"]),
        strong=StrongModel(
            kind=strong["kind"],
            model_dir=strong["model_dir"],
            train_features=strong["train_features"],
            eval_features=strong["eval_features"],
            head_recipe=HeadRecipe(**strong["head_recipe"]),
            finetune_recipe=FinetuneRecipe(**strong["finetune_recipe"]),
            backend=LazyEncoder(EncoderSpec(**strong["encoder"])) if strong["model_access"] else NO_MODEL_ACCESS,
            feature_mean=strong["feature_mean"].numpy(),
            feature_std=strong["feature_std"].numpy(),
        ),
        seed=payload["seed"],
    )


def format_predictions(prediction: Prediction, n: int) -> str:
    """A method's output as text: one '0' or '1' per evaluation text, in order."""
    return "".join(map(str, to_labels(prediction, n).tolist()))


def parse_predictions(text: str, n: int) -> np.ndarray:
    """Labels from prediction text (surrounding whitespace ignored); ValueError unless n characters of 0/1."""
    stripped = text.strip()
    if len(stripped) != n or set(stripped) - {"0", "1"}:
        raise ValueError(f"predictions must be exactly {n} characters, each '0' or '1' (got {len(stripped)})")
    return (np.frombuffer(stripped.encode("ascii"), dtype=np.uint8) - ord("0")).astype(np.int64)
