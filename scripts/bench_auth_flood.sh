#!/usr/bin/env bash
# Authentication under a credential-stuffing flood (issue 18, "Its own CPU
# budget"): does a wrong-password flood on one tenant take signing capacity
# from another? Same-run A/B on one embedded-default `sigil serve`:
#   A: `sigil-perf load --mix id-token` at RATE/s for tenant acme, alone;
#   B: the same while a second sigil-perf offers FLOOD/s
#      `authenticate-wrong` to tenant globex (wrong passwords for users the
#      tenant does not have: each costs the node a full argon2id
#      verification against its dummy hash, answers `invalid_credentials`,
#      and locks nobody out; no client_ip, so the per-address throttle
#      never answers in place of the hashing).
#   C: as B, with the node's hashing threads (sigil-hash-*) reniced to
#      NICE_C (default 19; `renice` on their thread ids; B sets them back
#      to 0): what `[auth] pool_nice` does, on the same node in the same run.
#      NICE_C=idle puts them under SCHED_IDLE instead (`chrt --idle`): they
#      run only on what nothing else wants, and a waking worker preempts them.
# Rounds alternate A B C A B C ... (ROUNDS triplets). Prints each round's
# id_token latency, the flood's outcomes, the hashing pool's counters from
# /metrics and the CPU seconds of its threads, then the medians of the
# rounds' p99 and the ratios B/A and C/A (issue 18: within 20 %, <= 1.2).
# Extra `[auth]` lines for the node's config may be given in AUTH_CONFIG
# (e.g. AUTH_CONFIG='pool_threads = 2').
# Usage: scripts/bench_auth_flood.sh [BIN_DIR] [RATE] [FLOOD] [DURATION] [ROUNDS]
set -euo pipefail
BIN=$(cd "${1:-target/release}" && pwd)
RATE=${2:-5000}
FLOOD=${3:-300}
DURATION=${4:-20}
ROUNDS=${5:-3}
NICE_C=${NICE_C:-19}
PY=${SIGIL_PYTHON:-python3}
WORK=$(mktemp -d /tmp/sigil-auth-flood.XXXXXX)
cd "$WORK"
port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
QUIC=$(port); HTTP=$(port)
printf '[auth]\n%s\n' "${AUTH_CONFIG:-}" > serve.toml
"$BIN/sigil" serve --config serve.toml --quic-listen "127.0.0.1:$QUIC" --http-listen "127.0.0.1:$HTTP" \
  --control-listen 127.0.0.1:0 2> serve.log &
SERVE=$!
trap 'kill $SERVE 2>/dev/null; wait $SERVE 2>/dev/null' EXIT
until [ -s var/endpoints.json ]; do sleep 0.5; done
sleep 2
echo "work dir $WORK; node pid $SERVE; [auth] ${AUTH_CONFIG:-(defaults)}; $(nproc) cores; $(uptime)"

