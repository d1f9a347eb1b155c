#!/usr/bin/env bash
# Issue 16: where the node's CPU goes by software component. A release
# `sigil serve` (embedded default) under `sigil-perf load` of MIX at RATE;
# `perf record` samples the node's threads for a window inside the load,
# and each sample's symbol is put in one component: the signature
# (Ed25519/ECDSA arithmetic and its SHA-512/256), QUIC (quinn, packet
# protection, UDP), the kernel, CBOR, JSON and JWT assembly, the audit
# journal, the async runtime and channels, memory (malloc, free, memmove),
# and the rest. Prints each component's share of the samples and, with the
# node's CPU per answered request (/proc), its microseconds per request.
# PERF_ARGS: more flags for `sigil-perf load` (e.g. "--threads 1
# --connections 1"). With PROFILE=generator it samples `sigil-perf` instead, and the
# microseconds are of its own CPU per request (generator_cpu_us_per_op).
# Needs perf and root.
# Usage: scripts/profile_components.sh [BIN_DIR] [RATE] [DURATION_S] [MIX] [APP]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "${1:-$root/target/release}" && pwd)
rate=${2:-10000}
duration=${3:-12}
mix=${4:-id-token}
app=${5:-app-eddsa}
work=$(mktemp -d /tmp/sigil-profile.XXXXXX)
cd "$work"
# shellcheck source=scripts/node.sh
. "$root/scripts/node.sh"
start_node "$bin"
# shellcheck disable=SC2086 # PERF_ARGS is a list of flags
"$bin/sigil-perf" load --app "$app" --mix "$mix" --rate "$rate" --duration "${duration}s" ${PERF_ARGS:-} \
  --json run.json --charts charts >perf.out 2>perf.log &
perf_pid=$!
sleep 2
window=$(( duration - 3 ))
requests() { curl -s "http://127.0.0.1:$http/metrics" | awk '$1 == "sigil_quic_requests_total" {print $2}'; }
cpu() { awk '{print $14 + $15}' "/proc/$node/stat"; }
before_requests=$(requests); before_cpu=$(cpu)
sampled=$node
[ "${PROFILE:-node}" = generator ] && sampled=$perf_pid
perf record -F 499 -p "$sampled" -o perf.data -- sleep "$window" 2>/dev/null
after_requests=$(requests); after_cpu=$(cpu)
wait $perf_pid || true
perf report -i perf.data --no-children --sort comm,dso,symbol --stdio 2>/dev/null |
  grep -E '^ +[0-9.]+%' >symbols.txt
python3 - "$before_requests" "$after_requests" "$before_cpu" "$after_cpu" "$rate" "${PROFILE:-node}" <<'PY'
import collections, json, os, re, sys
before_r, after_r, before_c, after_c, rate = map(float, sys.argv[1:6])
sampled = sys.argv[6]
tick = os.sysconf("SC_CLK_TCK")
us_per_request = (after_c - before_c) / tick * 1e6 / max(after_r - before_r, 1)
report = json.load(open("run.json"))
if sampled == "generator":
    us_per_request = report["generator_cpu_us_per_op"]
RULES = [  # first match wins: (component, symbol pattern)
    ("signature", r"edwards25519|ed25519|x25519|fiat_|p256|ecdsa|ec_|bn_|sha512|SHA512|BN_|ecp_nistz|beeu|sc_muladd|sc_reduce|ge_"),
    ("QUIC and TLS", r"quinn|aes_gcm|aes_hw|gcm_|aesni|AES_|rustls|HeaderProtection|chacha|poly1305|udp"),
    ("audit journal", r"audit|AuditEntry|write_loop|sha256_block|SHA256|digest"),
    ("CBOR", r"ciborium|cbor"),
    ("JSON and JWT", r"serde_json|base64|jwt|Jwt|claims|fmt::|format_inner|itoa|ryu"),
    ("memory", r"malloc|free|mi_|memmove|memcpy|memset|realloc|alloc::raw_vec|_rjem_|mmap|page_fault"),
    ("async runtime and channels", r"tokio|mpsc|oneshot|crossbeam|waker|Waker|LocalSet|task::|futures|parking|epoll|eventfd"),
]
groups = collections.Counter()
kernel = collections.Counter()
total = 0.0
for line in open("symbols.txt"):
    m = re.match(r"\s*([0-9.]+)%\s+(\S+)\s+(\S+)\s+\[(.)\]\s+(.*)", line)
    if not m:
        continue
    share, comm, dso, kind, symbol = float(m[1]), m[2], m[3], m[4], m[5].strip()
    total += share
    if kind == "k":
        group = "kernel (syscalls, network, scheduler, disk)"
    else:
        group = next((name for name, pattern in RULES if re.search(pattern, symbol)), "other (request logic)")
    if group.startswith("other") and "audit" in comm:
        group = "audit journal"
    groups[group] += share
print(f"sampled: {sampled}")
print(f"offered {rate:.0f}/s, achieved {report['achieved_rps']:.0f}/s, {sampled} CPU {us_per_request:.1f} us per answered request, "
      f"raw signature {report['raw_cpu_us_per_op']} us (same run), generator {report['generator_cpu_us_per_op']} us/op")
print(f"{'component':46} {'share':>7} {'us/request':>11}")
for group, share in groups.most_common():
    print(f"{group:46} {share / total * 100:6.1f}% {share / total * us_per_request:11.1f}")
PY
echo "work dir: $work"
