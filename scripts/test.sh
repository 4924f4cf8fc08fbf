#!/usr/bin/env bash
# The project's whole check: set up, then lint, type-check, test and build the docs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest "$@"
