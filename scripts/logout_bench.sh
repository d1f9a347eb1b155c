#!/usr/bin/env bash
# Back-channel logout (issue 19): does a dead receiver slow issuance?
# Same-run A/B on one embedded-default node: sigil-perf issues ID tokens
# open-loop at RATE/s for DURATION while a churn loop ends sessions (one
# `sigil client id-token` + `sigil client session revoke` after another).
#   A: the churn's app has no backchannel_logout_uri (nothing to deliver);
#   B: it has one pointing at a receiver that accepts connections and never
#      answers (every delivery waits out all its attempts' timeouts).
# Rounds alternate A B A B ... (PAIRS pairs); prints each round's latency
# percentiles and the node's sigil_logout_* counters.
# Usage: scripts/logout_bench.sh [BIN_DIR] [RATE] [DURATION] [PAIRS]
set -euo pipefail
BIN=$(cd "${1:-target/debug}" && pwd)
RATE=${2:-500}
DURATION=${3:-20s}
PAIRS=${4:-2}
PY=${SIGIL_PYTHON:-python3}
WORK=$(mktemp -d /tmp/sigil-logout-bench.XXXXXX)
cd "$WORK"
port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
QUIC=$(port); HTTP=$(port)
cat > serve.toml <<EOF
[logout]
attempts = 3
timeout_ms = 2000
backoff_ms = 500
EOF
"$BIN/sigil" serve --config serve.toml --quic-listen "127.0.0.1:$QUIC" --http-listen "127.0.0.1:$HTTP" \
  --control-listen 127.0.0.1:0 2> serve.log &
SERVE=$!
# The black hole: listens, never accepts, never answers.
"$PY" -c 'import socket,time,sys; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(1024); print(s.getsockname()[1], flush=True); time.sleep(100000)' > hole.port &
HOLE=$!
trap 'kill $SERVE $HOLE 2>/dev/null; wait 2>/dev/null' EXIT
until [ -s var/endpoints.json ] && [ -s hole.port ]; do sleep 0.5; done
sleep 2
"$BIN/sigil" admin app add --tenant acme --name rp-plain --alg EdDSA --assign everyone > /dev/null
"$BIN/sigil" admin app add --tenant acme --name rp-dead --alg EdDSA --assign everyone \
  --backchannel-logout-uri "http://127.0.0.1:$(cat hole.port)/bcl" > /dev/null
churn() {
  local app=$1 stop=$2
  while [ ! -e "$stop" ]; do
    s=$("$BIN/sigil" client session create --tenant acme --user bob | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["result"]["session"])')
    "$BIN/sigil" client id-token --tenant acme --user bob --app "$app" --session "$s" > /dev/null
    "$BIN/sigil" client session revoke --tenant acme --session "$s" > /dev/null
  done
}
for round in $(for i in $(seq 1 "$PAIRS"); do echo "A$i B$i"; done); do
  case $round in A*) app=rp-plain ;; *) app=rp-dead ;; esac
  rm -f stop; churn "$app" stop & CHURN=$!
  "$BIN/sigil-perf" load --rate "$RATE" --duration "$DURATION" --app app-eddsa --json "perf-$round.json" > "perf-$round.txt" 2>&1
  touch stop; wait $CHURN
  "$PY" - "$round" "$app" "perf-$round.json" <<'EOF'
import json, sys
round_, app, path = sys.argv[1:4]
r = json.load(open(path))
lat = r["latency_us"]
print(json.dumps({"round": round_, "churn_app": app, "sent": r["sent"], "ok": r["ok"],
                  "errors": r["errors"], "p50_ms": lat["p50"] / 1000, "p99_ms": lat["p99"] / 1000,
                  "p999_ms": lat["p999"] / 1000, "max_ms": lat["max"] / 1000}))
EOF
done
curl -s "http://127.0.0.1:$HTTP/metrics" | grep '^sigil_logout' || true
