#!/usr/bin/env bash
# Issue 16, item 1: does one connection keep every core busy? A release
# `sigil serve` (embedded default) with `[limits] share_work` on and off,
# and for each `sigil-perf load` of EdDSA ID tokens at RATE from one
# generator thread with one connection, and from the default 2 threads x 4
# connections. ROUNDS rounds, alternating, so a noisy neighbour hits both
# sides alike; one line of JSON per run, then the medians.
# Usage: scripts/bench_one_connection.sh [BIN_DIR] [RATE] [DURATION] [ROUNDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "${1:-$root/target/release}" && pwd)
rate=${2:-40000}
duration=${3:-10s}
rounds=${4:-3}
work=$(mktemp -d /tmp/sigil-one-connection.XXXXXX)
results=$work/results.jsonl
# shellcheck source=scripts/node.sh
. "$root/scripts/node.sh"

run() { # share threads connections
  local share=$1 threads=$2 connections=$3 dir=$work/share-$1
  mkdir -p "$dir"
  printf '[limits]\nshare_work = %s\n' "$share" >"$dir/sigil.toml"
  cd "$dir"
  start_node "$bin" --config sigil.toml
  cd "$work"
  (cd "$dir" && "$bin/sigil-perf" load --app app-eddsa --rate "$rate" --duration "$duration" \
    --threads "$threads" --connections "$connections" --json run.json --charts charts >/dev/null 2>perf.log) || true
  stop_node
  python3 - "$dir/run.json" "$share" "$threads" "$connections" >>"$results" <<'EOF'
import json, sys
path, share, threads, connections = sys.argv[1:]
r = json.load(open(path))
print(json.dumps({
    "share_work": share == "true", "threads": int(threads), "connections": int(connections),
    "achieved_rps": round(r["achieved_rps"]), "p50_ms": r["latency_us"]["p50"] / 1000,
    "p99_ms": r["latency_us"]["p99"] / 1000, "refused": sum(r["errors"].values()),
    "server_cpu_us_per_op": r["server_cpu_us_per_op"], "overhead_factor": r["overhead_factor"],
}))
EOF
  tail -1 "$results"
}

for round in $(seq 1 "$rounds"); do
  echo "round $round of $rounds" >&2
  for share in true false; do
    run "$share" 1 1
    run "$share" 2 4
  done
done

python3 - "$results" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
def median(share, connections, field):
    values = [r[field] for r in runs if r["share_work"] == share and r["connections"] == connections]
    return statistics.median(values) if values else None
print("\nmedians (achieved_rps, p99 ms, server CPU us/token):")
for share in (True, False):
    one = median(share, 1, "achieved_rps")
    many = median(share, 4, "achieved_rps")
    print(f"share_work={str(share).lower():5}  1 connection: {one} rps, p99 {median(share, 1, 'p99_ms')} ms, "
          f"cpu {median(share, 1, 'server_cpu_us_per_op')}  |  2x4 connections: {many} rps, "
          f"p99 {median(share, 4, 'p99_ms')} ms, cpu {median(share, 4, 'server_cpu_us_per_op')}  |  "
          f"one/many = {one / many:.2f}" if one and many else "")
EOF
