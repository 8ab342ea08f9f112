"""Benchmark: one token's calls from several processes, with and without the shared budget.

Starts the simulator on a free loopback port with the provider's limit scaled down in
time (``--limit`` requests per ``--window`` seconds, the same ratio checks as 60/60 s),
then runs ``--processes`` processes making ``--calls`` calls in total for one token:

- baseline: plain HTTP GETs with no budget (what a naive panel does);
- panel: ``DcdnClient`` calls sharing the budget (Redis when REDIS_URL is set, else files).

Prints calls made, upstream 429s and throughput for each, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORKER = r"""
import os, sys, time, json, urllib.request, urllib.error
mode, url, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
ok = refused = upstream_429 = 0
if mode == "panel":
    import django
    django.setup()
    from panel.dcdn.client import DcdnClient
    from panel.dcdn.errors import RateLimited
    client = DcdnClient(token="demo-token", budget_key="bench:demo", max_wait=600)
    for _ in range(calls):
        try:
            client.list_regions()
            ok += 1
        except RateLimited:
            refused += 1
else:
    for _ in range(calls):
        auth = {"Authorization": "Bearer demo-token"}
        req = urllib.request.Request(url + "/regions", headers=auth)
        try:
            urllib.request.urlopen(req, timeout=10).read()
            ok += 1
        except urllib.error.HTTPError as exc:
            upstream_429 += exc.code == 429
print(json.dumps({"ok": ok, "refused": refused, "upstream_429": upstream_429}))
"""


def sim_calls(base_url: str) -> dict:
    with urllib.request.urlopen(base_url + "/_sim/calls", timeout=5) as resp:
        return json.load(resp)


def run(mode: str, *, sim, args, env: dict) -> dict:
    sim.reset()
    per_process = args.calls // args.processes
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, mode, sim.api_url, str(per_process)],
            env=env,
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        for _ in range(args.processes)
    ]
    results = [json.loads(p.communicate(timeout=900)[0]) for p in procs]
    elapsed = time.monotonic() - started
    counts = sim_calls(sim.base_url)
    return {
        "mode": mode,
        "ok": sum(r["ok"] for r in results),
        "refused_by_budget": sum(r["refused"] for r in results),
        "upstream_requests": counts.get("total", 0),
        "upstream_429": counts.get("rate_limited", 0),
        "seconds": round(elapsed, 2),
        "accepted_per_window": round(
            (counts.get("total", 0) - counts.get("rate_limited", 0)) / elapsed * args.window, 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--window", type=float, default=6.0)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")
    from panel.dcdn.simulator.server import SimulatorServer

    sim = SimulatorServer(port=0, rate_limit=args.limit, rate_window_seconds=args.window)
    sim.start()
    try:
        env = dict(os.environ)
        env.update(
            DCDN_API_URL=sim.api_url,
            DCDN_RATE_LIMIT_PER_MINUTE=str(args.limit),
            DCDN_RATE_WINDOW_SECONDS=str(args.window),
            DCDN_BUDGET_MARGIN_SECONDS=str(round(args.window / 60, 3)),
            DCDN_BUDGET_KEY_PREFIX=f"bench{os.getpid()}",
        )
        baseline = run("baseline", sim=sim, args=args, env=env)
        panel = run("panel", sim=sim, args=args, env=env)
    finally:
        sim.stop()

    backend = "redis" if os.environ.get("REDIS_URL") else "file lock"
    print(
        f"{args.calls} calls for one token from {args.processes} processes; "
        f"limit {args.limit} per {args.window:g} s; budget backend: {backend}"
    )
    for row in (baseline, panel):
        print(
            f"  {row['mode']:<8} ok={row['ok']:<4} upstream_429={row['upstream_429']:<4} "
            f"refused_by_budget={row['refused_by_budget']:<3} seconds={row['seconds']:<6} "
            f"average accepted per window={row['accepted_per_window']}"
        )
    base_429 = baseline["upstream_429"]
    print(
        f"  upstream 429s: panel {panel['upstream_429']} vs baseline {base_429} "
        f"(ratio {panel['upstream_429'] / base_429:.3f})"
        if base_429
        else "  baseline produced no 429s (raise --calls)"
    )


if __name__ == "__main__":
    main()
