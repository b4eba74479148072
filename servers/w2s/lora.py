"""LoRA adapters from `peft` for fine-tuning a large strong model in place, as the study did for its 4B student.

A full fine-tune keeps a copy of the model plus two AdamW moments per weight: about 16 bytes a
parameter, 64 GB for 4B parameters before activations. LoRA freezes the model and trains two small
matrices per attention projection (B starts at zero, so training starts from the model as it is).
The layers are `peft`'s, the library the study used, so its LoRA arithmetic, initialisation and fp32
adapters on a bf16 model come with it rather than a copy of them. They are injected into the shared
model itself (no `PeftModel` wrapper, which can hook the input embeddings and edit the config) and unloaded on
exit, leaving the model as it was for the next run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from peft import LoraConfig, LoraModel
from peft.functional import cast_adapter_dtype
from torch import nn

__all__ = ["DEFAULT_TARGETS", "lora_adapters"]

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
"""The attention projections of Qwen2/Qwen3 and Llama-style models."""

_ADAPTER = "w2s"


@contextlib.contextmanager
def lora_adapters(
    model: nn.Module, *, rank: int = 16, alpha: float = 32.0, targets: Sequence[str] = DEFAULT_TARGETS
) -> Iterator[list[nn.Parameter]]:
    """Freeze `model`, inject LoRA layers around its `targets` linear layers and yield their parameters.

    On exit the LoRA layers come out again: the model has its own modules back, its weights bit for
    bit and its requires_grad flags. A model with no target layer is refused: peft raises a
    ValueError naming the targets it did not find."""
    trainable = {name: param.requires_grad for name, param in model.named_parameters()}
    # peft annotates lora_alpha as int but only ever scales by lora_alpha / r
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets))  # type: ignore[arg-type]
    tuner = LoraModel(model, config, _ADAPTER)
    try:
        cast_adapter_dtype(model, _ADAPTER)  # fp32 adapters on a bf16 model, as get_peft_model does
        yield [param for param in model.parameters() if param.requires_grad]
    finally:
        tuner.unload()
        for name, param in model.named_parameters():
            param.requires_grad_(trainable[name])
