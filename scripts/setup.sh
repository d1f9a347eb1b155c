#!/usr/bin/env bash
# Installs what Sigil's tests and demo need, and nothing when it is already
# there: Debian packages (PostgreSQL, SoftHSM2, xmlsec1) and the Python
# verifiers in ./.venv (git-ignored). As root it installs; otherwise it says
# exactly what to install and fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# package -> a file it installs, to test for presence without dpkg queries.
declare -A probes=(
  [postgresql]="/usr/lib/postgresql"
  [softhsm2]="/usr/lib/softhsm/libsofthsm2.so"
  [xmlsec1]="/usr/bin/xmlsec1"
  [openssl]="/usr/bin/openssl"
)
missing=()
for pkg in "${!probes[@]}"; do
  [ -e "${probes[$pkg]}" ] || missing+=("$pkg")
done
python=${PYTHON:-python3}
# A Debian python3 needs python3-venv for `-m venv` (pyenv builds have it).
"$python" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
# initdb must be findable for the private Postgres cluster.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
  missing+=(postgresql)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages; run as root:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

stamp=.venv/.sigil-requirements
if [ ! -x .venv/bin/python ] || ! cmp -s scripts/requirements.txt "$stamp"; then
  echo "setup: preparing .venv with the external verifiers" >&2
  "$python" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r scripts/requirements.txt
  cp scripts/requirements.txt "$stamp"
fi
