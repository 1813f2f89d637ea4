#!/usr/bin/env bash
# Every GPU check of issue 12 in one run (for a session that is lent a CUDA device):
#   1. the attention backends' CUDA equality tests (outputs + every gradient vs the explicit formula);
#   2. scripts/benchmark.py --device cuda: HAT-L / EHAT-L+DA inference at 339x510 and 256x256, training
#      step batch 4 and 8 of 64x64, variants fp32 / tf32 / bf16 / bf16+blocks (+ sdpa/flex backends),
#      against the reference fp32; tables to $OUT (default ./gpu_out).
# Usage: OUT=/some/dir bash scripts/gpu_check.sh [--quick]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
bash scripts/setup_env.sh > "$OUT/setup.log" 2>&1 || { echo "setup failed"; tail -20 "$OUT/setup.log"; exit 1; }
PY=.venv/bin/python
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
$PY -m pytest -q -p no:cacheprovider tests/archs/test_attention_backends_cuda.py 2>&1 | tee "$OUT/cuda_tests.txt" | tail -5
if [ "${1:-}" = "--quick" ]; then
  variants=(fp32 bf16 bf16+blocks)
else
  variants=(fp32 tf32 bf16 bf16+blocks fp32@sdpa bf16@sdpa bf16+blocks@flex)
fi
$PY scripts/benchmark.py --device cuda --runs 5 --warmup 2 --variants "${variants[@]}" \
  --json "$OUT/benchmark_cuda.json" --markdown "$OUT/benchmark_cuda.md" 2>&1 | tee "$OUT/benchmark_cuda.txt"
