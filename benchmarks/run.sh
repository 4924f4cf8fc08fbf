#!/usr/bin/env bash
# Run every benchmark and write benchmarks/RESULTS.md (about 10 minutes on 2 cores, plus about 25
# for the scale section, which creates a million files: `--only` the others to skip it).
#   bash benchmarks/run.sh                      all sections, 3 repetitions
#   bash benchmarks/run.sh --only small large   some sections (writes RESULTS.md all the same)
#   bash benchmarks/run.sh --repetitions 5
# Benchmarks are not tests: the test command never runs them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/setup.sh"
bash "$(dirname "$here")/scripts/services.sh" >/dev/null || true  # PostgreSQL, if it is down
cd "$(dirname "$here")"
# Temporary files of every contender stay in the (gitignored) work folder: libcloud, under
# sqlalchemy-file, leaves one lock file per stored file in the temporary directory.
export TMPDIR="$here/work/tmp"
rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"
exec "$here/.venv/bin/python" -m benchmarks.bench "$@"
