# Sourced by the benchmark scripts: one release `sigil serve` at a time.
#
# start_node BIN [SERVE_ARGS...] starts BIN/sigil serve (the embedded
# default, or what SERVE_ARGS say, e.g. --config sigil.toml) in the
# current directory on a random free-looking port range, waits until it
# wrote var/endpoints.json and has settled, and stops it when the script
# exits. Sets `node` (its pid), `quic` (its QUIC port) and `http` (its
# HTTP port: /metrics).
# stop_node stops it (and waits for it) before the script goes on, e.g.
# to start another in another directory.
start_node() {
  local bin=$1
  shift
  quic=$(( 20000 + RANDOM % 10000 ))
  http=$(( quic + 1 ))
  "$bin/sigil" serve "$@" --quic-listen "127.0.0.1:$quic" --http-listen "127.0.0.1:$http" \
    --cluster-listen "127.0.0.1:$((quic + 2))" --control-listen 127.0.0.1:0 >serve.out 2>serve.log &
  node=$!
  trap stop_node EXIT
  for _ in $(seq 1 600); do [ -f var/endpoints.json ] && break; sleep 0.2; done
  [ -f var/endpoints.json ] || { echo "sigil serve did not start: see $PWD/serve.log" >&2; exit 1; }
  sleep 2
}

stop_node() {
  if [ -n "${node:-}" ]; then
    kill "$node" 2>/dev/null || true
    wait "$node" 2>/dev/null || true
    node=
  fi
}
