#!/usr/bin/env bash
# Set up, then run the demo web application (sa-depot demo): it prints its URL, keeps its
# SQLite database and files in ./.sa_depot_demo, and stops on Ctrl+C. Options go to the
# command, e.g. scripts/demo.sh --port 9000 --data-dir /tmp/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/sa-depot demo "$@"
