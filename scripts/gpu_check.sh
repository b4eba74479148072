#!/usr/bin/env bash
# On a GPU machine (no network needed): LoRA fine-tuning of a random Qwen3-4B-Base-shaped student
# through the real method API; prints tokens/s, peak GPU memory and MFU. Arguments go to
# scripts/gpu_check.py (e.g. --rows 4000 --batch-size 32; --tiny for a CPU smoke test). PYTHON picks the
# interpreter (default: .venv/bin/python, else python3, e.g. a GPU image's own torch with transformers and peft).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} exec "$python" scripts/gpu_check.py "$@"
