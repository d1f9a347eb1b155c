#!/usr/bin/env python3
"""First-fetch latency of tenants a node has not loaded, and memory with
every tenant loaded: the real `sigil serve` (release build) on a seeded
directory, fetched over HTTP as SPs do (docs/BENCHMARKING.md, issue 21).

    cargo build --release -p frontdoor --bin sigil
    python3 scripts/bench_tenants.py --dir /tmp/sigil-bench \\
        --tenants 19000 --users 1000000 --sample 1000 --json tenants.json

Phases, each printed as it ends and written to --json:
  seed     a fresh data directory: one start (demo data), stop, then
           `sigil directory seed` (skipped with --reuse on a seeded one)
  cold     first fetch of the JWKS of --sample random seeded tenants that
           never had keys (each load generates 2 RSA-2048, 1 ES256, 1 ES384
           and 1 Ed25519 key), one SP at a time
  warm     the node restarted without its recently-served file: first fetch
           of the same tenants, whose keys now exist (the common case after a
           restart), one SP at a time, then --parallel SPs at once
  all      every seeded tenant fetched once (--parallel SPs at once; keys
           made where missing), then the node's resident memory (VmRSS)
           beside its resident memory before (same run): bytes per tenant
  restart  the node restarted with its recently-served file listing every
           tenant: time until it listens, until all are loaded again, RSS
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(p / 100.0 * len(ordered)))]


def summary(latencies, statuses):
    ms = [x * 1000 for x in latencies]
    counts = {}
    for s in statuses:
        counts[str(s)] = counts.get(str(s), 0) + 1
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
        "statuses": counts,
    }


class Node:
    def __init__(self, binary, var_parent, config, log):
        self.binary, self.dir, self.config, self.log = binary, var_parent, config, log
        self.process = None
        self.http = None

    def start(self):
        endpoints = os.path.join(self.dir, "var", "endpoints.json")
        if os.path.exists(endpoints):
            os.remove(endpoints)
        started = time.monotonic()
        self.process = subprocess.Popen(
            [self.binary, "serve", "--config", self.config],
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "a"),
        )
        while not os.path.exists(endpoints):
            if self.process.poll() is not None:
                sys.exit(f"sigil serve exited: see {self.log}")
            if time.monotonic() - started > 600:
                sys.exit("sigil serve did not start in 10 minutes")
            time.sleep(0.05)
        with open(endpoints) as f:
            self.http = json.load(f)["http"]
        return time.monotonic() - started

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        if self.process.wait(timeout=300) != 0:
            sys.exit(f"sigil serve did not stop cleanly: see {self.log}")

    def rss_bytes(self):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def get(self, path, timeout=30):
        host, port = self.http.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        started = time.monotonic()
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            return response.status, time.monotonic() - started
        finally:
            connection.close()

    def metric(self, name):
        host, port = self.http.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
        connection.close()
        match = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
        return float(match.group(1)) if match else None


def first_fetches(node, tenants, parallel):
    """Fetches each tenant's JWKS once, `parallel` at a time."""
    latencies, statuses = [], []
    lock = threading.Lock()
    queue = list(tenants)

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                slug = queue.pop()
            status, elapsed = node.get(f"/t/{slug}/.well-known/jwks.json")
            with lock:
                latencies.append(elapsed)
                statuses.append(status)

    threads = [threading.Thread(target=worker) for _ in range(parallel)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = summary(latencies, statuses)
    result["seconds"] = round(time.monotonic() - started, 1)
    result["parallel"] = parallel
    return result


def report(results, phase, value, path):
    results[phase] = value
    print(f"{phase}: {json.dumps(value)}", flush=True)
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, help="where var/ goes (emptied unless --reuse)")
    parser.add_argument("--tenants", type=int, default=19000)
    parser.add_argument("--users", type=int, default=1000000)
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--reuse", action="store_true", help="keep a seeded --dir")
    parser.add_argument("--phases", default="seed,cold,warm,all,restart")
    parser.add_argument("--json")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/sigil"))
    args = parser.parse_args()
    phases = args.phases.split(",")
    os.makedirs(args.dir, exist_ok=True)
    config = os.path.join(args.dir, "bench.toml")
    with open(config, "w") as f:
        f.write(
            '[listen]\nquic = "127.0.0.1:0"\nhttp = "127.0.0.1:0"\n'
            f"[tenants]\nmax_loaded = {args.tenants + 1000}\n"
        )
    log = os.path.join(args.dir, "serve.log")
    node = Node(args.binary, args.dir, config, log)
    results = {"tenants": args.tenants, "users": args.users, "sample": args.sample}
    recent = os.path.join(args.dir, "var", "recent-tenants-node-1")

    if "seed" in phases and not args.reuse:
        shutil.rmtree(os.path.join(args.dir, "var"), ignore_errors=True)
        node.start()
        node.stop()
        started = time.monotonic()
        subprocess.run(
            [args.binary, "directory", "seed", "--tenants", str(args.tenants), "--users", str(args.users)],
            cwd=args.dir, check=True, stdout=subprocess.DEVNULL,
        )
        report(results, "seed", {"seconds": round(time.monotonic() - started, 1)}, args.json)

    sample = [f"seed-{n}" for n in random.Random(args.seed).sample(range(1, args.tenants + 1), args.sample)]

    if "cold" in phases:
        if os.path.exists(recent):
            os.remove(recent)
        node.start()
        report(results, "cold", first_fetches(node, sample, 1), args.json)
        node.stop()

    if "warm" in phases:
        os.remove(recent)
        node.start()
        report(results, "warm", first_fetches(node, sample, 1), args.json)
        node.stop()
        os.remove(recent)
        node.start()
        report(results, "warm_parallel", first_fetches(node, sample, args.parallel), args.json)
        node.stop()

    if "all" in phases:
        if os.path.exists(recent):
            os.remove(recent)
        node.start()
        time.sleep(2)
        before = {"rss_bytes": node.rss_bytes(), "loaded": node.metric("sigil_tenants_loaded")}
        everyone = [f"seed-{n}" for n in range(1, args.tenants + 1)]
        random.Random(args.seed).shuffle(everyone)
        fetched = first_fetches(node, everyone, args.parallel)
        # Loads outlive a request that stopped waiting (503): let them end.
        while node.metric("sigil_tenant_loads_running") or node.metric("sigil_tenant_loads_queued"):
            time.sleep(0.5)
        time.sleep(2)
        after = {"rss_bytes": node.rss_bytes(), "loaded": node.metric("sigil_tenants_loaded")}
        grown = after["loaded"] - before["loaded"]
        fetched.update(
            before=before,
            after=after,
            bytes_per_tenant=round((after["rss_bytes"] - before["rss_bytes"]) / grown) if grown else None,
        )
        report(results, "all", fetched, args.json)
        node.stop()

    if "restart" in phases:
        listening = node.start()
        started = time.monotonic()
        loaded_at_listen = node.metric("sigil_tenants_loaded")
        # The background preload has ended when nothing runs or waits and
        # the count holds for two seconds.
        last, steady_since = None, time.monotonic()
        while time.monotonic() - started < 3600:
            loaded = node.metric("sigil_tenants_loaded")
            busy = node.metric("sigil_tenant_loads_running") or node.metric("sigil_tenant_loads_queued")
            if loaded != last or busy:
                last, steady_since = loaded, time.monotonic()
            elif time.monotonic() - steady_since >= 2:
                break
            time.sleep(0.2)
        report(results, "restart", {
            "seconds_to_listen": round(listening, 2),
            "loaded_at_listen": loaded_at_listen,
            "seconds_to_all_loaded": round(listening + steady_since - started, 1),
            "loaded": last,
            "rss_bytes": node.rss_bytes(),
        }, args.json)
        node.stop()


if __name__ == "__main__":
    main()
