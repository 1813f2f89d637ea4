#!/usr/bin/env bash
# The README's first command: EHAT super-resolves real photos, offline, in a minute or two on a CPU.
#
#   bash scripts/quickstart.sh [--out DIR] [--no-setup]
#
# 1. sets up .venv (scripts/setup_env.sh, idempotent; skipped with --no-setup),
# 2. builds the demo validation set from photos bundled with scikit-image (DIR/data, challenge layout),
# 3. runs test_demo.py with the small EHAT shipped in model_zoo/ (--model_id 102): the challenge's
#    table (PSNR, SSIM, runtime, FLOPs, params) and the SR images in DIR/results/,
# 4. compares every image with MATLAB bicubic and draws DIR/results/side_by_side.png
#    (bicubic | EHAT | HR crops).
# Nothing is downloaded beyond the Python packages; a rerun reuses what exists. DIR defaults to demo/.
set -euo pipefail
cd "$(dirname "$0")/.."

out=demo
setup=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --no-setup) setup=0; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quickstart.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$setup" = 1 ]; then
  bash scripts/setup_env.sh
fi
py=${PYTHON:-.venv/bin/python}
model_id=102
model_name=102_EHAT_tiny_demo

"$py" scripts/make_demo_data.py --out "$out/data" --sets valid
"$py" test_demo.py --data_dir "$out/data" --save_dir "$out/results" --results_dir "$out/results" \
  --model_id "$model_id" --ssim
echo
"$py" -m ehat.demo --data_dir "$out/data" --sr_dir "$out/results/$model_name/valid" \
  --out "$out/results/side_by_side.png"
echo "SR images: $out/results/$model_name/valid/   table: $out/results/results.txt"
