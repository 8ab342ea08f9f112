"""A per-owner snapshot of the instances list, kept in the shared cache.

Every list page, htmx poll and operation task reads this snapshot instead of calling
DCDN. Whoever reads it after it is ``DCDN_SNAPSHOT_SECONDS`` old refreshes it, and only
one of them: a lock in the cache makes the refresh single-flight across processes, and
the refresh interval is measured from the last attempt, so however many tabs,
teammates and workers poll, one owner's instances cost at most one upstream
``GET /instances`` per interval — a failing upstream included.

The cache holds JSON-safe dicts (``Instance.to_cache()``), never pickles of classes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from accounts.models import owner_key_for
from panel.dcdn.errors import (
    BadRequest,
    Conflict,
    DcdnError,
    InsufficientCredits,
    MalformedResponse,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from panel.dcdn.types import Instance

logger = logging.getLogger(__name__)

KEY_VERSION = "v1"
# Long enough for a refresh with the client's own timeouts; a crashed holder frees it.
REFRESH_LOCK_SECONDS = 30
# A snapshot nobody read for this long is dropped from the cache.
SNAPSHOT_TTL_SECONDS = 24 * 3600
# Local changes (an action's answer) younger than a refresh's start win over it.
_LOCAL_UPDATE_TTL_SECONDS = 120

_ERROR_CLASSES: dict[str, type[DcdnError]] = {
    cls.__name__: cls
    for cls in (
        DcdnError,
        Unauthorized,
        BadRequest,
        InsufficientCredits,
        NotFound,
        Conflict,
        RateLimited,
        Unavailable,
        OutcomeUnknown,
        MalformedResponse,
    )
}


@dataclass
class Snapshot:
    instances: list[Instance] = field(default_factory=list)
    # When the instances were last read from DCDN successfully; None if never.
    fetched_at: datetime | None = None
    # The last refresh's failure, if it failed; the instances are then the older ones.
    error: DcdnError | None = None

    def find(self, instance_id: str) -> Instance | None:
        return next((i for i in self.instances if i.id == instance_id), None)

    def find_by_name(self, name: str) -> Instance | None:
        return next((i for i in self.instances if i.name == name), None)

    @property
    def age_seconds(self) -> float | None:
        if self.fetched_at is None:
            return None
        return max(0.0, (timezone.now() - self.fetched_at).total_seconds())


def client_for(user, *, max_wait: float | None = None):
    """The DCDN client for ``user``'s account; the one seam tests patch."""
    from accounts.services import dcdn_client_for

    return dcdn_client_for(user, max_wait=max_wait)


def owner_key(user) -> str:
    return owner_key_for(user)


def _key(owner: str) -> str:
    return f"dcdn:snapshot:{KEY_VERSION}:{owner}"


def _lock_key(owner: str) -> str:
    return f"dcdn:snapshot:{KEY_VERSION}:{owner}:lock"


def _interval() -> float:
    return max(0.1, float(settings.DCDN_SNAPSHOT_SECONDS))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse(value) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def _error_to_cache(error: DcdnError | None) -> dict | None:
    if error is None:
        return None
    return {
        "class": type(error).__name__,
        "message": error.message,
        "status": error.status,
        "code": error.code,
        "retry_after": getattr(error, "retry_after", None),
    }


def _error_from_cache(raw) -> DcdnError | None:
    if not isinstance(raw, dict):
        return None
    cls = _ERROR_CLASSES.get(raw.get("class"), DcdnError)
    kwargs = {"status": raw.get("status"), "code": raw.get("code")}
    if cls is RateLimited:
        kwargs["retry_after"] = raw.get("retry_after") or 1.0
    try:
        return cls(raw.get("message"), **kwargs)
    except TypeError:
        return DcdnError(raw.get("message"))


def _read_raw(owner: str) -> dict:
    raw = cache.get(_key(owner))
    return raw if isinstance(raw, dict) else {}


def _write_raw(owner: str, raw: dict) -> None:
    cache.set(_key(owner), raw, timeout=SNAPSHOT_TTL_SECONDS)


