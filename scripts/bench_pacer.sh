#!/usr/bin/env bash
# Issue 16, item 4: what the generator's wake quantum (`sigil-perf
# --pace-quantum-us`) does to its own CPU per request and to its send lag.
# One release node (embedded default); at each RATE, runs of EdDSA ID
# tokens with each QUANTUM (µs; 0: a wake-up per request), alternated
# ROUNDS times. Prints per run: achieved/s, generator_cpu_us_per_op,
# send_lag_us p50/p99, latency p50/p99.
# Usage: scripts/bench_pacer.sh [BIN_DIR] [DURATION_S] [ROUNDS] [RATES] [QUANTA]
#   e.g. scripts/bench_pacer.sh target/release 12 2 "10000 20000 50000" "0 50 100"
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "${1:-$root/target/release}" && pwd)
duration=${2:-12}
rounds=${3:-2}
rates=${4:-10000 20000 50000}
quanta=${5:-0 50 100}
work=$(mktemp -d /tmp/sigil-pacer.XXXXXX)
cd "$work"
# shellcheck source=scripts/node.sh
. "$root/scripts/node.sh"
start_node "$bin"
printf '%-6s %-6s %-8s %10s %10s %12s %12s %10s %10s\n' \
  round rate quantum achieved gen_us lag_p50_us lag_p99_us p50_ms p99_ms
for rate in $rates; do
  for round in $(seq 1 "$rounds"); do
    for quantum in $quanta; do
      name="r$rate-q$quantum-$round"
      "$bin/sigil-perf" load --app app-eddsa --rate "$rate" --duration "${duration}s" \
        --pace-quantum-us "$quantum" --json "$name.json" --charts "charts-$name" \
        >"$name.out" 2>"$name.log" || true
      python3 - "$name.json" "$round" "$rate" "$quantum" <<'PY'
import json, sys
path, round_, rate, quantum = sys.argv[1:]
try:
    r = json.load(open(path))
except (OSError, ValueError) as e:
    print(f"{round_:6} {rate:6} {quantum:8} no report ({e})")
    sys.exit()
lag, lat = r["send_lag_us"], r["latency_us"]
print(f"{round_:6} {rate:6} {quantum:8} {r['achieved_rps']:10.0f} {r['generator_cpu_us_per_op']:10.1f} "
      f"{lag['p50']:12} {lag['p99']:12} {lat['p50'] / 1000:10.2f} {lat['p99'] / 1000:10.1f}")
PY
      sleep 2 # the node's queues drain between runs
    done
  done
done
echo "reports: $work"
