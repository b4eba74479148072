"""The local-directory model path (hf-causal-lm), exercised with tiny random Qwen2 / Qwen3 models.

The same code loads staged Qwen1.5-0.5B-Chat (weak) and Qwen3-4B-Base (strong) weights on a GPU.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

from servers.w2s.api import MethodInput, Prediction
from servers.w2s.encoders import minilm_dir
from servers.w2s.evaluate import evaluate
from servers.w2s.methods import finetune_ce, plain_ce
from servers.w2s.tasks import Task, load_task

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 64}  # fmt: skip
EOS = "<|endoftext|>"


def _save_tiny_model(folder: Path, config_class: type, model_class: type, texts: list[str]) -> None:
    """A random 2-layer model with a byte-level BPE tokenizer (Qwen's kind) trained on the texts."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS, pad_token=EOS)  # type: ignore[no-untyped-call]  # unannotated in transformers
    extra = {"head_dim": 8} if config_class is Qwen3Config else {}
    config = config_class(vocab_size=backend.get_vocab_size(), eos_token_id=0, pad_token_id=0, **TINY, **extra)
    model_class(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _write_pack(folder: Path, rows: list[tuple[str, int]], weak: str, strong: str) -> Task:
    folder.mkdir()
    with gzip.open(folder / "data.jsonl.gz", "wt") as out:
        out.writelines(json.dumps({"text": text, "label": label}) + "\n" for text, label in rows)
    recipe = "[recipe]\nepochs = 2\nlr = 1e-3\n[recipe.finetune]\nepochs = 1\nlr = 1e-3\n"
    (folder / "task.toml").write_text(f'name = "{folder.name}"\n[weak]\n{weak}\n[strong]\n{strong}\n{recipe}')
    return load_task(folder)


@pytest.fixture(scope="module")
def tiny_rows(living: Task) -> list[tuple[str, int]]:
    """A 300-row slice of the default task."""
    return list(zip(living.texts[:300], living.labels[:300].tolist(), strict=True))


@pytest.fixture(scope="module")
def tiny_task(tmp_path_factory: pytest.TempPathFactory, tiny_rows: list[tuple[str, int]]) -> Task:
    """The slice with tiny local Qwen2 (weak) and Qwen3 (strong) models, paths relative to the pack."""
    root = tmp_path_factory.mktemp("tiny")
    texts = [text for text, _ in tiny_rows]
    _save_tiny_model(root / "qwen2-weak", Qwen2Config, Qwen2ForCausalLM, texts)
    _save_tiny_model(root / "qwen3-strong", Qwen3Config, Qwen3ForCausalLM, texts)
    weak = 'kind = "hf-causal-lm"\npath = "../qwen2-weak"\nbatch_size = 64'
    strong = 'kind = "hf-causal-lm"\npath = "../qwen3-strong"\nbatch_size = 64'
    return _write_pack(root / "pack", tiny_rows, weak, strong)


def test_local_qwen_directories_serve_as_weak_and_strong_models(tiny_task: Task, tmp_path: Path) -> None:
    seen: list[MethodInput] = []

    def recording(inp: MethodInput) -> Prediction:
        seen.append(inp)
        return plain_ce(inp)

    [result] = evaluate(tiny_task, recording, [0], cache_dir=tmp_path)
    strong = seen[0].strong
    assert strong.kind == "hf-causal-lm" and strong.model_dir.endswith("qwen3-strong")
    assert strong.train_features.shape == (120, 32)
    assert tuple(seen[0].weak_soft_labels.shape) == (120, 2)
    for accuracy in (result.acc_weak, result.acc_ceiling, result.acc_w2s):
        assert 0.0 <= accuracy <= 1.0
    assert strong.embed(["oak", "anvil"]).shape == (2, 32)


def test_a_finetuning_method_fine_tunes_the_local_model_against_a_finetuned_ceiling(
    tiny_task: Task, tmp_path: Path
) -> None:
    [result] = evaluate(tiny_task, finetune_ce, [0], split="validation", cache_dir=tmp_path)
    assert result.mode == "finetune"
    assert 0.0 <= result.acc_w2s <= 1.0 and 0.0 <= result.acc_ceiling <= 1.0
    assert list((tmp_path / "ceiling").glob("*.npz"))


def test_a_local_encoder_directory_serves_as_the_strong_model(tiny_rows: list[tuple[str, int]], tmp_path: Path) -> None:
    strong = f'kind = "hf-encoder"\npath = "{minilm_dir()}"'
    task = _write_pack(tmp_path / "pack", tiny_rows, 'kind = "tfidf-logistic"', strong)
    assert task.spec.strong.kind == "hf-encoder"
    [result] = evaluate(task, plain_ce, [0], cache_dir=tmp_path / "cache")
    assert result.acc_ceiling > 0.6
