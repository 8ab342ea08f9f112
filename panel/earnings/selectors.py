"""Earnings reads, cached per owner so that moving between pages costs no API budget.

Every read goes through Django's cache for ``DCDN_EARNINGS_CACHE_SECONDS`` under the
owner's key (``user:<id>`` today, a team later). The cache holds JSON-safe dicts with
amounts as strings, never pickles, so an old entry can never revive a changed class.
Token info is the same for every account and is cached once for everybody.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.http import Http404

from accounts.errors import TokenMissing
from accounts.models import owner_key_for
from accounts.services import dcdn_client_for
from panel.dcdn.client import DcdnClient
from panel.dcdn.errors import DcdnError, MalformedResponse, NotFound
from panel.dcdn.types import EarningsSummary, NodeEarnings, TokenInfo

logger = logging.getLogger(__name__)

T = TypeVar("T")

CACHE_VERSION = "v1"
TOKEN_INFO_KEY = f"earnings:{CACHE_VERSION}:token-info"
# A refresh button cannot re-fetch figures younger than this: one upstream call per
# owner per this many seconds at most, however often it is pressed.
MIN_REFRESH_SECONDS = 5
# A cold read takes a short lock so that two tabs opened together fetch once.
LOCK_SECONDS = 15
_FOLLOWER_WAIT_SECONDS = 5.0
_FOLLOWER_POLL_SECONDS = 0.05
# The home card sums the last week of daily earnings.
RECENT_DAYS = 7


@dataclass(frozen=True)
class Cached(Generic[T]):
    """A value read from DCDN and the moment it was read."""

    value: T
    fetched_at: datetime

    @property
    def age_seconds(self) -> int:
        return max(0, int((datetime.now(UTC) - self.fetched_at).total_seconds()))

    @property
    def refreshable(self) -> bool:
        return self.age_seconds >= MIN_REFRESH_SECONDS


# --- JSON-safe conversion --------------------------------------------------------------


def _s(value: Decimal) -> str:
    return format(value, "f")


def summary_to_raw(summary: EarningsSummary) -> dict[str, Any]:
    """The API's own shape, amounts as strings: ``EarningsSummary.from_api`` reads it back."""
    return {
        "currency": summary.currency,
        "total_earned": _s(summary.total_earned),
        "available": _s(summary.available),
        "pending": _s(summary.pending),
        "paid_out": _s(summary.paid_out),
        "operator_share": _s(summary.operator_share),
        "nodes": [
            {
                "node_id": n.node_id,
                "region": n.region,
                "status": n.status,
                "earned_30d": _s(n.earned_30d),
                "uptime_30d_percent": _s(n.uptime_30d_percent),
            }
            for n in summary.nodes
        ],
    }


def node_to_raw(node: NodeEarnings) -> dict[str, Any]:
    return {
        "node_id": node.node_id,
        "region": node.region,
        "status": node.status,
        "currency": node.currency,
        "total_earned": _s(node.total_earned),
        "daily": [
            {
                "date": d.date.isoformat(),
                "amount": _s(d.amount),
                "uptime_percent": _s(d.uptime_percent),
                "services": {"vps": _s(d.vps), "cdn": _s(d.cdn), "gpu": _s(d.gpu)},
            }
            for d in node.daily
        ],
    }


def token_info_to_raw(info: TokenInfo) -> dict[str, Any]:
    return {
        "symbol": info.symbol,
        "name": info.name,
        "price_usd": _s(info.price_usd),
        "total_supply": _s(info.total_supply),
        "circulating_supply": _s(info.circulating_supply),
        "distribution": {k: _s(v) for k, v in info.distribution.items()},
    }


# --- cache keys ------------------------------------------------------------------------


def _generation_key(owner_key: str) -> str:
    return f"earnings:{CACHE_VERSION}:{owner_key}:generation"


def _owner_prefix(owner_key: str) -> str:
    """Keys of one owner carry a generation number; bumping it forgets them all at once
    (node keys cannot be listed), e.g. when the owner's token changes."""
    generation = cache.get(_generation_key(owner_key)) or 0
    return f"earnings:{CACHE_VERSION}:{owner_key}:{generation}"


def _summary_key(owner_key: str) -> str:
    return f"{_owner_prefix(owner_key)}:summary"


