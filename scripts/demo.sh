#!/usr/bin/env bash
# The main job: installs what is missing (as root; otherwise says exactly
# what to install), builds in release mode, and runs `sigil demo`: the
# appliance on the embedded defaults (./var: private Postgres, local CA, demo
# tenants) with a 30-second Monday-morning load from sigil-perf against it,
# then a capacity search for EdDSA and ES256 ID tokens and a plain summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -p frontdoor -p perf --bin sigil --bin sigil-perf
exec target/release/sigil demo "$@"
