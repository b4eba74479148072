"""Baseline weak-to-strong methods, each a callable on the method API (``servers.w2s.api``).

``BASELINES`` train a linear head on frozen strong features (seconds per seed on a CPU);
``FINETUNE_BASELINES`` fine-tune the whole strong model (about a minute per seed on a CPU).
"""

from __future__ import annotations

from servers.w2s.api import Method
from servers.w2s.methods.aux_confidence import aux_confidence
from servers.w2s.methods.finetune_ce import finetune_ce
from servers.w2s.methods.knn_relabel import knn_relabel
from servers.w2s.methods.plain_ce import plain_ce
from servers.w2s.methods.top_confident import top_confident

__all__ = [
    "BASELINES",
    "FINETUNE_BASELINES",
    "aux_confidence",
    "finetune_ce",
    "knn_relabel",
    "plain_ce",
    "top_confident",
]

BASELINES: dict[str, Method] = {
    "plain_ce": plain_ce,
    "aux_confidence": aux_confidence,
    "top_confident": top_confident,
    "knn_relabel": knn_relabel,
}

FINETUNE_BASELINES: dict[str, Method] = {"finetune_ce": finetune_ce}
