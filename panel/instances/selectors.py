"""Reading instances and operations for the pages.

Lists come from the owner's snapshot (see snapshot.py), never one upstream call per
page view; the detail page's usage figures come from ``GET /instances/{id}``, cached per
instance for ``DCDN_SNAPSHOT_SECONDS`` so that many tabs cost one call.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.cache import cache
from django.db.models import QuerySet
from django.http import Http404

from panel.dcdn.catalog import catalog_cached
from panel.dcdn.errors import NotFound
from panel.dcdn.types import Catalog, Instance

from . import snapshot as snapshots
from .models import Operation
from .snapshot import Snapshot, snapshot_get

__all__ = [
    "SORTS",
    "InstanceListing",
    "instance_for_user",
    "instance_from_snapshot",
    "instance_list",
    "operation_for_user",
    "operation_latest_for_instance",
    "operations_active_for_user",
    "operations_for_user",
]

# How long a request that lost the race for a detail fetch waits for the winner's result.
_DETAIL_FOLLOWER_WAIT_SECONDS = 3.0
_DETAIL_FOLLOWER_POLL_SECONDS = 0.05
_DETAIL_LOCK_SECONDS = 30


def _ip_key(instance: Instance):
    try:
        address = ipaddress.ip_address(instance.ip_address)
    except ValueError:
        return None
    return (address.version, int(address))


def _plan_price_key(catalog: Catalog | None):
    """Sort key for the Plan column: the plan's monthly price, then its id.

    The price comes from the cached catalog (no upstream call); a plan it does not list,
    or no catalog at all, falls back to the instance's own monthly cost per node."""

    def key(instance: Instance):
        if not instance.plan:
            return None
        plan = catalog.plan(instance.plan) if catalog is not None else None
        if plan is not None:
            price = plan.price_usd
        else:
            price = instance.monthly_cost_usd / (2 if instance.redundant else 1)
        return (price, instance.plan)

    return key


SORTS = {
    "name": lambda i: i.name.lower(),
    "status": lambda i: i.status,
    "plan": lambda i: i.plan,  # replaced by the plan's price in _sorted
    "region": lambda i: i.region,
    "ip": _ip_key,
    "cost": lambda i: i.monthly_cost_usd,
    "created": lambda i: i.created_at,
}


@dataclass
class InstanceListing:
    rows: list[Instance]
    # Over all the owner's instances, not only the rows the filters keep.
    total_monthly_usd: Decimal
    # Over the rows the filters keep.
    shown_monthly_usd: Decimal
    counts_by_status: dict[str, int]
    regions: list[str]
    statuses: list[str]
    snapshot: Snapshot
    # Whether any of the owner's instances is changing (the page keeps polling).
    any_transitional: bool
    sort: str = "name"
    filters: dict[str, str] = field(default_factory=dict)


def _sorted(instances: list[Instance], sort: str) -> tuple[list[Instance], str]:
    descending = sort.startswith("-")
    column = sort[1:] if descending else sort
    if column not in SORTS:
        column, descending = "name", False
    key = _plan_price_key(catalog_cached()) if column == "plan" else SORTS[column]
    by_name = sorted(instances, key=lambda i: (i.name.lower(), i.id))
    present = [i for i in by_name if key(i) is not None and key(i) != ""]
    missing = [i for i in by_name if key(i) is None or key(i) == ""]
    # Stable sorts: equal keys stay in name order; rows without a value go last.
    present.sort(key=key, reverse=descending)
    return present + missing, ("-" if descending else "") + column


def instance_list(
    *, user, q: str = "", status: str = "", region: str = "", sort: str = "name"
) -> InstanceListing:
    """The owner's instances from the snapshot, filtered and sorted.

    ``q`` matches the name or IP address (case-insensitive substring); ``sort`` is a
    column of ``SORTS``, "-" first for descending; an unknown one sorts by name.
    """
    snap = snapshot_get(user=user)
    instances = list(snap.instances)
    needle = (q or "").strip().lower()
    rows = [
        i
        for i in instances
        if (not needle or needle in i.name.lower() or needle in i.ip_address.lower())
        and (not status or i.status == status)
        and (not region or i.region == region)
    ]
    rows, applied_sort = _sorted(rows, (sort or "name").strip())
    counts = Counter(i.status for i in instances)
    return InstanceListing(
        rows=rows,
        total_monthly_usd=sum((i.monthly_cost_usd for i in instances), Decimal(0)),
        shown_monthly_usd=sum((i.monthly_cost_usd for i in rows), Decimal(0)),
        counts_by_status=dict(sorted(counts.items())),
        regions=sorted({i.region for i in instances if i.region}),
        statuses=sorted(counts),
        snapshot=snap,
        any_transitional=any(i.is_transitional for i in instances),
        sort=applied_sort,
        filters={"q": q or "", "status": status or "", "region": region or ""},
    )


