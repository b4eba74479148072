#!/usr/bin/env bash
# Run the whole test suite (after scripts/setup.sh); extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest "$@"