def _from_raw(raw: dict) -> Snapshot:
    instances = []
    for item in raw.get("instances") or []:
        try:
            instances.append(Instance.from_cache(item))
        except (DcdnError, TypeError, ValueError):
            continue  # written by an incompatible version: skip the entry
    return Snapshot(
        instances=instances,
        fetched_at=_parse(raw.get("fetched_at")),
        error=_error_from_cache(raw.get("error")),
    )


def _due(raw: dict, *, max_age: float, now: datetime) -> bool:
    """Whether a refresh may start now: old enough, not held off by a refusal."""
    if not raw:
        return True
    hold_until = _parse(raw.get("hold_until"))
    if hold_until and now < hold_until:
        return False
    # Measured from the last attempt, so a failing upstream is not asked more often.
    last = _parse(raw.get("attempted_at")) or _parse(raw.get("fetched_at"))
    if last is None:
        return True
    age = (now - last).total_seconds()
    if raw.get("stale"):
        return age >= _interval()
    return age >= max_age


def snapshot_get(*, user, refresh_if_older_than: float | None = None) -> Snapshot:
    """The owner's snapshot, refreshed first if it is due and nobody else is refreshing.

    ``refresh_if_older_than`` lets a caller accept an older snapshot; a value below
    ``DCDN_SNAPSHOT_SECONDS`` is raised to it, so no caller can exceed one upstream
    ``GET /instances`` per interval. Never raises a ``DcdnError``: a failed refresh
    keeps the previous instances and reports the failure in ``error``.
    """
    owner = owner_key(user)
    max_age = max(_interval(), float(refresh_if_older_than or 0.0))
    raw = _read_raw(owner)
    if not _due(raw, max_age=max_age, now=timezone.now()):
        return _from_raw(raw)
    if not cache.add(_lock_key(owner), 1, timeout=REFRESH_LOCK_SECONDS):
        return _from_raw(raw)  # someone else is refreshing: the current one will do
    try:
        # Re-check under the lock: a refresh may have finished since our first read.
        raw = _read_raw(owner)
        if not _due(raw, max_age=max_age, now=timezone.now()):
            return _from_raw(raw)
        return _refresh(user=user, owner=owner)
    finally:
        cache.delete(_lock_key(owner))


def _refresh(*, user, owner: str) -> Snapshot:
    started = timezone.now()
    try:
        client = client_for(user, max_wait=0)
    except Unauthorized as exc:
        # No usable token: nothing was asked upstream, so nothing to hold off.
        snapshot = _from_raw(_read_raw(owner))
        snapshot.error = exc
        return snapshot
    # Stamp the attempt before the call, so a crash mid-call still counts as one.
    raw = _read_raw(owner)
    raw["attempted_at"] = _iso(started)
    _write_raw(owner, raw)
    try:
        instances = client.list_instances()
    except DcdnError as exc:
        logger.info("Instances snapshot refresh for %s failed: %s", owner, type(exc).__name__)
        raw = _read_raw(owner)
        raw["attempted_at"] = _iso(started)
        raw["error"] = _error_to_cache(exc)
        raw.pop("stale", None)
        if isinstance(exc, RateLimited):
            raw["hold_until"] = _iso(timezone.now() + timedelta(seconds=exc.retry_after))
        _write_raw(owner, raw)
        return _from_raw(raw)
    raw = _read_raw(owner)
    fetched = {i.id: i.to_cache() for i in instances}
    # An action answered after this fetch started knows better than the fetch.
    local = {
        ident: entry
        for ident, entry in (raw.get("local") or {}).items()
        if (_parse(entry.get("at")) or started) > started
    }
    for ident, entry in local.items():
        if entry.get("instance") is None:
            fetched.pop(ident, None)
        else:
            fetched[ident] = entry["instance"]
    new_raw = {
        "instances": list(fetched.values()),
        "fetched_at": _iso(started),
        "attempted_at": _iso(started),
        "error": None,
        "local": local,
    }
    _write_raw(owner, new_raw)
    return _from_raw(new_raw)


