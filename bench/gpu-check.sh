#!/usr/bin/env bash
# The planner against one real CUDA training step per configuration on Phi-3-mini-128k (random
# weights from its config, no download): ~12 configurations, under 8 minutes on an H100/H200-class
# GPU, results in bench/results/gpu-check.json (see bench/gpu_check.py).
#
#   bash bench/gpu-check.sh              # on a machine with a GPU
#   bash bench/gpu-check.sh --dry-run    # anywhere: plans everything, runs one tiny config on CPU
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
# Headroom's default allocator setting, which the planner assumes (expandable segments).
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# 8 minutes in all: stop starting configurations at 7, hard stop at 7.5 (what was measured is already written).
exec timeout 450 "$PY" bench/gpu_check.py --budget-s 400 "$@"
