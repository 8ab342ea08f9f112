"""The catalog cache against the simulator: a warm cache costs no upstream call, for any user."""

from __future__ import annotations

import json
import urllib.request
import uuid

from panel.dcdn.catalog import catalog_get
from panel.dcdn.client import DcdnClient
from tests.dcdn.test_catalog import no_cached_catalog  # noqa: F401  (autouse fixture)


def upstream_calls(sim) -> dict:
    with urllib.request.urlopen(sim.base_url + "/_sim/calls", timeout=5) as response:
        return json.load(response)


def add_account(sim, token: str) -> None:
    request = urllib.request.Request(
        sim.base_url + "/_sim/accounts",
        data=json.dumps({"token": token, "credits": 10, "nodes": []}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=5).close()


def test_a_warm_catalog_costs_no_upstream_call_for_another_user(simulator):
    add_account(simulator, "second-token")
    first = DcdnClient(token="demo-token", budget_key=f"user:1:{uuid.uuid4().hex}")
    second = DcdnClient(token="second-token", budget_key=f"user:2:{uuid.uuid4().hex}")

    catalog = catalog_get(client=first)
    assert len(catalog.images) == 15
    cold = upstream_calls(simulator)
    assert cold["total"] == 4

    for _ in range(3):
        assert catalog_get(client=second) == catalog
        assert catalog_get(client=first) == catalog
    warm = upstream_calls(simulator)
    assert warm["total"] == 4
    assert "second-token" not in warm["by_token"]
