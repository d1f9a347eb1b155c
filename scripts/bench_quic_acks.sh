#!/usr/bin/env bash
# Issue 16, item 3: what the QUIC ACK frequency extension saves. Runs
# scripts/bench_components.sh ROUNDS times each way, alternating: the node
# and the generator asking each other for QUIC's default ACKs (threshold
# 0: an ACK for every second packet) and for the default threshold of 16
# (answers and requests carry the ACKs). Prints per-request CPU by
# component and syscalls/context switches per request for each run.
# Usage: scripts/bench_quic_acks.sh [BIN_DIR] [RATE] [DURATION_S] [ROUNDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release}
rate=${2:-10000}
duration=${3:-12}
rounds=${4:-3}
for round in $(seq 1 "$rounds"); do
  for threshold in 0 16; do
    echo "=== round $round, quic_ack_threshold $threshold (node and generator)"
    SIGIL_TOML=$(printf '[limits]\nquic_ack_threshold = %s' "$threshold") \
      PERF_ARGS="--quic-ack-threshold $threshold" \
      "$root/scripts/bench_components.sh" "$bin" "$rate" "$duration" |
      grep -v '^work dir'
  done
done
