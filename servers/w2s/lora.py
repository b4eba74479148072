"""LoRA adapters for fine-tuning a large strong model in place, as the study did for its 4B student.

A full fine-tune keeps a copy of the model plus two AdamW moments per weight: about 16 bytes a
parameter, 64 GB for 4B parameters before activations. LoRA freezes the model and trains two small
matrices per attention projection (B starts at zero, so training starts from the model as it is);
the adapters come off afterwards, leaving the shared model untouched for the next run. Written in
plain torch: the sandbox needs no extra package, and the arithmetic is the one of the LoRA paper
(W x + (alpha / r) B A x), which is what `peft` computes for its default LoRA layer.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn

__all__ = ["DEFAULT_TARGETS", "LoRALinear", "lora_adapters"]

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
"""The attention projections of Qwen2/Qwen3 and Llama-style models."""


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = (x.to(self.lora_a.dtype) @ self.lora_a.T @ self.lora_b.T) * self.scale
        result: torch.Tensor = self.base(x) + update.to(x.dtype)
        return result


@contextlib.contextmanager
def lora_adapters(
    model: nn.Module, *, rank: int = 16, alpha: float = 32.0, targets: Sequence[str] = DEFAULT_TARGETS
) -> Iterator[list[nn.Parameter]]:
    """Freeze `model`, wrap its target linear layers with adapters and yield the adapters' parameters;
    on exit restore the original layers and trainability (the model is as before, bit for bit)."""
    trainable = {name: param.requires_grad for name, param in model.named_parameters()}
    replaced: list[tuple[nn.Module, str, nn.Linear]] = []
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and child_name in targets:
                replaced.append((module, child_name, child))
    if not replaced:
        raise ValueError(f"no linear layer named one of {tuple(targets)} to adapt in {type(model).__name__}")
    for param in model.parameters():
        param.requires_grad_(False)
    adapters = []
    for module, child_name, child in replaced:
        adapter = LoRALinear(child, rank, alpha)
        setattr(module, child_name, adapter)
        adapters.append(adapter)
    try:
        yield [param for adapter in adapters for param in (adapter.lora_a, adapter.lora_b)]
    finally:
        for module, child_name, child in replaced:
            setattr(module, child_name, child)
        for name, param in model.named_parameters():
            param.requires_grad_(trainable[name])
