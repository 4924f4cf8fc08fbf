#!/usr/bin/env bash
# Prepare a machine for sa_depot: a virtual environment in .venv with the package installed.
#   scripts/bootstrap.sh          the package with every optional backend (for the demo)
#   scripts/bootstrap.sh --docs   ... and MkDocs, to build or serve the documentation
#   scripts/bootstrap.sh --test   also test tools, system packages the tests use (chromium,
#                                 libmagic, nginx, OpenStack Swift, memcached), the Azurite
#                                 emulator (npm, into .cache/npm) and the database servers,
#                                 started if they are down
# pip runs only when pyproject.toml changed since the last install of the same extras (a stamp
# in .venv records it): starting the demo again costs no install.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "sa_depot needs Python >= 3.10; $python is $("$python" --version 2>&1). Set PYTHON=..." >&2
  exit 1
fi

case "$mode" in
  "") extra=all ;;
  --docs) extra=all,docs ;;
  --test) extra=dev ;;
  *) echo "usage: $0 [--docs|--test]" >&2; exit 2 ;;
esac

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# "<sha256 of pyproject.toml> <extras>", one line per install done since pyproject.toml last
# changed; dev (the test set-up) holds every other extra.
stamp=.venv/.sa_depot-install
digest=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$stamp" ] && grep -qxE "$digest ($extra|dev)" "$stamp"; then
  echo "sa_depot is installed in .venv and pyproject.toml has not changed: no pip run" >&2
else
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$extra]"
  if [ -f "$stamp" ] && grep -q "^$digest " "$stamp"; then
    echo "$digest $extra" >>"$stamp"
  else
    echo "$digest $extra" >"$stamp"
  fi
fi

apt_install() {
  # Install Debian packages that are missing; needs root (as on the project's machines).
  if ! command -v dpkg >/dev/null 2>&1; then
    echo "not a Debian system: make sure these are installed: $*" >&2
    return 0
  fi
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
