from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import resolve_url

_REDIRECT_STATUSES = {301, 302, 303, 307, 308}


class HtmxLoginRedirectMiddleware:
    """An htmx request sent to the login page (session expired, logged out elsewhere)
    gets ``HX-Redirect`` to the login page for the page in the address bar, instead of a
    302 whose login form htmx would swap into a table cell.

    Sits last in MIDDLEWARE, so it sees the redirect ``login_required`` produced.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        htmx = getattr(request, "htmx", None)
        if not htmx or response.status_code not in _REDIRECT_STATUSES:
            return response
        login_path = urlsplit(resolve_url(settings.LOGIN_URL)).path
        location = urlsplit(response.get("Location", ""))
        if location.path != login_path:
            return response
        # The fragment URL is no page to come back to; the page the user is on is.
        url = login_path
        current = htmx.current_url_abs_path
        if current:
            url = f"{login_path}?{urlencode({'next': current})}"
        replacement = HttpResponse(status=204)
        replacement["HX-Redirect"] = url
        return replacement
