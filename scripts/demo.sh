#!/usr/bin/env bash
# Set up, then run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python examples/quickstart.py "$@"