def _node_key(owner_key: str, node_id: str) -> str:
    # Node ids come from URLs: hash them so any string makes a valid cache key.
    digest = hashlib.sha256(node_id.encode()).hexdigest()[:32]
    return f"{_owner_prefix(owner_key)}:node:{digest}"


def earnings_cache_forget(*, owner_key: str) -> None:
    """Drop everything cached for this owner (their token changed or was removed)."""
    key = _generation_key(owner_key)
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=None)


# --- the read-through cache ------------------------------------------------------------


def _read(key: str, parse: Callable[[dict], T]) -> Cached[T] | None:
    entry = cache.get(key)
    if not isinstance(entry, dict) or not isinstance(entry.get("raw"), dict):
        return None
    try:
        fetched_at = datetime.fromisoformat(entry["fetched_at"])
        return Cached(value=parse(entry["raw"]), fetched_at=fetched_at)
    except (KeyError, TypeError, ValueError, MalformedResponse):
        return None  # written by an incompatible version: treat as cold


def _store(key: str, raw: dict, *, timeout: int) -> datetime:
    fetched_at = datetime.now(UTC)
    cache.set(key, {"raw": raw, "fetched_at": fetched_at.isoformat()}, timeout=timeout)
    return fetched_at


def _read_through(
    *,
    key: str,
    fetch: Callable[[], T],
    to_raw: Callable[[T], dict],
    parse: Callable[[dict], T],
    force: bool,
    timeout: int,
    refresh: bool = False,
) -> Cached[T]:
    """The cached value, or one upstream fetch stored for ``timeout`` seconds.

    ``force`` always fetches; ``refresh`` (a user's refresh button) fetches unless the
    cached value is younger than MIN_REFRESH_SECONDS. Concurrent cold readers of the same
    key wait briefly for the first one's result instead of each spending a request.
    """
    if not force:
        hit = _read(key, parse)
        if hit is not None and not (refresh and hit.refreshable):
            return hit
        force = hit is not None
    lock = f"{key}:lock"
    if force or cache.add(lock, 1, timeout=LOCK_SECONDS):
        try:
            value = fetch()
            fetched_at = _store(key, to_raw(value), timeout=timeout)
            return Cached(value=value, fetched_at=fetched_at)
        finally:
            if not force:
                cache.delete(lock)
    deadline = time.monotonic() + _FOLLOWER_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(_FOLLOWER_POLL_SECONDS)
        hit = _read(key, parse)
        if hit is not None:
            return hit
        if cache.get(lock) is None:
            break  # the first reader failed: try ourselves
    value = fetch()
    return Cached(value=value, fetched_at=_store(key, to_raw(value), timeout=timeout))


def _timeout() -> int:
    return max(1, int(settings.DCDN_EARNINGS_CACHE_SECONDS))


# --- public selectors ------------------------------------------------------------------


def earnings_summary_for(
    *, user, force: bool = False, refresh: bool = False, client: DcdnClient | None = None
) -> Cached[EarningsSummary]:
    """The owner's earnings summary; ``force`` skips the cache (and refills it),
    ``refresh`` does so only for figures at least MIN_REFRESH_SECONDS old.

    Raises DcdnError (TokenMissing when no token is saved).
    """
    owner_key = owner_key_for(user)
    return _read_through(
        key=_summary_key(owner_key),
        fetch=lambda: (client or dcdn_client_for(user)).earnings_summary(),
        to_raw=summary_to_raw,
        parse=EarningsSummary.from_api,
        force=force,
        refresh=refresh,
        timeout=_timeout(),
    )


def earnings_summary_forget(*, owner_key: str) -> None:
    """Drop the cached summary (a payout moved money between its figures)."""
    cache.delete(_summary_key(owner_key))


def earnings_summary_cached(*, user) -> Cached[EarningsSummary] | None:
    """The cached summary or None; never calls DCDN."""
    return _read(_summary_key(owner_key_for(user)), EarningsSummary.from_api)


