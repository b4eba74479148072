"""Fine-tune a randomly initialised Qwen3-4B-Base-shaped student with LoRA (peft) on a synthetic W2S task,
through the real method API (servers.w2s.evaluate with the finetune_ce method), and report the
strong model's fine-tuning throughput: tokens/s, peak GPU memory and MFU.

No network and no weights: the model is built from scripts/qwen3-4b-base.config.json (the shape of
the study's student) and a byte-level tokenizer trained on the synthetic texts. `--tiny` shrinks the
model to run anywhere (CPU included) as a smoke test of the script itself.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import tempfile
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

from servers.w2s.encoders import Encoder
from servers.w2s.evaluate import evaluate
from servers.w2s.methods import finetune_ce
from servers.w2s.tasks import load_task

CONFIG = Path(__file__).with_name("qwen3-4b-base.config.json")
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 512}  # fmt: skip
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}
"""Dense bf16 peak by device name (NVIDIA data sheets); --peak-tflops for others."""


def synthetic_rows(n: int, rng: random.Random, filler_words: tuple[int, int] = (4, 20)) -> list[tuple[str, int]]:
    """A W2S-shaped task: praise (1) or criticism (0), where a negator flips the adjective; a unigram
    weak model cannot represent the flip (the shipped negation task's structure, no data files)."""
    good = ["reliable", "clean", "friendly", "fresh", "quiet", "sturdy", "bright", "useful", "tasty", "smooth"]
    bad = ["broken", "dirty", "rude", "stale", "noisy", "flimsy", "dim", "useless", "bland", "rough"]
    things = ["camera", "hotel", "kettle", "bus", "soup", "chair", "lamp", "bike", "phone", "park"]
    rows = []
    for _ in range(n):
        negated, praise = rng.random() < 0.3, rng.random() < 0.5
        adjective = rng.choice(good if praise else bad)
        filler = " ".join(rng.choice(things) for _ in range(rng.randint(*filler_words)))
        rows.append(
            (f"the {rng.choice(things)} was {'not ' if negated else ''}{adjective} {filler}", int(praise != negated))
        )
    return rows


def build_model(folder: Path, texts: list[str], tiny: bool) -> int:
    config_dict = json.loads(CONFIG.read_text()) | (TINY if tiny else {})
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<|endoftext|>")  # type: ignore[no-untyped-call]  # noqa: S106 - tokens, not passwords
    config_dict |= {"eos_token_id": 0, "bos_token_id": 0, "pad_token_id": 0}
    config = Qwen3Config(**{k: v for k, v in config_dict.items() if k not in ("architectures", "model_type")})
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen3ForCausalLM(config).to(torch.bfloat16)  # type: ignore[arg-type]  # transformers' stubs miss dtype
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.base_model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--words", type=int, default=20, help="longest filler per text (real tasks: hundreds)")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model: a smoke test that runs on CPU")
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if cuda else "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device), None)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        root = Path(folder)
        rows = synthetic_rows(args.rows, random.Random(0), (min(4, args.words), args.words))
        params = build_model(root / "student", [text for text, _ in rows], args.tiny)
        (root / "pack").mkdir()
        with gzip.open(root / "pack" / "data.jsonl.gz", "wt") as out:
            out.writelines(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows)
        strong = (f'kind = "hf-causal-lm"\npath = "../student"\nmax_length = {args.max_length}\n'
                  f'batch_size = {args.batch_size}\ndtype = "bfloat16"')  # fmt: skip
        recipe = f"[recipe]\nepochs = 5\n[recipe.finetune]\nepochs = 1\nlr = 1e-4\nbatch_size = {args.batch_size}\n"
        weak = '[weak]\nkind = "tfidf-logistic"\nngram_max = 1'
        (root / "pack" / "task.toml").write_text(f'name = "gpu-check"\n{weak}\n[strong]\n{strong}\n{recipe}')
        task = load_task(root / "pack")

        timings: list[tuple[float, int]] = []
        original = Encoder.fine_tune

        def timed(self: Encoder, texts, targets, predict_texts, **kwargs):  # type: ignore[no-untyped-def]
            lengths = self.tokenizer(list(texts), truncation=True, max_length=self.spec.max_length)["input_ids"]
            tokens = sum(map(len, lengths)) * kwargs["recipe"].epochs
            if cuda:
                torch.cuda.synchronize()
            started = time.perf_counter()
            result = original(self, texts, targets, predict_texts, **kwargs)
            if cuda:
                torch.cuda.synchronize()
            timings.append((time.perf_counter() - started, tokens))
            return result

        Encoder.fine_tune = timed  # type: ignore[method-assign]
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        [result] = evaluate(task, finetune_ce, [0], split="validation", cache_dir=root / "cache")
    seconds, tokens = timings[-1]  # the method's own fine-tune (the ceiling's came first)
    tokens_per_s = tokens / seconds
    flops = 6 * params * tokens_per_s  # the usual MFU convention: 6N per trained token (LoRA does less)
    print(f"device: {device}; student: {params / 1e6:,.1f}M parameters (LoRA, bf16, gradient checkpointing)")
    print(f"fine-tune: {tokens} training tokens in {seconds:.1f} s = {tokens_per_s:,.0f} tokens/s")
    if cuda:
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    if peak:
        print(f"MFU: {flops / (peak * 1e12):.1%} of {peak:g} bf16 TFLOP/s")
    print(f"accuracies (validation): weak {result.acc_weak:.3f}, ceiling {result.acc_ceiling:.3f}, "
          f"w2s {result.acc_w2s:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
