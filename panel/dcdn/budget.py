"""A request budget per DCDN account, shared by every web and worker process.

The provider accepts at most ``DCDN_RATE_LIMIT_PER_MINUTE`` requests per token in any
sliding window of ``DCDN_RATE_WINDOW_SECONDS``. The panel stays under that on its own
side, so users see "retry in N s" from us instead of 429s from upstream. Our window is
``DCDN_BUDGET_MARGIN_SECONDS`` longer than the provider's: we stamp a request when it
leaves and the provider when it arrives, and latency varies.

Backends: Redis when ``DCDN_BUDGET_REDIS_URL`` or ``REDIS_URL`` is set (one atomic Lua
script on a sorted set, clocked by the Redis server so all hosts agree), otherwise one
JSON file per key under ``settings.VAR_DIR / "budget"`` guarded by ``fcntl.flock`` (one
host only).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import math
import os
import random
import re
import time
import uuid
from pathlib import Path
from typing import Protocol

from django.conf import settings

from .errors import RateLimited

logger = logging.getLogger(__name__)

# Contenders that wake together spread out by up to this much.
_WAKE_JITTER_SECONDS = 0.05


class RequestBudget(Protocol):
    def acquire(self, key: str, *, max_wait: float | None = None) -> None: ...

    def penalize(self, key: str, seconds: float) -> None: ...


def _limits() -> tuple[int, float]:
    """(requests allowed, window in seconds including the safety margin), read per call so
    settings overridden in tests apply."""
    limit = int(settings.DCDN_RATE_LIMIT_PER_MINUTE)
    window = float(getattr(settings, "DCDN_RATE_WINDOW_SECONDS", 60.0))
    margin = float(getattr(settings, "DCDN_BUDGET_MARGIN_SECONDS", 1.0))
    return max(1, limit), max(0.001, window + margin)


def _refusal(wait: float) -> RateLimited:
    seconds = max(1, math.ceil(wait))
    return RateLimited(
        f"DCDN request budget for this account is used up; retry in {seconds} s",
        retry_after=wait,
    )


class _BaseBudget:
    """The waiting loop; subclasses implement one atomic try."""

    def _try(self, key: str, *, limit: int, window: float) -> float:
        """Take a slot and return 0, or return the seconds until one frees."""
        raise NotImplementedError

    def acquire(self, key: str, *, max_wait: float | None = None) -> None:
        """Take one request slot for ``key``, waiting up to ``max_wait`` seconds.

        Raises ``RateLimited`` (with ``retry_after``) at once when no slot will free in
        time, rather than sleeping first and failing later.
        """
        if max_wait is None:
            max_wait = float(settings.DCDN_BUDGET_MAX_WAIT)
        deadline = time.monotonic() + max(0.0, max_wait)
        while True:
            limit, window = _limits()
            wait = self._try(key, limit=limit, window=window)
            if wait <= 0:
                return
            remaining = deadline - time.monotonic()
            if wait > remaining:
                raise _refusal(wait)
            time.sleep(min(remaining, wait + random.uniform(0, _WAKE_JITTER_SECONDS)))

    def penalize(self, key: str, seconds: float) -> None:
        """Hold every process off ``key`` for ``seconds`` (upstream said 429)."""
        raise NotImplementedError


# KEYS: window set, penalty key. ARGV: limit, window seconds, member.
# Returns {1} when a slot was taken, else {0, seconds-to-wait as a string} (Lua numbers
# would be truncated to integers in the reply).
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local penalty = tonumber(redis.call('GET', KEYS[2]) or '0')
if penalty > now then
  return {0, tostring(penalty - now)}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
  return {1}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tostring(tonumber(oldest[2]) + window - now)}
"""

