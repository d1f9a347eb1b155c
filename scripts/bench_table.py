#!/usr/bin/env python3
"""Print criterion results as Markdown tables with same-run ratios.

Usage: scripts/bench_table.py signing   (reads target/criterion/)

Every figure is the median of the last run, shown as operations per second
and as a ratio to the raw AWS-LC signing of the same key spec measured in the
same run: the comparison that survives a noisy, shared machine.
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"


def median_ns(*parts):
    path = ROOT.joinpath(*parts, "new", "estimates.json")
    if not path.exists():
        return None
    return json.loads(path.read_text())["median"]["point_estimate"]


def rate(ns):
    return 1e9 / ns if ns else None


def fmt_rate(r):
    return "—" if r is None else f"{r:,.0f}/s"


def fmt_ratio(x):
    return "—" if x is None else f"{x:.2f}"


def signing():
    specs = ["RS256-2048", "PS256-2048", "ES256", "ES384", "EdDSA"]
    print("| key | raw AWS-LC sign (1 core) | JWT build + sign | JWT ÷ raw | pool 1 worker | pool 1 ÷ raw | pool 2 workers | pool 2 per worker ÷ raw | inline 2 threads | inline 2 per thread ÷ raw | pool 2 ÷ inline 2 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for spec in specs:
        raw = rate(median_ns("raw", spec))
        jwt = rate(median_ns("jwt", spec))
        p1 = rate(median_ns(f"pool_{spec}", "workers", "1"))
        p2 = rate(median_ns(f"pool_{spec}", "workers", "2"))
        i2 = rate(median_ns(f"pool_{spec}", "inline-threads", "2"))
        ratio = lambda a, b: a / b if a and b else None
        print(
            f"| {spec} | {fmt_rate(raw)} | {fmt_rate(jwt)} | {fmt_ratio(ratio(jwt, raw))} "
            f"| {fmt_rate(p1)} | {fmt_ratio(ratio(p1, raw))} "
            f"| {fmt_rate(p2)} | {fmt_ratio(ratio(p2 / 2 if p2 else None, raw))} "
            f"| {fmt_rate(i2)} | {fmt_ratio(ratio(i2 / 2 if i2 else None, raw))} "
            f"| {fmt_ratio(ratio(p2, i2))} |"
        )


def saml():
    print("| key | raw sign (1 core) | signed Response (1 core) | Response ÷ raw |")
    print("|---|---|---|---|")
    for spec in ["RS256-2048", "ES256"]:
        raw = rate(median_ns(f"saml_{spec}", "raw"))
        response = rate(median_ns(f"saml_{spec}", "response"))
        ratio = response / raw if raw and response else None
        print(f"| {spec} | {fmt_rate(raw)} | {fmt_rate(response)} | {fmt_ratio(ratio)} |")


if __name__ == "__main__":
    {"signing": signing, "saml": saml}[sys.argv[1] if len(sys.argv) > 1 else "signing"]()
