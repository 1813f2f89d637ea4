#!/usr/bin/env bash
# Create .venv at the repository root and install EHAT with everything it needs.
# Idempotent: a second run only checks that the pinned packages are present.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
stamp=.venv/.ehat-installed
want=$(cat requirements.txt requirements-dev.txt setup.py scripts/setup_env.sh | sha1sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
"$VPY" -m pip install -q --upgrade pip setuptools wheel
# torch first: basicsr's setup.py imports it, so basicsr is built without isolation.
"$VPY" -m pip install -q torch==2.14.1 torchvision==0.29.1
"$VPY" -m pip install -q -r requirements.txt -r requirements-dev.txt
# basicsr 1.4.2 pins tb-nightly among its requirements; its real needs are in requirements.txt.
"$VPY" -m pip install -q --no-build-isolation --no-deps basicsr==1.4.2
"$VPY" -m pip install -q --no-build-isolation --no-deps -e .
echo "$want" > "$stamp"
