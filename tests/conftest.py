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


@pytest.fixture(autouse=True)
def _clean_cache():
    """Catalog, snapshots and request budgets live in the cache: start each test empty."""
    cache.clear()
    yield
