#!/usr/bin/env bash
# Build the wheel, install it into a fresh venv outside the source tree, and start every server from it
# (over stdio, through its own console script, with the Python MCP client). Run after scripts/setup.sh.
# First without extras: the forum and storage servers must run without torch; then with the w2s extra
# (torch first, from the same index and pin as scripts/setup.sh) for the sandbox and pgr servers.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/aar-wheel-XXXXXX")
trap 'rm -rf "$work"' EXIT
.venv/bin/pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$work/dist" .
cp scripts/wheel_servers.py "$work/"
"${PYTHON:-python3}" -m venv "$work/venv"
cd "$work"  # nothing of the source tree is importable from here
venv/bin/pip install --quiet --find-links dist aar-lab
venv/bin/python wheel_servers.py forum storage
venv/bin/pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
venv/bin/pip install --quiet --find-links dist 'aar-lab[w2s]'
venv/bin/python wheel_servers.py sandbox pgr
echo "wheel check: every server starts from the installed wheel" >&2