def _apply_local(*, user, instance_id: str, instance: Instance | None) -> None:
    owner = owner_key(user)
    raw = _read_raw(owner)
    items = [i for i in raw.get("instances") or [] if i.get("id") != instance_id]
    if instance is not None:
        # Keep the list's shape: detail-only usage does not belong in the snapshot.
        entry = instance.to_cache()
        entry["usage"] = None
        items.append(entry)
    now = timezone.now()
    local = {
        ident: entry
        for ident, entry in (raw.get("local") or {}).items()
        if (now - (_parse(entry.get("at")) or now)).total_seconds() < _LOCAL_UPDATE_TTL_SECONDS
    }
    local[instance_id] = {
        "at": _iso(now),
        "instance": items[-1] if instance is not None else None,
    }
    raw["instances"] = items
    raw["local"] = local
    _write_raw(owner, raw)


def snapshot_update_instance(*, user, instance: Instance) -> None:
    """Put what DCDN just answered for one instance into the snapshot (no upstream call)."""
    _apply_local(user=user, instance_id=instance.id, instance=instance)


def snapshot_remove_instance(*, user, instance_id: str) -> None:
    """Drop an instance DCDN reported gone (no upstream call)."""
    _apply_local(user=user, instance_id=instance_id, instance=None)


def snapshot_mark_stale(*, user) -> None:
    """Refresh at the next read once the interval allows, whatever the reader accepts."""
    owner = owner_key(user)
    raw = _read_raw(owner)
    if raw:
        raw["stale"] = True
        _write_raw(owner, raw)


def snapshot_clear(*, owner: str) -> None:
    """Forget an owner's snapshot (their token changed: it may be another account)."""
    cache.delete(_key(owner))


def snapshot_wait_seconds(*, user) -> float:
    """Seconds until the owner's snapshot may be refreshed again (0 if it may now)."""
    owner = owner_key(user)
    raw = _read_raw(owner)
    now = timezone.now()
    waits = [0.0]
    hold_until = _parse(raw.get("hold_until"))
    if hold_until:
        waits.append((hold_until - now).total_seconds())
    last = _parse(raw.get("attempted_at")) or _parse(raw.get("fetched_at"))
    if last:
        waits.append(_interval() - (now - last).total_seconds())
    return max(waits)


def on_credential_changed(sender=None, *, owner_key: str, **kwargs) -> None:
    """Receiver for ``accounts.signals.credential_changed``: another token may mean
    another account, so its instances must be read afresh."""
    snapshot_clear(owner=owner_key)


def snapshot_peek(*, user) -> Snapshot:
    """The owner's snapshot as it is, without ever calling DCDN."""
    return _from_raw(_read_raw(owner_key(user)))


# --- one instance's detail (with usage), cached briefly per owner -------------------------


def _detail_key(owner: str, instance_id: str) -> str:
    # The id comes from a URL: keep the cache key printable and bounded.
    safe = quote(instance_id, safe="")[:200]
    return f"dcdn:instance:{KEY_VERSION}:{owner}:{safe}"


def detail_lock_key(*, user, instance_id: str) -> str:
    return _detail_key(owner_key(user), instance_id) + ":lock"


def detail_cached(*, user, instance_id: str) -> dict | None:
    """{"instance": Instance} or {"missing": True} from the cache, or None."""
    raw = cache.get(_detail_key(owner_key(user), instance_id))
    if not isinstance(raw, dict):
        return None
    if raw.get("missing"):
        return {"missing": True}
    try:
        return {"instance": Instance.from_cache(raw["instance"])}
    except (KeyError, DcdnError, TypeError, ValueError):
        return None


def detail_store(*, user, instance_id: str, instance: Instance | None) -> None:
    raw = {"missing": True} if instance is None else {"instance": instance.to_cache()}
    timeout = max(1, math.ceil(_interval()))
    cache.set(_detail_key(owner_key(user), instance_id), raw, timeout=timeout)


def detail_forget(*, user, instance_id: str) -> None:
    cache.delete(_detail_key(owner_key(user), instance_id))
