#!/usr/bin/env bash
# The README's test command: set up .venv (idempotent) and run the whole suite, slow tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest -q "$@"
