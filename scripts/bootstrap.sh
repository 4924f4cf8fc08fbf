#!/usr/bin/env bash
# Prepare a machine for sa_depot: a virtual environment in .venv with the package installed.
#   scripts/bootstrap.sh          the package with every optional backend (for the demo)
#   scripts/bootstrap.sh --test   also test tools, system packages the tests use (chromium,
#                                 libmagic, nginx, OpenStack Swift, memcached), the Azurite
#                                 emulator (npm, into .cache/npm) and the database servers,
#                                 started if they are down
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "sa_depot needs Python >= 3.10; $python is $("$python" --version 2>&1). Set PYTHON=..." >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
extra=all
[ "$mode" = "--test" ] && extra=dev
.venv/bin/python -m pip install -q -e ".[$extra]"

apt_install() {
  # Install Debian packages that are missing; needs root (as on the project's machines).
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing system packages: ${missing[*]} (install them as root)" >&2
    return 1
  fi
  apt-get update -qq
  # RUNLEVEL=1 keeps Debian from starting services (nginx) at install: tests start their own.
  RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

apt_install libmagic1

if [ "$mode" = "--test" ]; then
  apt_install chromium fonts-dejavu-core nginx \
    swift-proxy swift-account swift-container swift-object memcached
  # Swift reads the hash suffix of /etc/swift/swift.conf whatever swift_dir says; the package
  # installs one, but a machine may have removed it. The test servers never start from it.
  if [ ! -f /etc/swift/swift.conf ] && [ "$(id -u)" = 0 ]; then
    mkdir -p /etc/swift
    printf '[swift-hash]\nswift_hash_path_suffix = sa-depot-tests\n' > /etc/swift/swift.conf
  fi
  # Azurite, Microsoft's Azure Storage emulator, project-locally (Node.js runs it).
  if [ ! -x .cache/npm/node_modules/.bin/azurite-blob ]; then
    npm install --prefix .cache/npm --no-audit --no-fund --loglevel=error azurite@3
  fi
  bash scripts/services.sh
fi
