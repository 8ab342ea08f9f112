"""Typed errors for every way a DCDN call can fail.

HTTP failures are translated here, once; callers catch these classes and never look at
status codes or bodies themselves.
"""

from __future__ import annotations


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
