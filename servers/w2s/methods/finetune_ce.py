"""Plain cross-entropy on the weak soft labels, fine-tuning the whole strong model (not only a head)."""

from __future__ import annotations

import torch

from servers.w2s.api import MethodInput, finetunes

PAPER = "Burns et al. 2023, Weak-to-Strong Generalization, arXiv:2312.09390 (naive fine-tuning)"


@finetunes
def finetune_ce(inp: MethodInput) -> torch.Tensor:
    """Fine-tune the strong model with the task's fine-tuning recipe to imitate the weak probabilities."""
    return inp.strong.fine_tune(inp.train_texts, inp.weak_soft_labels, inp.eval_texts, seed=inp.seed)
