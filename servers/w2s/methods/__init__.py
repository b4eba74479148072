"""Weak-to-strong methods from the literature, each a callable on the method API (``servers.w2s.api``).

Each module documents its method and names its source in ``PAPER`` (shown by ``aar pgr baselines``).
``BASELINES`` train linear heads on frozen strong features (seconds per seed on a CPU);
``FINETUNE_BASELINES`` fine-tune the whole strong model (about a minute per seed on a CPU).
"""

from __future__ import annotations

import sys

from servers.w2s.api import Method
from servers.w2s.methods.aux_confidence import aux_confidence
from servers.w2s.methods.bootstrap import bootstrap
from servers.w2s.methods.confident_relabel import confident_relabel
from servers.w2s.methods.finetune_ce import finetune_ce
from servers.w2s.methods.knn_relabel import knn_relabel
from servers.w2s.methods.noisy_channel import noisy_channel
from servers.w2s.methods.plain_ce import plain_ce
from servers.w2s.methods.self_training import self_training
from servers.w2s.methods.top_confident import top_confident
from servers.w2s.methods.weak_views import weak_views

__all__ = [
    "BASELINES",
    "FINETUNE_BASELINES",
    "aux_confidence",
    "bootstrap",
    "confident_relabel",
    "finetune_ce",
    "knn_relabel",
    "noisy_channel",
    "paper",
    "plain_ce",
    "self_training",
    "top_confident",
    "weak_views",
]

BASELINES: dict[str, Method] = {
    "plain_ce": plain_ce,
    "aux_confidence": aux_confidence,
    "top_confident": top_confident,
    "knn_relabel": knn_relabel,
    "confident_relabel": confident_relabel,
    "bootstrap": bootstrap,
    "noisy_channel": noisy_channel,
    "weak_views": weak_views,
    "self_training": self_training,
}

FINETUNE_BASELINES: dict[str, Method] = {"finetune_ce": finetune_ce}


def paper(method: Method) -> str:
    """The source a method's module names in ``PAPER`` ("" for a method from elsewhere)."""
    return str(getattr(sys.modules.get(method.__module__), "PAPER", ""))
