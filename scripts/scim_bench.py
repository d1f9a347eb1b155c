#!/usr/bin/env python3
"""SCIM benchmarks against a running node (docs/BENCHMARKING.md, "SCIM").

  scim_bench.py create BASE_URL TOKEN [--users 100000] [--batch 500] [--parallel 4] [--prefix bench]
      creates users through /Bulk (batches of --batch operations, --parallel
      requests at once) and prints users/s.
  scim_bench.py filter BASE_URL TOKEN [--queries 2000] [--users 1000000] [--login-format user{n}]
      asks GET /Users?filter=userName eq "..." for random existing logins,
      one at a time, and prints the latency percentiles (client side:
      Python and the HTTP round trip included).
  scim_bench.py get BASE_URL TOKEN [--queries 2000] [--path /ServiceProviderConfig]
      the same client and loop for a plain GET of --path (relative to
      BASE_URL, or an absolute URL such as a JWKS document): the floor of
      the client and the HTTP round trip, to set the filter figures against.

BASE_URL is `{control_url}/t/{tenant}/scim/v2`. Prints one JSON line.
"""

import argparse
import concurrent.futures
import json
import random
import sys
import threading
import time

import httpx2

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def client(base, token):
    return httpx2.Client(
        base_url=base,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
        timeout=120,
    )


def create(args):
    local = threading.local()

    def one_batch(start):
        if not hasattr(local, "http"):
            local.http = client(args.base, args.token)
        operations = [
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": f"u{n}",
                "data": {
                    "schemas": [USER],
                    "userName": f"{args.prefix}{n}",
                    "displayName": f"Bench User {n}",
                    "emails": [{"value": f"{args.prefix}{n}@bench.example", "primary": True}],
                },
            }
            for n in range(start, min(start + args.batch, args.users))
        ]
        answer = local.http.post("/Bulk", json={"schemas": [BULK], "Operations": operations})
        answer.raise_for_status()
        failed = [o for o in answer.json()["Operations"] if o["status"] != "201"]
        if failed:
            raise RuntimeError(f"{len(failed)} failed, first: {failed[0]}")
        return len(operations)

    began = time.perf_counter()
    made = 0
    with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
        for n in pool.map(one_batch, range(0, args.users, args.batch)):
            made += n
    seconds = time.perf_counter() - began
    return {"created": made, "seconds": round(seconds, 2), "users_per_second": round(made / seconds)}


def filter_latency(args):
    http = client(args.base, args.token)
    latencies = []
    for _ in range(args.queries):
        login = args.login_format.format(n=random.randint(1, args.users))
        began = time.perf_counter()
        answer = http.get("/Users", params={"filter": f'userName eq "{login}"'})
        latencies.append(time.perf_counter() - began)
        answer.raise_for_status()
        if answer.json()["totalResults"] != 1:
            raise RuntimeError(f"{login}: {answer.text}")
    return percentiles(latencies)


def get_latency(args):
    http = client(args.base, args.token)
    latencies = []
    for _ in range(args.queries):
        began = time.perf_counter()
        answer = http.get(args.path)
        latencies.append(time.perf_counter() - began)
        answer.raise_for_status()
        answer.json()
    return percentiles(latencies)


def percentiles(latencies):
    latencies = sorted(latencies)

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000, 2)

    return {"queries": len(latencies), "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99), "max_ms": pct(1.0)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["create", "filter", "get"])
    parser.add_argument("base")
    parser.add_argument("token")
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--login-format", default="user{n}")
    parser.add_argument("--path", default="/ServiceProviderConfig")
    args = parser.parse_args()
    if args.users is None:
        args.users = 100_000 if args.mode == "create" else 1_000_000
    result = {"create": create, "filter": filter_latency, "get": get_latency}[args.mode](args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
