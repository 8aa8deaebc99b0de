#!/usr/bin/env bash
# Sets up a checkout: Node dependencies and the Python runtime venv (.venv) with exact pins.
# Idempotent: a second run only checks. Usage: scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "headroom setup: installing Node dependencies (npm ci)…"
  npm ci --no-audit --no-fund --loglevel=error
fi

if [ ! -x .venv/bin/python ] || ! cmp -s python/requirements.lock .venv/.requirements.lock; then
  echo "headroom setup: creating the Python runtime in .venv (torch 2.13.0 CPU, transformers, peft, bitsandbytes)…"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r python/requirements.lock
  cp python/requirements.lock .venv/.requirements.lock
fi

# The embedded default model and tokenizer are built locally (no model hub here).
if [ -f python/headroom_runtime/assets.py ]; then
  PYTHONPATH=python .venv/bin/python -m headroom_runtime.assets ensure
fi
echo "headroom setup: ready"
