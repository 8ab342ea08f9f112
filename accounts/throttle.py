"""Login throttling: failures counted per (username, address) and per address.

Counters live in Django's cache (Redis in production, a file cache locally), so every
web process sees the same counts. A lock is a separate key set for the whole window, so
it holds even where a backend's ``incr`` resets expiry times.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache

# An address is locked after this many times the per-username limit, across usernames.
ADDRESS_LIMIT_FACTOR = 5
_PREFIX = "accounts:login"


# --- Client address ---------------------------------------------------------------------


@lru_cache(maxsize=8)
def _networks(
    entries: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "203.0.113.5:443"
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _is_trusted(address) -> bool:
    if address is None:
        return False
    networks = _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ())))
    return any(address in network for network in networks)


def client_address(request) -> str:
    """The address the request came from.

    ``REMOTE_ADDR``, unless the direct peer is a trusted proxy: then the rightmost
    ``X-Forwarded-For`` entry that is not a trusted proxy. Entries further left are
    written by the client and ignored, so they cannot be spoofed to dodge a lock.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    peer = _parse_ip(remote)
    if not _is_trusted(peer):
        return str(peer) if peer else remote
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _parse_ip(hop)
        if address is None:
            # A proxy we trust wrote garbage: count it against the proxy, not nobody.
            return str(peer)
        if not _is_trusted(address):
            return str(address)
    return str(peer)


def _address_bucket(address: str) -> str:
    """IPv6 clients usually own a whole /64: count it as one address."""
    parsed = _parse_ip(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(parsed.ipv4_mapped)
    return address


# --- Counters and locks ----------------------------------------------------------------


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


def _keys(*, username: str, address: str) -> tuple[str, str]:
    bucket = _address_bucket(address)
    return (
        f"{_PREFIX}:ua:{_digest(username.strip().lower(), bucket)}",
        f"{_PREFIX}:a:{_digest(bucket)}",
    )


def _limits() -> tuple[int, int, int]:
    limit = max(1, int(settings.LOGIN_FAILURE_LIMIT))
    window = max(1, int(settings.LOGIN_FAILURE_WINDOW_SECONDS))
    return limit, limit * ADDRESS_LIMIT_FACTOR, window


def lock_remaining(*, username: str, address: str) -> int:
    """Seconds until this username may try again from this address (0: not locked)."""
    now = time.time()
    locks = cache.get_many([f"{key}:lock" for key in _keys(username=username, address=address)])
    remaining = [until - now for until in locks.values() if isinstance(until, int | float)]
    return max(0, math.ceil(max(remaining, default=0)))


def _count(key: str, *, limit: int, window: int) -> None:
    """Count one failure in the window that started with the first one; lock at limit."""
    now = time.time()
    cache.add(f"{key}:start", now, timeout=window)
    started = cache.get(f"{key}:start", now)
    if cache.add(key, 1, timeout=window):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=window)
            count = 1
        # Keep the counter's expiry at the window's end on every backend.
        cache.touch(key, max(1, math.ceil(started + window - now)))
    if count >= limit:
        cache.set(f"{key}:lock", now + window, timeout=window)


def record_failure(*, username: str, address: str) -> None:
    user_limit, address_limit, window = _limits()
    user_key, address_key = _keys(username=username, address=address)
    _count(user_key, limit=user_limit, window=window)
    _count(address_key, limit=address_limit, window=window)


def record_success(*, username: str, address: str) -> None:
    """A correct password clears this username's counter here (not the address's)."""
    user_key, _ = _keys(username=username, address=address)
    cache.delete_many([user_key, f"{user_key}:start"])
