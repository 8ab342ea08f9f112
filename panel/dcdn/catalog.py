"""The DCDN catalog (plans, images, regions, templates), cached once for all users.

The catalog is the same for every account, so one fetch with anyone's token serves
everybody for ``DCDN_CATALOG_CACHE_SECONDS``. The cache holds JSON-safe dicts, so a
change to the dataclasses never meets an old pickle.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

from .client import DcdnClient
from .errors import MalformedResponse
from .types import Catalog

CACHE_KEY = "dcdn:catalog:v1"
LOCK_KEY = "dcdn:catalog:lock"
# Longer than a fetch of four GETs normally takes; a crashed holder frees it by expiry.
LOCK_SECONDS = 30
# How long a request that lost the race waits for the winner's result.
_FOLLOWER_WAIT_SECONDS = 10.0
_FOLLOWER_POLL_SECONDS = 0.1


def catalog_cached() -> Catalog | None:
    """The cached catalog, or None; never calls DCDN."""
    raw = cache.get(CACHE_KEY)
    if not isinstance(raw, dict):
        return None
    try:
        return Catalog.from_cache(raw)
    except MalformedResponse:
        return None  # written by an incompatible version: treat as cold


def catalog_invalidate() -> None:
    cache.delete(CACHE_KEY)


def catalog_get(*, client: DcdnClient) -> Catalog:
    """The catalog from the shared cache, fetched with ``client`` when cold.

    Concurrent cold callers do not all fetch: one takes a short lock and fetches, the
    others wait for its result (and fetch themselves only if it never comes).
    """
    catalog = catalog_cached()
    if catalog is not None:
        return catalog
    if cache.add(LOCK_KEY, 1, timeout=LOCK_SECONDS):
        try:
            return _fetch_and_store(client=client)
        finally:
            cache.delete(LOCK_KEY)
    catalog = _wait_for_other_fetch()
    return catalog if catalog is not None else _fetch_and_store(client=client)


def _wait_for_other_fetch() -> Catalog | None:
    deadline = time.monotonic() + _FOLLOWER_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(_FOLLOWER_POLL_SECONDS)
        catalog = catalog_cached()
        if catalog is not None:
            return catalog
        if cache.get(LOCK_KEY) is None:
            return None  # the fetcher gave up (an error): fetch ourselves
    return None


def _fetch_and_store(*, client: DcdnClient) -> Catalog:
    catalog = Catalog(
        plans=client.list_plans(),
        images=client.list_images(),
        regions=client.list_regions(),
        templates=client.list_templates(),
    )
    cache.set(CACHE_KEY, catalog.to_cache(), timeout=int(settings.DCDN_CATALOG_CACHE_SECONDS))
    return catalog
