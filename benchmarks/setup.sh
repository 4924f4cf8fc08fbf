#!/usr/bin/env bash
# Prepare the benchmark environment: benchmarks/.venv (separate from the project's .venv, so
# that filedepot and sqlalchemy-file never become project dependencies) and the Debian tools.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
python=${PYTHON:-python3}
venv="$here/.venv"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
# sa_depot from the work tree (editable), with the extras the benchmarks exercise.
"$venv/bin/python" -m pip install -q -e "$repo[s3,web,asyncio]" -r "$here/requirements.txt"

apt_missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || apt_missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || apt_missing+=(wrk)
dpkg -s libmagic1 >/dev/null 2>&1 || apt_missing+=(libmagic1)
if [ ${#apt_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing system packages: ${apt_missing[*]} (install them as root)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi
