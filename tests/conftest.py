"""Shared fixtures: the simulator over real HTTP, two users (owner and outsider)."""

from __future__ import annotations

import pytest
from django.core.cache import cache


@pytest.fixture(scope="session")
def simulator_server():
    """One real simulator HTTP server for the session, with short timings."""
    from panel.dcdn.simulator.server import SimulatorServer

    server = SimulatorServer(
        host="127.0.0.1",
        port=0,
        create_seconds=0.2,
        destroy_seconds=0.2,
        transition_seconds=0.2,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def simulator(simulator_server, settings):
    """The simulator, reset to its seeded state, with the panel pointed at it."""
    simulator_server.reset()
    settings.DCDN_API_URL = simulator_server.api_url
    settings.DCDN_EARNINGS_URL = simulator_server.api_url
    yield simulator_server
    simulator_server.reset()


def clear_run_keys() -> None:
    """Delete this run's keys only (cache, snapshots, request budgets share the prefix).

    ``cache.clear()`` would FLUSHDB, wiping the keys of any other run on the same Redis."""
    from django.conf import settings

    if not settings.REDIS_URL:
        cache.clear()
        return
    client = cache._cache.get_client(write=True)
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    budget = settings.DCDN_BUDGET_KEY_PREFIX
    # Budget keys carry a Redis hash tag: "{<budget prefix>:<owner>}:window".
    for pattern in (f"{prefix}:*", f"{budget}:*", f"{{{budget}:*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture(autouse=True)
def _clean_cache():
    """Catalog, snapshots and request budgets live in Redis: start each test without them."""
    clear_run_keys()
    yield
