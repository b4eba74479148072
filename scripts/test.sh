#!/usr/bin/env bash
# Run the whole test suite (after scripts/setup.sh): lint, format and type checks first, then pytest.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
step() {
    local name=$1
    shift
    "$@" || { echo "scripts/test.sh: $name failed (run: $*)" >&2; exit 1; }
}
step "ruff check" .venv/bin/ruff check .
step "ruff format check" .venv/bin/ruff format --check .
step "mypy (strict)" .venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
