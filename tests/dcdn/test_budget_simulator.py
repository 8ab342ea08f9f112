"""The request budget holds across processes: four processes sharing one token never
push the simulator over its rate limit, on either backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from panel.dcdn.simulator.server import SimulatorServer

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4
CALLS_EACH = 15
LIMIT = 10
WINDOW = 2

WORKER = """
import sys
import django

django.setup()
from panel.dcdn.client import DcdnClient

client = DcdnClient(token="demo-token", budget_key=sys.argv[1], max_wait=60)
ok = 0
for _ in range(int(sys.argv[2])):
    client.list_regions()
    ok += 1
print(ok)
"""


@pytest.fixture
def rate_limited_simulator():
    sim = SimulatorServer(port=0, rate_limit=LIMIT, rate_window_seconds=WINDOW)
    sim.start()
    yield sim
    sim.stop()


def run_workers(sim: SimulatorServer, env_overrides: dict[str, str]) -> list[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "panel.settings",
        "DCDN_API_URL": sim.api_url,
        "DCDN_EARNINGS_URL": sim.api_url,
        "DCDN_RATE_LIMIT_PER_MINUTE": str(LIMIT),
        "DCDN_RATE_WINDOW_SECONDS": str(WINDOW),
        # Loopback latency is tiny; a quarter second covers scheduling jitter.
        "DCDN_BUDGET_MARGIN_SECONDS": "0.25",
        **env_overrides,
    }
    budget_key = f"test:{uuid.uuid4().hex}"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, budget_key, str(CALLS_EACH)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    outputs = []
    try:
        for worker in workers:
            out, err = worker.communicate(timeout=90)
            assert worker.returncode == 0, err
            outputs.append(out.strip())
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    return outputs


def calls(sim: SimulatorServer) -> dict:
    with urllib.request.urlopen(sim.base_url + "/_sim/calls", timeout=5) as response:
        return json.load(response)


def assert_all_calls_succeeded_without_429(sim, outputs):
    assert outputs == [str(CALLS_EACH)] * PROCESSES
    counted = calls(sim)
    assert counted["rate_limited"] == 0
    assert counted["by_token"]["demo-token"]["total"] == PROCESSES * CALLS_EACH


@pytest.mark.timeout(120)
def test_the_redis_budget_holds_across_processes(rate_limited_simulator, settings):
    assert settings.REDIS_URL, "the test environment sets REDIS_URL"
    outputs = run_workers(rate_limited_simulator, {"REDIS_URL": settings.REDIS_URL})
    assert_all_calls_succeeded_without_429(rate_limited_simulator, outputs)


@pytest.mark.timeout(120)
def test_the_file_budget_holds_across_processes(rate_limited_simulator, tmp_path):
    outputs = run_workers(
        rate_limited_simulator,
        {"REDIS_URL": "", "DCDN_BUDGET_REDIS_URL": "", "PANEL_VAR_DIR": str(tmp_path)},
    )
    assert_all_calls_succeeded_without_429(rate_limited_simulator, outputs)