# CPU seconds of the node's hashing threads (utime + stime of sigil-hash-*).
hash_cpu() {
  "$PY" - "$SERVE" <<'EOF'
import glob, os, sys
tick = os.sysconf("SC_CLK_TCK")
total = 0
for task in glob.glob(f"/proc/{sys.argv[1]}/task/*"):
    try:
        stat = open(f"{task}/stat").read()
    except OSError:
        continue
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    if name.startswith("sigil-hash"):
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
print(f"{total / tick:.2f}")
EOF
}
# Sets the nice value of the node's hashing threads.
renice_hash() {
  for task in /proc/"$SERVE"/task/*; do
    if grep -q '^sigil-hash' "$task/comm" 2>/dev/null; then
      if [ "$1" = idle ]; then
        chrt --idle -p 0 "${task##*/}" > /dev/null
      else
        chrt --other -p 0 "${task##*/}" > /dev/null
        renice -n "$1" -p "${task##*/}" > /dev/null
      fi
    fi
  done
}
metric() { curl -s "http://127.0.0.1:$HTTP/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

summary() {
  "$PY" - "$@" <<'EOF'
import json, sys
round_, path, flood, cpu, jobs, overloaded = sys.argv[1:7]
r = json.load(open(path))
lat = r["latency_us"]
line = {"round": round_, "sent": r["sent"], "ok": r["ok"], "errors": r["errors"],
        "p50_ms": lat["p50"] / 1000, "p99_ms": lat["p99"] / 1000,
        "p999_ms": lat["p999"] / 1000, "max_ms": lat["max"] / 1000,
        "server_cpu_us_per_op": r.get("server_cpu_us_per_op"),
        "hash_thread_cpu_s": float(cpu), "hash_jobs": int(jobs),
        "hash_overloaded": int(overloaded),
        "load_average_1m": float(open("/proc/loadavg").read().split()[0])}
if flood != "-":
    f = json.load(open(flood))
    line["flood"] = {"sent": f["sent"], "ok": f["ok"], "outcomes": f["errors"],
                     "answered_p99_ms": (f.get("rejection_latency_us") or {}).get("p99", 0) / 1000}
print(json.dumps(line))
EOF
}

COMMON=(--target "127.0.0.1:$QUIC" --server-name localhost --metrics "127.0.0.1:$HTTP"
        --cert-dir var/credentials/frontend --charts charts)
for round in $(for i in $(seq 1 "$ROUNDS"); do echo "A$i B$i C$i"; done); do
  cpu0=$(hash_cpu); jobs0=$(metric sigil_auth_hash_jobs_total); over0=$(metric sigil_auth_hash_overloaded_total)
  flood=-
  # B at nice 0 whatever `[auth] pool_nice` says, C at NICE_C.
  case $round in B*) renice_hash 0 ;; C*) renice_hash "$NICE_C" ;; esac
  if [[ $round != A* ]]; then
    # The flood starts first and ends last, so that it covers the whole
    # id_token run (which spends its first second on its raw baseline).
    "$BIN/sigil-perf" load "${COMMON[@]}" --tenant globex --mix authenticate-wrong \
      --rate "$FLOOD" --duration "$((DURATION + 6))s" --threads 1 --connections 2 \
      --json "flood-$round.json" > "flood-$round.txt" 2>&1 &
    FLOODER=$!
    flood=flood-$round.json
    sleep 2
  fi
  "$BIN/sigil-perf" load "${COMMON[@]}" --tenant acme --users alice --app app-eddsa --mix id-token \
    --rate "$RATE" --duration "${DURATION}s" --json "perf-$round.json" > "perf-$round.txt" 2>&1
  if [[ $round != A* ]]; then wait "$FLOODER"; fi
  cpu1=$(hash_cpu); jobs1=$(metric sigil_auth_hash_jobs_total); over1=$(metric sigil_auth_hash_overloaded_total)
  summary "$round" "perf-$round.json" "$flood" \
    "$("$PY" -c "print(round($cpu1 - $cpu0, 2))")" "$((jobs1 - jobs0))" "$((over1 - over0))" | tee -a rounds.jsonl
done
"$PY" - <<'EOF'
import json, statistics
rounds = [json.loads(l) for l in open("rounds.jsonl")]
p99 = {k: [r["p99_ms"] for r in rounds if r["round"].startswith(k)] for k in "ABC"}
med = {k: statistics.median(v) for k, v in p99.items()}
print(json.dumps({"id_token_p99_ms": p99, "median_p99_ms": med,
                  "ratio_B_over_A": round(med["B"] / med["A"], 3) if med["A"] else None,
                  "ratio_C_over_A": round(med["C"] / med["A"], 3) if med["A"] else None,
                  "B_within_20_percent": bool(med["A"]) and med["B"] <= 1.2 * med["A"],
                  "C_within_20_percent": bool(med["A"]) and med["C"] <= 1.2 * med["A"]}))
EOF
curl -s "http://127.0.0.1:$HTTP/metrics" | grep '^sigil_auth_hash' || true
echo "$(uptime)"
