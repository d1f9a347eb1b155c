#!/usr/bin/env bash
# The main job. Installs what is missing (as root; otherwise says what to
# install), builds in release mode, and runs the appliance's demo.
#
# Today the appliance's front door (`sigil serve`, `sigil demo`: issues 7 and
# 8) is not assembled yet, so this runs what exists: the physical signing
# baseline every Sigil figure is measured against (`sigil-perf raw`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -p perf --bin sigil-perf
mkdir -p var
echo "== sigil-perf raw: AWS-LC signing per key spec on one core (the baseline of every figure)"
target/release/sigil-perf raw --duration 1s --json var/raw.json
echo
echo "Report: var/raw.json. The appliance itself (sigil demo: 3 nodes on loopback with a"
echo "Monday-morning load from sigil-perf) replaces this step when the front door lands."