def node_earnings_for(
    *, user, node_id: str, force: bool = False, refresh: bool = False
) -> Cached[NodeEarnings]:
    """One node's 30-day history. Http404 for a node that is not the owner's (DCDN answers
    404 for another operator's node exactly as for a missing one)."""
    owner_key = owner_key_for(user)
    try:
        return _read_through(
            key=_node_key(owner_key, node_id),
            fetch=lambda: dcdn_client_for(user).node_earnings(node_id),
            to_raw=node_to_raw,
            parse=NodeEarnings.from_api,
            force=force,
            refresh=refresh,
            timeout=_timeout(),
        )
    except NotFound:
        raise Http404("No such node") from None


def token_info_cached(*, user=None, force: bool = False) -> Cached[TokenInfo]:
    """Token price, supply and distribution: the same for everybody, so cached once for
    all users. A cold read is made with ``user``'s token (the API needs one)."""
    return _read_through(
        key=TOKEN_INFO_KEY,
        fetch=lambda: dcdn_client_for(user).token_info(),
        to_raw=token_info_to_raw,
        parse=TokenInfo.from_api,
        force=force,
        timeout=_timeout(),
    )


def recent_total(*, node: NodeEarnings, days: int = RECENT_DAYS) -> Decimal:
    """What the node earned on its last ``days`` days of history."""
    return sum((d.amount for d in node.daily[-days:]), Decimal(0))


def recent_earnings_cached(*, user, summary: EarningsSummary) -> tuple[Decimal, datetime] | None:
    """The last 7 days summed over the owner's nodes, from node data already cached
    (no upstream call); None unless every node's history is in the cache."""
    owner_key = owner_key_for(user)
    total = Decimal(0)
    oldest: datetime | None = None
    for node in summary.nodes:
        hit = _read(_node_key(owner_key, node.node_id), NodeEarnings.from_api)
        if hit is None:
            return None
        total += recent_total(node=hit.value)
        oldest = hit.fetched_at if oldest is None else min(oldest, hit.fetched_at)
    return total, oldest or datetime.now(UTC)


def recent_earnings_for(*, user, summary: EarningsSummary) -> tuple[Decimal, datetime]:
    """The last 7 days summed over the owner's nodes: one node read per node not yet
    cached (shared with the node pages, so opening a node afterwards costs nothing)."""
    total = Decimal(0)
    oldest: datetime | None = None
    for node in summary.nodes:
        try:
            hit = node_earnings_for(user=user, node_id=node.node_id)
        except Http404:
            continue  # the node left the account since the summary was read
        total += recent_total(node=hit.value)
        oldest = hit.fetched_at if oldest is None else min(oldest, hit.fetched_at)
    return total, oldest or datetime.now(UTC)


def earnings_home_card(*, user) -> dict | None:
    """Context for ``earnings/_home_card.html``, or None for a user without nodes or
    without a token, or when DCDN cannot be asked. Never raises: the home page renders.

    Costs at most one upstream call (the summary, shared with the summary page) when
    cold, and none for a while after DCDN failed for this owner. The week's total comes
    from node data already cached; when it is not, the card loads it afterwards as a
    small fragment (``earnings:home_recent``) so the home page never waits for one call
    per node.
    """
    if not getattr(user, "is_authenticated", False):
        return None
    owner_key = owner_key_for(user)
    off_key = f"{_owner_prefix(owner_key)}:card-off"
    if cache.get(off_key):
        return None  # DCDN failed for this owner moments ago: do not ask on every visit
    try:
        cached = earnings_summary_for(user=user)
    except TokenMissing:
        return None  # no token, no call was made
    except DcdnError as exc:
        logger.info("Earnings card skipped for %s: %s", owner_key, type(exc).__name__)
        pause = getattr(exc, "retry_after", None) or _timeout()
        cache.set(off_key, 1, timeout=max(1, min(int(pause), _timeout())))
        return None
    except Exception:
        logger.exception("Earnings card failed for %s", owner_key)
        return None
    summary = cached.value
    if not summary.nodes:
        return None
    try:
        recent = recent_earnings_cached(user=user, summary=summary)
    except Exception:
        logger.exception("Earnings card: reading cached node data failed")
        recent = None
    return {
        "currency": summary.currency,
        "available": summary.available,
        "node_count": len(summary.nodes),
        "recent_days": RECENT_DAYS,
        "recent_total": recent[0] if recent else None,
        "age_seconds": cached.age_seconds,
    }
