#!/usr/bin/env bash
# The project's whole check: set up, then lint, type-check, test and build the docs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest "$@"
# The ORM lifecycle again, on each object store's real server instead of the local disk
# (SeaweedFS, fake-gcs-server, Azurite, Swift), on SQLite and PostgreSQL.
for store in s3 gcs azure swift; do
  echo "== pytest: ORM lifecycle on $store"
  SA_DEPOT_ORM_STORAGE=$store .venv/bin/python -m pytest tests/orm -k "not mariadb" "$@"
done
