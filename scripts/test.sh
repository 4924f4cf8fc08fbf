#!/usr/bin/env bash
# The project's whole check: set up, then lint, type-check, test and build the docs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest "$@"
# The ORM lifecycle again, on an S3 storage (SeaweedFS) instead of the local disk.
echo "== pytest: ORM lifecycle on S3"
SA_DEPOT_ORM_STORAGE=s3 .venv/bin/python -m pytest tests/orm -k "not mariadb" "$@"
