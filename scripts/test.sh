#!/usr/bin/env bash
# Runs every test of the workspace, with the external verifiers in place.
# Extra arguments go to `cargo test` (e.g. `-p signer`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Test fixtures and hooks (the `test-support` features of signer, hw,
# sessions, directory) reach tests and benches through [dev-dependencies]
# only; resolver 2 keeps them out of normal builds. Fail if a normal build of
# `sigil` or `sigil-perf` would carry them.
normal=$(cargo tree --locked -p frontdoor -p perf -e features,normal)
if grep 'feature "test-support"' <<<"$normal"; then
  echo "test.sh: a normal build of sigil or sigil-perf enables the test-support" >&2
  echo "  feature above; see who: cargo tree -p frontdoor -p perf -e features,normal -i CRATE" >&2
  exit 1
fi

export SIGIL_PYTHON="$PWD/.venv/bin/python"

# Everything README.md and docs/ link to is in the repository.
python3 scripts/check_links.py

# sigil-perf is a client of sigil/1: it depends on sigil-proto, never on the
# server (frontdoor, monoio) or the directory (directory, tokio-postgres).
# Crate names, not paths: sigil-proto lives in frontdoor/proto.
server_side=$(cargo tree --locked -p perf -e all --prefix none --format '{p}' \
  | awk '{print $1}' | grep -xE 'frontdoor|directory|monoio|tokio-postgres' | sort -u || true)
if [ -n "$server_side" ]; then
  echo "test: sigil-perf depends on server-side crates:" $server_side \
    "(cargo tree -p perf -i CRATE shows through what)" >&2
  exit 1
fi

exec cargo test --workspace --locked "$@"
