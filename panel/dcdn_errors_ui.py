"""The one place that turns a ``DcdnError`` into words and responses a user understands.

Views call ``dcdn_error_message`` to show an error inline, or ``dcdn_error_response`` when
the error should take over the response (a rejected token sends the user to the token page).
"""

from __future__ import annotations

import math

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

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


def dcdn_error_message(error: DcdnError) -> str:
    """A sentence for the page; never a stack trace, never the token."""
    if isinstance(error, Unauthorized):
        return f"{error.message} Update your API token to continue."
    if isinstance(error, InsufficientCredits):
        return "Not enough credits on your DCDN account for this. Top up, then try again."
    if isinstance(error, RateLimited):
        seconds = max(1, math.ceil(error.retry_after))
        return f"DCDN is busy, retrying in {seconds} s."
    if isinstance(error, OutcomeUnknown):
        return (
            "DCDN did not answer in time, so the panel cannot tell whether the request "
            "took effect. It will check before doing anything again."
        )
    if isinstance(error, MalformedResponse):
        return "DCDN answered with something the panel could not read. Try again shortly."
    if isinstance(error, Unavailable):
        return "DCDN is not answering properly right now. Try again shortly."
    if isinstance(error, NotFound):
        return "DCDN does not know that item (it may have been destroyed)."
    if isinstance(error, (BadRequest, Conflict)):
        return error.message
    return error.message or "The DCDN API returned an error."


def dcdn_error_retry_seconds(error: DcdnError) -> int | None:
    """Seconds after which a page may retry by itself, for errors worth retrying."""
    if isinstance(error, RateLimited):
        return max(1, math.ceil(error.retry_after))
    if isinstance(error, Unavailable) and not isinstance(error, OutcomeUnknown):
        return 5
    return None


def token_page_redirect(request: HttpRequest) -> HttpResponse:
    """Send the user to the token page; htmx requests get HX-Redirect, not a swapped page."""
    url = reverse("accounts:token")
    if getattr(request, "htmx", False):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def dcdn_error_response(request: HttpRequest, error: DcdnError) -> HttpResponse | None:
    """A response that replaces the page for errors that need one, else None.

    A rejected or missing token takes the user to the token page with an explanation;
    every other error is shown inline by the caller with ``dcdn_error_message``.
    """
    if isinstance(error, Unauthorized):
        messages.warning(request, dcdn_error_message(error))
        return token_page_redirect(request)
    return None
