"""Benchmark: upstream calls while many tabs poll one user's instances list.

Starts the simulator (real HTTP, slow transitions so rows stay "creating"), sets up a
throw-away SQLite panel with one user, creates a few instances, then lets ``--tabs``
threads poll for ``--seconds``:

- baseline: each poll asks DCDN directly (``GET /instances``), as a naive panel would;
- panel: each poll is the list page's htmx row fragment, served from the shared snapshot.

Prints polls served, upstream ``GET /instances`` calls, upstream calls per poll, and the
panel/baseline ratio, all measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def sim_list_calls(base_url: str) -> int:
    with urllib.request.urlopen(base_url + "/_sim/calls", timeout=5) as resp:
        calls = json.load(resp)
    endpoints = calls.get("by_token", {}).get("demo-token", {}).get("endpoints", {})
    return int(endpoints.get("GET /instances", 0))


def sim_reset_calls(base_url: str) -> None:
    req = urllib.request.Request(base_url + "/_sim/calls/reset", data=b"{}", method="POST")
    urllib.request.urlopen(req, timeout=5).read()


def hammer(poll, *, tabs: int, seconds: float, interval: float) -> int:
    """Run ``poll`` from ``tabs`` threads every ``interval`` s; return how many ran."""
    done = [0] * tabs
    errors: list[BaseException] = []
    stop = time.monotonic() + seconds

    def tab(index: int) -> None:
        try:
            while time.monotonic() < stop:
                poll()
                done[index] += 1
                time.sleep(interval)
        except BaseException as exc:  # reported below: a failed poll voids the figures
            errors.append(exc)

    threads = [threading.Thread(target=tab, args=(i,)) for i in range(tabs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"a poll failed: {errors[0]!r}")
    return sum(done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=2.0, help="each tab's poll interval")
    parser.add_argument("--instances", type=int, default=3)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="panel-bench-")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="panel.settings",
        PANEL_VAR_DIR=workdir,
        DATABASE_URL=f"sqlite:///{workdir}/bench.sqlite3",
        REDIS_URL="",
        DJANGO_ALLOWED_HOSTS="testserver",
        CELERY_TASK_ALWAYS_EAGER="0",
        DCDN_RATE_LIMIT_PER_MINUTE="100000",  # measure the panel's own economy, not the cap
    )
    from panel.dcdn.simulator.server import SimulatorServer

    sim = SimulatorServer(port=0, create_seconds=3600, rate_limit=100000)
    sim.start()
    os.environ["DCDN_API_URL"] = sim.api_url

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from accounts.services import credential_store_unverified, dcdn_client_for

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password="bench-pass-123")
    credential_store_unverified(user=user, token="demo-token")
    client = dcdn_client_for(user)
    ids = [
        client.create_instance(
            name=f"bench-{n}", plan="nano", image="ubuntu-22.04", region="eu-central"
        ).instance.id
        for n in range(args.instances)
    ]

    try:
        sim_reset_calls(sim.base_url)
        baseline_polls = hammer(
            client.list_instances, tabs=args.tabs, seconds=args.seconds, interval=args.interval
        )
        baseline_calls = sim_list_calls(sim.base_url)

        sim_reset_calls(sim.base_url)
        local = threading.local()

        def panel_poll() -> None:
            if not hasattr(local, "browser"):
                local.browser = Client()
                local.browser.force_login(user)
            row = ids[threading.get_ident() % len(ids)]
            response = local.browser.get(
                f"/instances/?row={row}&was=creating&name=x", HTTP_HX_REQUEST="true"
            )
            assert response.status_code == 200, response.status_code

        panel_polls = hammer(
            panel_poll, tabs=args.tabs, seconds=args.seconds, interval=args.interval
        )
        panel_calls = sim_list_calls(sim.base_url)
    finally:
        sim.stop()

    print(
        f"{args.tabs} tabs polling every {args.interval:g} s for {args.seconds:g} s, "
        f"{args.instances} instances in transition"
    )
    for label, polls, calls in (
        ("baseline", baseline_polls, baseline_calls),
        ("panel", panel_polls, panel_calls),
    ):
        print(
            f"  {label:<8} polls={polls:<5} upstream GET /instances={calls:<5} "
            f"per poll={calls / max(1, polls):.3f}"
        )
    ratio = (panel_calls / max(1, panel_polls)) / (baseline_calls / max(1, baseline_polls))
    print(f"  upstream calls per poll, panel / baseline: {ratio:.3f}")


if __name__ == "__main__":
    main()
