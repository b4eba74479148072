#!/usr/bin/env bash
# Install everything AAR Lab needs into ./.venv (and, as root on Debian, the system packages).
# Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(git bubblewrap wordnet-base)
# Headless Chromium and its driver: only the console's browser tests use them.
TEST_PACKAGES=(chromium chromium-driver)
missing=()
for package in "${SYSTEM_PACKAGES[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
missing_test=()
if command -v dpkg >/dev/null; then
  for package in "${TEST_PACKAGES[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing_test+=("$package")
  done
fi
if [ ${#missing_test[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    missing+=("${missing_test[@]}")
  else
    echo "setup: the browser tests need ${missing_test[*]} (sudo apt-get install ${missing_test[*]})" >&2
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing system packages: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif ! command -v dpkg >/dev/null && command -v git >/dev/null; then
    echo "setup: not Debian; make sure git and bubblewrap are installed" >&2
  else
    echo "setup: please install: ${missing[*]} (e.g. sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# torch first and pinned, so that nothing pulls a multi-gigabyte CUDA build (override with TORCH_SPEC).
.venv/bin/pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
# AAR_EXTRAS=w2s,test,ray adds Ray for AAR_EXECUTOR=ray and its tests (tests/ray is skipped without it).
.venv/bin/pip install --quiet -e ".[${AAR_EXTRAS:-w2s,test}]"
echo "setup: done; the aar command is .venv/bin/aar" >&2
