#!/usr/bin/env bash
# Issue 16, item 5: past capacity, does the node keep its goodput and
# refuse the excess quickly? For each VARIANT (a release `sigil serve` on
# the embedded default, with its own binaries and `[limits]`), ROUNDS
# rounds, alternating variants so that a noisy neighbour hits all alike:
#   1. capacity: one `sigil-perf load` of EdDSA ID tokens at each rate of
#      SWEEP (default 20000 30000 40000) for SWEEP_S seconds; the capacity
#      is the highest `achieved_rps` of these steps, i.e. the node's
#      goodput when saturated (not the rate at p99 <= 5 ms: on this VM the
#      disk's fdatasync floor holds that near 1,000/s, issue 20);
#   2. overload: two `sigil-perf load` processes at once, each offering
#      1.5x that capacity (3x in all) for DURATION seconds; goodput is
#      the sum of their `achieved_rps`, as a ratio of the capacity, and
#      the refusals' latency is each process's `refused_latency_us`
#      (the node's `overloaded` answers, from the intended send time);
#      and, over a window inside the load, the node's QUIC workers' time
#      on a core and waiting for one (/proc/PID/task/*/schedstat, ms per
#      second, summed over the workers): on a shared machine the wait is
#      latency the node cannot remove.
# One line of JSON per run to stdout, then the medians per variant.
#
# Usage: scripts/bench_overload.sh [VARIANT...]
#   VARIANT is NAME:BIN_DIR[:KEY=VALUE,...] (the pairs go under [limits]),
#   default `main:target/release`.
# Environment: DURATION (15), ROUNDS (3), SWEEP ("20000 30000 40000"),
#   SWEEP_S (6), GENERATORS (2); OFFERED: the total rate of step 2 instead
#   of 3x each run's capacity, so that variants meet the same load even
#   when their capacities differ by the noise of a shared machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
duration=${DURATION:-15}
rounds=${ROUNDS:-3}
sweep=${SWEEP:-20000 30000 40000}
sweep_s=${SWEEP_S:-6}
generators=${GENERATORS:-2}
[ $# -gt 0 ] || set -- "main:$root/target/release"
work=$(mktemp -d /tmp/sigil-overload.XXXXXX)
results=$work/results.jsonl
echo "work dir: $work" >&2
# shellcheck source=scripts/node.sh
. "$root/scripts/node.sh"

start_variant() { # dir bin limits
  local dir=$1 bin=$2 limits=$3
  mkdir -p "$dir"
  {
    echo "[limits]"
    if [ -n "$limits" ]; then tr ',' '\n' <<<"$limits"; fi
  } >"$dir/sigil.toml"
  cd "$dir"
  start_node "$bin" --config sigil.toml
  cd "$work"
}

load() { # dir bin rate seconds out
  (cd "$1" && "$2/sigil-perf" load --app app-eddsa --rate "$3" --duration "${4}s" \
    --json "$5.json" --charts "$5-charts" >"$5.out" 2>"$5.log") || true
}

schedstat() { # on-core and run-queue-wait ns of the node's QUIC workers
  local task
  for task in /proc/$node/task/*; do
    # A thread may end between the listing and the read.
    case $(cat "$task/comm" 2>/dev/null) in
      sigil-quic-*) cut -d' ' -f1,2 "$task/schedstat" 2>/dev/null || true ;;
    esac
  done
}

run() { # round name bin limits
  local round=$1 name=$2 bin=$3 limits=$4 dir=$work/$2-$1
  start_variant "$dir" "$bin" "$limits"
  local capacity=0 rate
  for rate in $sweep; do
    load "$dir" "$bin" "$rate" "$sweep_s" "sweep-$rate"
    capacity=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(max(int(sys.argv[2]), round(r["achieved_rps"])))' \
      "$dir/sweep-$rate.json" "$capacity" 2>/dev/null || echo "$capacity")
    sleep 1
  done
  local each=$(( ${OFFERED:-$(( capacity * 3 ))} / generators )) g pids=()
  for g in $(seq 1 "$generators"); do
    load "$dir" "$bin" "$each" "$duration" "overload-$g" &
    pids+=($!)
  done
  sleep 4
  schedstat >"$dir/sched-before.txt"
  sleep $(( duration - 8 ))
  schedstat >"$dir/sched-after.txt"
  echo $(( duration - 8 )) >"$dir/sched-window.txt"
  wait "${pids[@]}"
  stop_node
  python3 - "$dir" "$name" "$limits" "$capacity" "$each" "$generators" "$sweep" >>"$results" <<'EOF'
import json, sys
dir, name, limits, capacity, each, generators, sweep = sys.argv[1:]
capacity, each, generators = int(capacity), int(each), int(generators)
steps = {}
for rate in sweep.split():
    try:
        r = json.load(open(f"{dir}/sweep-{rate}.json"))
        steps[rate] = {"achieved_rps": round(r["achieved_rps"]), "p99_ms": r["latency_us"]["p99"] / 1000,
                       "refused": sum(r["errors"].values())}
    except (OSError, ValueError, KeyError):
        steps[rate] = None
def sched(name):
    return [tuple(map(int, l.split())) for l in open(f"{dir}/sched-{name}.txt")]
try:
    window = int(open(f"{dir}/sched-window.txt").read())
    before, after = sched("before"), sched("after")
    on_core = sum(a[0] - b[0] for a, b in zip(after, before)) / 1e6 / window
    waiting = sum(a[1] - b[1] for a, b in zip(after, before)) / 1e6 / window
except (OSError, ValueError, ZeroDivisionError):
    on_core = waiting = None
gens = [json.load(open(f"{dir}/overload-{g}.json")) for g in range(1, generators + 1)]
goodput = sum(r["achieved_rps"] for r in gens)
refused = [r.get("refused_latency_us") for r in gens]
def worst(field):
    values = [p[field] / 1000 for p in refused if p]
    return max(values) if values else None
print(json.dumps({
    "variant": name, "limits": limits, "capacity_rps": capacity, "sweep": steps,
    "offered_rps": each * generators,
    "sent_rps": round(sum(r["sent"] for r in gens) / gens[0]["duration_s"]),
    "goodput_rps": round(goodput), "goodput_ratio": round(goodput / capacity, 3) if capacity else None,
    "ok_p50_ms": max(r["latency_us"]["p50"] for r in gens) / 1000,
    "ok_p99_ms": max(r["latency_us"]["p99"] for r in gens) / 1000,
    "refused_p50_ms": worst("p50"), "refused_p99_ms": worst("p99"),
    "refused": sum(r["errors"].get("overloaded", 0) for r in gens),
    "other_errors": {k: v for r in gens for k, v in r["errors"].items() if k != "overloaded"},
    "workers_on_core_ms_per_s": on_core and round(on_core),
    "workers_waiting_ms_per_s": waiting and round(waiting),
    "send_lag_p50_ms": max(r["send_lag_us"]["p50"] for r in gens) / 1000,
    "generator_cpu_us_per_op": [r.get("generator_cpu_us_per_op") for r in gens],
}))
EOF
  tail -1 "$results"
}

for round in $(seq 1 "$rounds"); do
  for variant in "$@"; do
    IFS=: read -r name bin limits <<<"$variant"
    bin=$(cd "$bin" && pwd)
    echo "round $round of $rounds: $name" >&2
    run "$round" "$name" "$bin" "${limits:-}"
  done
done

python3 - "$results" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
print("\nmedians per variant (refusal latencies: the worse of the generators):")
for name in dict.fromkeys(r["variant"] for r in runs):
    mine = [r for r in runs if r["variant"] == name]
    def median(field):
        values = [r[field] for r in mine if r[field] is not None]
        return statistics.median(values) if values else None
    print(f"{name:10} capacity {median('capacity_rps')}/s  offered {median('offered_rps')}/s "
          f"(sent {median('sent_rps')}/s)  goodput {median('goodput_rps')}/s = "
          f"{median('goodput_ratio')} of capacity  refusals p50 {median('refused_p50_ms')} ms "
          f"p99 {median('refused_p99_ms')} ms  successes p99 {median('ok_p99_ms')} ms  "
          f"workers on a core {median('workers_on_core_ms_per_s')} ms/s, waiting for one "
          f"{median('workers_waiting_ms_per_s')} ms/s")
EOF