# KEYS: penalty key. ARGV: seconds. Only ever extends an existing penalty.
_PENALIZE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local untl = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > current then
  redis.call('SET', KEYS[1], tostring(untl), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""


class RedisBudget(_BaseBudget):
    def __init__(self, *, url: str, prefix: str, fallback: _BaseBudget | None = None) -> None:
        import redis

        self._redis_error = redis.RedisError
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._acquire_script = self._client.register_script(_ACQUIRE_LUA)
        self._penalize_script = self._client.register_script(_PENALIZE_LUA)
        self._prefix = prefix
        self._fallback = fallback
        self._warned = False

    def _keys(self, key: str) -> list[str]:
        base = f"{self._prefix}:{key}"
        # The hash tag keeps both keys on one slot should this ever run on a cluster.
        return [f"{{{base}}}:window", f"{{{base}}}:penalty"]

    def _try(self, key: str, *, limit: int, window: float) -> float:
        try:
            reply = self._acquire_script(
                keys=self._keys(key), args=[limit, repr(window), uuid.uuid4().hex]
            )
        except self._redis_error:
            return self._fallback_try(key, limit=limit, window=window)
        self._warned = False
        return 0.0 if int(reply[0]) == 1 else max(0.001, float(reply[1]))

    def _fallback_try(self, key: str, *, limit: int, window: float) -> float:
        # Redis down: keep counting on this host rather than stop talking to DCDN.
        if not self._warned:
            logger.warning("DCDN request budget: Redis unreachable, using the local file budget")
            self._warned = True
        if self._fallback is None:
            return 0.0
        return self._fallback._try(key, limit=limit, window=window)

    def penalize(self, key: str, seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            self._penalize_script(keys=self._keys(key)[1:], args=[repr(float(seconds))])
        except self._redis_error:
            if self._fallback is not None:
                self._fallback.penalize(key, seconds)


class FileBudget(_BaseBudget):
    """One JSON file per key: {"stamps": [epoch seconds], "penalty_until": epoch}."""

    def __init__(self, *, directory: Path) -> None:
        self._dir = Path(directory)

    def _path(self, key: str) -> Path:
        # Readable and collision-free: a sanitised key plus a short hash of the real one.
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:64]
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return self._dir / f"{safe}-{digest}.json"

    def _locked_update(self, key: str, update) -> float:
        self._dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(key), os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                state = _read_state(handle.read())
                result = update(state, time.time())
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps(state))
                handle.flush()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return result

    def _try(self, key: str, *, limit: int, window: float) -> float:
        def update(state: dict, now: float) -> float:
            if state["penalty_until"] > now:
                return state["penalty_until"] - now
            stamps = [s for s in state["stamps"] if s > now - window]
            state["stamps"] = stamps
            if len(stamps) < limit:
                stamps.append(now)
                return 0.0
            return max(0.001, min(stamps) + window - now)

        return self._locked_update(key, update)

    def penalize(self, key: str, seconds: float) -> None:
        def update(state: dict, now: float) -> float:
            state["penalty_until"] = max(state["penalty_until"], now + seconds)
            return 0.0

        if seconds > 0:
            self._locked_update(key, update)


def _read_state(text: str) -> dict:
    try:
        raw = json.loads(text) if text.strip() else {}
    except ValueError:
        raw = {}  # a torn file from a crash: start afresh rather than block forever
    if not isinstance(raw, dict):
        raw = {}
    stamps = raw.get("stamps")
    return {
        "stamps": [float(s) for s in stamps] if isinstance(stamps, list) else [],
        "penalty_until": float(raw.get("penalty_until") or 0.0),
    }


@functools.lru_cache(maxsize=8)
def _make_budget(redis_url: str, var_dir: str, prefix: str) -> _BaseBudget:
    files = FileBudget(directory=Path(var_dir) / "budget")
    if redis_url:
        return RedisBudget(url=redis_url, prefix=prefix, fallback=files)
    return files


def get_budget() -> RequestBudget:
    """The configured backend, one per process (and per settings, for tests)."""
    return _make_budget(
        getattr(settings, "DCDN_BUDGET_REDIS_URL", "") or settings.REDIS_URL or "",
        str(settings.VAR_DIR),
        getattr(settings, "DCDN_BUDGET_KEY_PREFIX", "dcdn:budget"),
    )
