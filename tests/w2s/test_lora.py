"""LoRA fine-tuning of a causal-LM strong model (the study's 4B student), on CPU with a tiny random Qwen3.

The adapters (peft's LoRA layers) train while the shared model stays frozen, and come off leaving
it bit for bit as it was; a fine-tuning run through the strong backend learns a task the frozen features cannot hide.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from peft.tuners.lora import LoraLayer
from transformers import Qwen3Config, Qwen3ForCausalLM

from servers.w2s.api import FinetuneRecipe
from servers.w2s.encoders import Encoder, EncoderSpec
from servers.w2s.lora import lora_adapters
from servers.w2s.losses import soft_cross_entropy
from tests.w2s.test_local_models import _save_tiny_model

WORDS = ["amber", "basil", "cedar", "delta", "ember", "fjord", "grove", "harbor", "island", "juniper"]
TEXTS = [f"{word} {'yes' if i % 2 else 'no'} {WORDS[(i * 7) % 10]}" for i, word in enumerate(WORDS * 8)]
LABELS = np.array([i % 2 for i in range(len(TEXTS))])


@pytest.fixture(scope="module")
def tiny_qwen3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lora") / "qwen3"
    torch.manual_seed(0)  # one model whatever ran before: about one random model in thirty learns only to 0.9
    _save_tiny_model(folder, Qwen3Config, Qwen3ForCausalLM, TEXTS)
    return folder


def test_adapters_train_alone_and_leave_the_model_exactly_as_it_was(tiny_qwen3: Path) -> None:
    model = Qwen3ForCausalLM.from_pretrained(tiny_qwen3).base_model
    next(model.parameters()).requires_grad_(False)  # a frozen weight stays frozen afterwards
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    modules = [(name, id(module)) for name, module in model.named_modules()]
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    ids = torch.tensor([[1, 2, 3, 4]])
    plain = model(input_ids=ids).last_hidden_state
    with lora_adapters(model, rank=4) as params:
        wrapped = [module for module in model.modules() if isinstance(module, LoraLayer)]
        assert len(wrapped) == 4 * 2, "q, k, v and o of each of the two layers"
        assert {id(p) for p in model.parameters() if p.requires_grad} == {id(p) for p in params}
        assert torch.equal(model(input_ids=ids).last_hidden_state, plain), "B starts at zero"
        model(input_ids=ids).last_hidden_state.sum().backward()
        assert all(p.grad is not None for p in params)
        with torch.no_grad():
            for p in params:
                p.add_(0.1)
        assert not torch.equal(model(input_ids=ids).last_hidden_state, plain)
    assert [(name, id(module)) for name, module in model.named_modules()] == modules
    assert not hasattr(model, "peft_config")
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    torch.testing.assert_close(model(input_ids=ids).last_hidden_state, plain)


def test_adapters_on_a_bf16_model_train_in_fp32(tiny_qwen3: Path) -> None:
    model = Qwen3ForCausalLM.from_pretrained(tiny_qwen3, dtype=torch.bfloat16).base_model
    with lora_adapters(model, rank=4) as params:
        assert params and all(p.dtype == torch.float32 for p in params)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())


def test_a_model_without_the_target_layers_is_refused_by_name() -> None:
    with (
        pytest.raises(ValueError, match=r"Target modules .*q_proj.* not found"),
        lora_adapters(torch.nn.Sequential(torch.nn.Linear(2, 2))),
    ):
        pass


def test_fine_tuning_a_causal_lm_uses_adapters_learns_and_keeps_the_shared_model(tiny_qwen3: Path) -> None:
    encoder = Encoder(EncoderSpec(kind="hf-causal-lm", path=str(tiny_qwen3), max_length=16))
    before = {name: tensor.clone() for name, tensor in encoder.backbone.state_dict().items()}
    targets = np.eye(2, dtype=np.float32)[LABELS]
    recipe = FinetuneRecipe(epochs=15, lr=1e-2, batch_size=16)
    probs = encoder.fine_tune(TEXTS, targets, TEXTS, recipe=recipe, loss=soft_cross_entropy, seed=0)
    assert probs.shape == (len(TEXTS), 2)
    assert ((probs[:, 1] > 0.5) == LABELS).mean() > 0.9, "the adapters learnt the yes/no word"
    assert all(torch.equal(before[name], t) for name, t in encoder.backbone.state_dict().items())
    assert not encoder.backbone.training and not encoder.backbone.is_activation_checkpointing
