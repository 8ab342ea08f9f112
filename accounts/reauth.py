"""Recent password re-entry for sensitive changes (token replace/remove, payouts).

A successful re-entry stores a timestamp in the session; it authorises sensitive
changes for ``settings.REAUTH_SECONDS``. Login rotates the session, so a new login
starts without one.
"""

from __future__ import annotations

import time
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

SESSION_KEY = "accounts_reauth_at"


def reauth_mark(request) -> None:
    request.session[SESSION_KEY] = int(time.time())


def reauth_is_fresh(request) -> bool:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return False
    stamp = request.session.get(SESSION_KEY)
    if not isinstance(stamp, int):
        return False
    age = time.time() - stamp
    return 0 <= age < settings.REAUTH_SECONDS


def reauth_seconds_left(request) -> int:
    if not reauth_is_fresh(request):
        return 0
    return max(0, int(request.session[SESSION_KEY] + settings.REAUTH_SECONDS - time.time()))


def reauth_url(request, *, next_url: str | None = None) -> str:
    """The re-auth page, coming back to ``next_url`` (default: the page the user is on)."""
    if next_url is None:
        htmx = getattr(request, "htmx", None)
        current = htmx.current_url_abs_path if htmx else None
        next_url = current or request.get_full_path()
    return f"{reverse('accounts:reauth')}?{urlencode({'next': next_url})}"


def reauth_redirect(request, *, next_url: str | None = None) -> HttpResponse:
    """A redirect to the re-auth page; htmx requests get HX-Redirect instead of a swap."""
    url = reauth_url(request, next_url=next_url)
    if getattr(request, "htmx", False):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def require_recent_reauth(view):
    """View decorator: go through the re-auth page unless the password was re-entered
    within REAUTH_SECONDS. Put it under ``login_required``.

    After re-auth the user comes back with a GET to the page they were on (for htmx, the
    page in the address bar), so a POST target should also render its form on GET.
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not reauth_is_fresh(request):
            return reauth_redirect(request)
        return view(request, *args, **kwargs)

    return wrapper
