"""Typed errors for every way a DCDN call can fail.

HTTP failures are translated here, once; callers catch these classes and never look at
status codes or bodies themselves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any


class DcdnError(Exception):
    """Base class. ``retryable`` says whether the same call may succeed if repeated later."""

    retryable = False
    status: int | None = None
    default_message = "The DCDN API returned an error."

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message or self.default_message
        if status is not None:
            self.status = status
        self.code = code
        # The request field the error names, when it can be told (e.g. "plan" for a 400).
        self.field = field
        super().__init__(self.message)


class Unauthorized(DcdnError):
    status = 401
    default_message = "The DCDN API rejected the token."


class BadRequest(DcdnError):
    status = 400
    default_message = "The DCDN API refused the request as invalid."


class InsufficientCredits(DcdnError):
    status = 402
    default_message = "Not enough credits."


class NotFound(DcdnError):
    status = 404
    default_message = "Not found."


class Conflict(DcdnError):
    status = 409
    default_message = "The request conflicts with the current state."


class RateLimited(DcdnError):
    """429 upstream, or the panel's own budget for this token is spent."""

    status = 429
    retryable = True
    default_message = "DCDN is busy."

    def __init__(self, message: str | None = None, *, retry_after: float = 1.0, **kwargs) -> None:
        self.retry_after = max(0.0, float(retry_after))
        super().__init__(message, **kwargs)


class Unavailable(DcdnError):
    """5xx, a timeout, a refused connection or a malformed answer: transient by assumption."""

    retryable = True
    default_message = "DCDN is not answering properly right now."


class OutcomeUnknown(Unavailable):
    """A non-idempotent request may have reached DCDN but no answer came back.

    Callers must reconcile (look the result up) rather than send the request again.
    """

    default_message = "The request was sent but no answer came back; its outcome is unknown."


class MalformedResponse(Unavailable):
    default_message = "DCDN answered with something the panel could not read."


STATUS_ERRORS: dict[int, type[DcdnError]] = {
    400: BadRequest,
    401: Unauthorized,
    402: InsufficientCredits,
    404: NotFound,
    409: Conflict,
    429: RateLimited,
}


# A 429 without Retry-After: hold off this long before the next attempt.
DEFAULT_RETRY_AFTER = 5.0
# Request fields an error message may name; the first one mentioned wins.
KNOWN_FIELDS = (
    "name",
    "plan",
    "image",
    "region",
    "cpu_type",
    "ssh_keys",
    "redundant",
    "amount",
    "wallet_address",
    "public_key",
)
# Spellings a human message may use for a field ("SSH key", "cpu type", ...).
_FIELD_PATTERNS = {
    "cpu_type": r"cpu[ _-]?type",
    "ssh_keys": r"ssh[ _-]?keys?",
    "wallet_address": r"wallet(?:[ _-]?address)?",
    "public_key": r"public[ _-]?key",
}
_MAX_MESSAGE_CHARS = 300


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def infer_field(message: str, *, fields: Iterable[str] | None = None) -> str | None:
    """The request field a human message names, e.g. "Unknown plan 'x'" -> "plan"."""
    candidates = tuple(fields) if fields is not None else KNOWN_FIELDS
    best: tuple[int, str] | None = None
    for name in candidates:
        pattern = _FIELD_PATTERNS.get(name, re.escape(name))
        match = re.search(rf"(?<![a-z0-9_]){pattern}(?![a-z0-9_])", message, re.IGNORECASE)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), name)
    return best[1] if best else None


def _body_parts(body_text: str) -> tuple[str | None, str | None, str | None, Any]:
    """(message, code, field, parsed json or None) from a JSON or plain-text error body."""
    text = (body_text or "").strip()
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        # A proxy's HTML error page is no message for a user.
        plain = text if text and not text.startswith("<") and data is None else None
        return (plain[:_MAX_MESSAGE_CHARS] if plain else None), None, None, data
    message = next(
        (data[k] for k in ("message", "detail", "error") if isinstance(data.get(k), str)), None
    )
    if message is None and data.get("detail") is not None:
        message = str(data["detail"])
    code = data.get("error") if isinstance(data.get("error"), str) else None
    field = data.get("field") if isinstance(data.get("field"), str) else None
    return (message[:_MAX_MESSAGE_CHARS] if message else None), code, field, data


def error_from_response(
    status: int,
    body_text: str,
    headers: Mapping[str, str] | None = None,
    *,
    fields: Iterable[str] | None = None,
) -> DcdnError:
    """The typed error for a non-2xx answer. ``fields`` narrows field inference to the
    fields the request actually sent."""
    message, code, field, data = _body_parts(body_text)
    if status == 429:
        retry_after = parse_retry_after((headers or {}).get("Retry-After"))
        if retry_after is None and isinstance(data, dict):
            retry_after = _number(data.get("retry_after"))
        if retry_after is None:
            retry_after = DEFAULT_RETRY_AFTER
        return RateLimited(message, retry_after=retry_after, status=status, code=code)
    if field is None and status in (400, 409) and message:
        field = infer_field(message, fields=fields)
    if status >= 500:
        cls: type[DcdnError] = Unavailable
    else:
        cls = STATUS_ERRORS.get(status, DcdnError)
    return cls(message, status=status, code=code, field=field)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None
