#!/usr/bin/env bash
# Issue 16: where a request's microseconds go on the node. A release
# `sigil serve` (embedded default), `sigil-perf load` of OP at RATE for
# DURATION, and around the load window:
#   - each node thread's user and kernel CPU (/proc/PID/task/*/stat),
#     grouped by thread name (sigil-quic-* workers, the audit writer,
#     signer and hashing pools, tokio/control threads, the rest), per
#     answered request, in microseconds;
#   - the node's syscalls by name and its context switches, per request
#     (`perf stat` on tracepoints; needs perf and root), which shows
#     whether quinn sends with GSO (fewer sendmsg than answers) and how
#     many wake-ups a request costs.
# Usage: scripts/bench_components.sh [BIN_DIR] [RATE] [DURATION_S] [MIX]
# Environment: SIGIL_TOML, a configuration for the node (text, e.g.
# $'[limits]\nquic_ack_threshold = 0'); PERF_ARGS, more flags for
# `sigil-perf load` (e.g. "--quic-ack-threshold 0").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "${1:-$root/target/release}" && pwd)
rate=${2:-20000}
duration=${3:-10}
mix=${4:-id-token}
work=$(mktemp -d /tmp/sigil-components.XXXXXX)
cd "$work"
printf '%s\n' "${SIGIL_TOML:-}" >sigil.toml
# shellcheck source=scripts/node.sh
. "$root/scripts/node.sh"
start_node "$bin" --config sigil.toml

snapshot() { # name utime stime (clock ticks) per thread
  for task in /proc/$node/task/*; do
    read -r comm <"$task/comm"
    stat=$(sed 's/^.*) //' "$task/stat")
    set -- $stat
    echo "$comm ${12} ${13}"
  done
}

# shellcheck disable=SC2086 # PERF_ARGS is a list of flags
"$bin/sigil-perf" load --mix "$mix" --rate "$rate" --duration "${duration}s" ${PERF_ARGS:-} \
  --json run.json --charts charts >perf.out 2>perf.log &
perf_pid=$!
# The load's first second prepares sessions: measure a window inside it.
sleep 2
window=$(( duration - 3 ))
requests() { curl -s "http://127.0.0.1:$http/metrics" | awk '$1 == "sigil_quic_requests_total" {print $2}'; }
requests >requests_before.txt
snapshot >before.txt
if command -v perf >/dev/null; then
  perf stat -x, -o perfstat.txt -p "$node" \
    -e context-switches,cpu-migrations,raw_syscalls:sys_enter \
    -e 'syscalls:sys_enter_sendmsg,syscalls:sys_enter_sendmmsg,syscalls:sys_enter_recvmsg,syscalls:sys_enter_recvmmsg' \
    -e 'syscalls:sys_enter_epoll_wait,syscalls:sys_enter_write,syscalls:sys_enter_futex,syscalls:sys_enter_fdatasync,syscalls:sys_enter_pwrite64' \
    -- sleep "$window" 2>/dev/null || true
else
  sleep "$window"
fi
snapshot >after.txt
requests >requests_after.txt
wait $perf_pid || true

python3 - "$window" "$rate" <<'EOF'
import collections, json, os, sys
window, rate = float(sys.argv[1]), float(sys.argv[2])
tick = os.sysconf("SC_CLK_TCK")
def load(path):
    rows = collections.defaultdict(lambda: [0, 0])
    for line in open(path):
        name, user, system = line.rsplit(" ", 2)
        group = ("quic workers" if name.startswith("sigil-quic") else
                 "audit" if "audit" in name else
                 "signer pool" if name.startswith("sigil-signer") else
                 "hashing pool" if name.startswith("sigil-hash") else
                 "http workers" if name.startswith("sigil-http") else
                 "other: " + name.rstrip("0123456789-"))
        rows[group][0] += int(user)
        rows[group][1] += int(system)
    return rows
before, after = load("before.txt"), load("after.txt")
report = json.load(open("run.json"))
answered = float(open("requests_after.txt").read()) - float(open("requests_before.txt").read())
print(f"offered {rate:.0f}/s, achieved {report['achieved_rps']:.0f}/s, p50 {report['latency_us']['p50']/1000:.2f} ms, "
      f"p99 {report['latency_us']['p99']/1000:.2f} ms, server CPU {report['server_cpu_us_per_op']} us/op, "
      f"raw {report['raw_cpu_us_per_op']} us/op, overhead {report['overhead_factor']}, "
      f"generator CPU {report['generator_cpu_us_per_op']} us/op")
print(f"{'component':28} {'user us/req':>12} {'kernel us/req':>14}")
total = [0.0, 0.0]
for group in sorted(set(before) | set(after)):
    user = (after[group][0] - before[group][0]) / tick * 1e6 / answered
    system = (after[group][1] - before[group][1]) / tick * 1e6 / answered
    if user + system < 0.05:
        continue
    total[0] += user; total[1] += system
    print(f"{group:28} {user:12.1f} {system:14.1f}")
print(f"{'total':28} {total[0]:12.1f} {total[1]:14.1f}")
if os.path.exists("perfstat.txt"):
    print(f"\n{'event':40} {'per request':>12}")
    for line in open("perfstat.txt"):
        parts = line.strip().split(",")
        if len(parts) > 2 and parts[0].replace(".", "").isdigit():
            print(f"{parts[2]:40} {float(parts[0]) / answered:12.3f}")
EOF
echo "work dir: $work"
