#!/usr/bin/env bash
# Runs every test of the workspace, with the external verifiers in place.
# Extra arguments go to `cargo test` (e.g. `-p signer`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export SIGIL_PYTHON="$PWD/.venv/bin/python"
exec cargo test --workspace --locked "$@"
