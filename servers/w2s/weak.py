"""The weak supervisor: a model trained on weak-train ground truth whose soft labels teach the student.

``tfidf-logistic`` is the built-in bag of words (TF-IDF word n-grams, logistic regression). A local
transformer (``hf-encoder`` / ``hf-causal-lm``, e.g. a small chat model) can be the weak model
instead: a logistic head on its frozen, standardised, mean-pooled features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from servers.w2s.encoders import EncoderSpec

__all__ = ["TfidfSpec", "WeakSpec", "feature_weak", "tfidf_weak"]


@dataclass(frozen=True, kw_only=True)
class TfidfSpec:
    """Bag-of-words weak model: word n-grams up to ``ngram_max``, ``max_features`` most frequent."""

    kind: str = "tfidf-logistic"
    ngram_max: int = 2
    max_features: int = 5000
    C: float = 1.0


WeakSpec = TfidfSpec | EncoderSpec


def tfidf_weak(
    spec: TfidfSpec, fit_texts: Sequence[str], fit_labels: np.ndarray, predict_texts: Sequence[str]
) -> np.ndarray:
    """Fit TF-IDF + logistic regression on (fit_texts, fit_labels); probabilities (n, 2) for predict_texts."""
    vectoriser = TfidfVectorizer(ngram_range=(1, spec.ngram_max), max_features=spec.max_features)
    model = LogisticRegression(C=spec.C, max_iter=1000)
    model.fit(vectoriser.fit_transform(fit_texts), fit_labels)
    probs: np.ndarray = model.predict_proba(vectoriser.transform(predict_texts))
    return probs


def feature_weak(fit_features: np.ndarray, fit_labels: np.ndarray, predict_features: np.ndarray) -> np.ndarray:
    """Logistic regression on features standardised with the fit set's statistics; probabilities (n, 2)."""
    mean, std = fit_features.mean(axis=0), fit_features.std(axis=0) + 1e-6
    model = LogisticRegression(max_iter=1000)
    model.fit((fit_features - mean) / std, fit_labels)
    probs: np.ndarray = model.predict_proba((predict_features - mean) / std)
    return probs
