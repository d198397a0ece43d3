#!/usr/bin/env bash
# One short GPU check (about a minute on a lent accelerator): a BERT-base-sized classifier
# built from a config, at sequence length 128; prints sequences/s, achieved TFLOP/s and
# the scorer path's ratio to the bare forward. Extra arguments go to the Python helper:
#   bench/gpu.sh                 # the real check, on CUDA when there is one
#   bench/gpu.sh --tiny --device cpu   # a CPU smoke test in seconds
# Writes $OUT/gpu_bench.json when OUT is set (the device runner's output folder).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
fi
extra=()
if [ -n "${OUT:-}" ]; then extra=(--out "$OUT/gpu_bench.json"); fi
exec "$PY" bench/gpu_classifier.py "${extra[@]}" "$@"