def instance_from_snapshot(*, user, instance_id: str) -> Instance | None:
    """The instance as the snapshot last saw it; never calls DCDN."""
    return snapshots.snapshot_peek(user=user).find(instance_id)


def instance_for_user(*, user, instance_id: str) -> Instance:
    """One instance with its usage. 404 for a missing instance and for another owner's
    (DCDN answers both the same way). Other ``DcdnError``s propagate."""
    instance_id = (instance_id or "").strip()
    if not instance_id:
        raise Http404("No such instance.")
    cached = snapshots.detail_cached(user=user, instance_id=instance_id)
    if cached is None:
        lock = snapshots.detail_lock_key(user=user, instance_id=instance_id)
        if cache.add(lock, 1, timeout=_DETAIL_LOCK_SECONDS):
            try:
                cached = _detail_fetch(user=user, instance_id=instance_id)
            finally:
                cache.delete(lock)
        else:
            cached = _detail_wait(user=user, instance_id=instance_id, lock=lock)
            if cached is None:
                cached = _detail_fetch(user=user, instance_id=instance_id)
    if cached.get("missing"):
        raise Http404("No such instance.")
    return cached["instance"]


def _detail_fetch(*, user, instance_id: str) -> dict:
    client = snapshots.client_for(user, max_wait=0)
    try:
        instance = client.get_instance(instance_id)
    except NotFound:
        snapshots.detail_store(user=user, instance_id=instance_id, instance=None)
        if snapshots.snapshot_peek(user=user).find(instance_id) is not None:
            snapshots.snapshot_remove_instance(user=user, instance_id=instance_id)
        return {"missing": True}
    snapshots.detail_store(user=user, instance_id=instance_id, instance=instance)
    known = snapshots.snapshot_peek(user=user).find(instance_id)
    if known is not None and known.status != instance.status:
        snapshots.snapshot_update_instance(user=user, instance=instance)
    return {"instance": instance}


def _detail_wait(*, user, instance_id: str, lock: str) -> dict | None:
    deadline = time.monotonic() + _DETAIL_FOLLOWER_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(_DETAIL_FOLLOWER_POLL_SECONDS)
        cached = snapshots.detail_cached(user=user, instance_id=instance_id)
        if cached is not None:
            return cached
        if cache.get(lock) is None:
            return snapshots.detail_cached(user=user, instance_id=instance_id)
    return None


# --- operations ------------------------------------------------------------------------------


def operations_for_user(*, user, limit: int | None = None) -> QuerySet[Operation]:
    rows = Operation.objects.filter(owner_key=snapshots.owner_key(user)).order_by(
        "-created_at", "-id"
    )
    return rows[:limit] if limit else rows


def operations_active_for_user(*, user) -> QuerySet[Operation]:
    return Operation.objects.filter(
        owner_key=snapshots.owner_key(user), state__in=Operation.ACTIVE_STATES
    ).order_by("-created_at", "-id")


def operation_for_user(*, user, operation_id) -> Operation:
    """The owner's operation; 404 for a missing one and for anyone else's alike."""
    try:
        pk = int(operation_id)
    except (TypeError, ValueError):
        raise Http404("No such operation.") from None
    operation = Operation.objects.filter(pk=pk, owner_key=snapshots.owner_key(user)).first()
    if operation is None:
        raise Http404("No such operation.")
    return operation


def operation_latest_for_instance(*, user, instance_id: str) -> Operation | None:
    return (
        Operation.objects.filter(owner_key=snapshots.owner_key(user), instance_id=instance_id)
        .order_by("-created_at", "-id")
        .first()
    )
