#!/usr/bin/env bash
# Introspection p99 at a fixed rate (issue 19), with its same-run baseline:
# a release `sigil serve` on its private Postgres in DIR, an Ed25519 client
# key registered for app-es256, one access token, then `sigil-perf
# introspect` (GET jwks.json at RATE, then POST oauth2/introspect at RATE,
# open loop, latency from the intended send time).
# Usage: scripts/bench_introspect.sh [DIR] [RATE] [DURATION]
set -euo pipefail
dir=${1:-/tmp/sigil-introspect-bench}
rate=${2:-5000}
duration=${3:-30s}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${SIGIL_BIN_DIR:-$root/target/release}
sigil=$bin/sigil
perf=$bin/sigil-perf
rm -rf "$dir" && mkdir -p "$dir"
cd "$dir"
quic=$(( 20000 + RANDOM % 20000 ))
http=$(( quic + 1 ))
"$sigil" serve --quic-listen 127.0.0.1:$quic --http-listen 127.0.0.1:$http \
  --control-listen 127.0.0.1:0 >serve.out 2>serve.log &
node=$!
trap 'kill $node 2>/dev/null; wait $node 2>/dev/null' EXIT
for _ in $(seq 1 600); do [ -f var/endpoints.json ] && break; sleep 0.2; done
"$perf" introspect-key --out key >/dev/null
"$sigil" admin app set-jwks --tenant acme --name app-es256 --jwks key/jwks.json >/dev/null
token=$("$sigil" client access-token --tenant acme --user alice --app app-es256 --scope read |
  python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[-1] if isinstance(d,list) else d; print(d["result"]["token"])')
"$perf" introspect --http 127.0.0.1:$http --tenant acme --app app-es256 \
  --key key/client.pk8 --token "$token" --rate "$rate" --duration "$duration"
curl -s http://127.0.0.1:$http/metrics | grep '^sigil_oauth_requests_total' || true
