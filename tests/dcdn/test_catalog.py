"""The shared catalog cache, with a stand-in client that counts its calls."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal

import pytest
from django.core.cache import cache

from panel.dcdn.catalog import CACHE_KEY, LOCK_KEY, catalog_cached, catalog_get, catalog_invalidate
from panel.dcdn.errors import Unavailable
from panel.dcdn.types import Catalog, Image, Plan, Region, Template

PLAN = Plan(
    id="nano",
    vcpus=1,
    ram_mb=512,
    disk_gb=10,
    bandwidth_tb=Decimal("0.5"),
    price_usd=Decimal("2.10"),
    cpu_type="shared",
    dedicated_ip=False,
)


@pytest.fixture(autouse=True)
def no_cached_catalog():
    """Neither a catalog nor a fetch lock left by another test."""
    cache.delete_many([CACHE_KEY, LOCK_KEY])
    yield
    cache.delete_many([CACHE_KEY, LOCK_KEY])


class CountingClient:
    def __init__(self, *, delay: float = 0.0, fail: bool = False):
        self.calls = 0
        self.delay = delay
        self.fail = fail
        self._lock = threading.Lock()

    def _call(self):
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        if self.fail:
            raise Unavailable()

    def list_plans(self):
        self._call()
        return [PLAN]

    def list_images(self):
        self._call()
        return [Image(id="debian-12", name="Debian 12")]

    def list_regions(self):
        self._call()
        return [Region(id="eu-central", nodes=2)]

    def list_templates(self):
        self._call()
        return [Template("dev", "Dev box", "", "debian-12", "nano", "shared")]


def test_a_cold_cache_fetches_once_and_a_warm_one_not_at_all():
    client = CountingClient()
    assert catalog_cached() is None
    first = catalog_get(client=client)
    assert client.calls == 4
    second = catalog_get(client=CountingClient(fail=True))
    assert second == first
    assert second.plan("nano").price_usd == Decimal("2.10")
    assert second.region("eu-central").supports_redundant


def test_the_cache_holds_json_safe_data():
    catalog_get(client=CountingClient())
    raw = cache.get(CACHE_KEY)
    assert isinstance(raw, dict)
    assert Catalog.from_cache(json.loads(json.dumps(raw))) == catalog_cached()


def test_the_cache_expires_after_the_configured_seconds(settings):
    settings.DCDN_CATALOG_CACHE_SECONDS = 1
    catalog_get(client=CountingClient())
    time.sleep(1.2)
    assert catalog_cached() is None


def test_invalidate_forces_a_fetch():
    catalog_get(client=CountingClient())
    catalog_invalidate()
    client = CountingClient()
    catalog_get(client=client)
    assert client.calls == 4


def test_concurrent_cold_requests_fetch_once():
    client = CountingClient(delay=0.1)
    results = []

    def worker():
        results.append(catalog_get(client=client))

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.calls == 4
    assert len(results) == 5
    assert all(r == results[0] for r in results)


def test_a_failed_fetch_releases_the_lock():
    with pytest.raises(Unavailable):
        catalog_get(client=CountingClient(fail=True))
    assert cache.get(LOCK_KEY) is None
    assert catalog_get(client=CountingClient()).plans == [PLAN]


def test_an_unreadable_cache_entry_counts_as_cold():
    cache.set(CACHE_KEY, {"plans": "garbage"})
    assert catalog_cached() is None
    client = CountingClient()
    catalog_get(client=client)
    assert client.calls == 4
