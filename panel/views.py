"""The overview page: what a customer checks every day, and the way to every page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from accounts.errors import TokenMissing
from panel.dcdn.errors import DcdnError, Unauthorized
from panel.dcdn_errors_ui import (
    dcdn_error_message,
    dcdn_error_retry_seconds,
)
from panel.earnings.selectors import earnings_home_card
from panel.instances import selectors

RECENT_OPERATIONS = 5


def _instances_summary(request: HttpRequest) -> dict:
    """Counts by status and monthly spend, from the snapshot (no call per view)."""
    try:
        listing = selectors.instance_list(user=request.user)
    except DcdnError as error:
        return {"summary_error": dcdn_error_message(error)}
    error = listing.snapshot.error
    if isinstance(error, TokenMissing):
        return {"no_token": True}
    context: dict = {"listing": listing}
    if isinstance(error, DcdnError):
        context["summary_error"] = dcdn_error_message(error)
        context["retry_seconds"] = dcdn_error_retry_seconds(error)
        context["token_rejected"] = isinstance(error, Unauthorized)
    return context


@login_required
@require_GET
@vary_on_headers("HX-Request")
def home(request: HttpRequest) -> HttpResponse:
    context = _instances_summary(request)
    if request.htmx and request.GET.get("part") == "summary":
        return render(request, "panel/home.html#summary", context)
    active = list(selectors.operations_active_for_user(user=request.user))
    context.update(
        active_ops=active,
        inflight_sig=",".join(f"{op.pk}.{op.state}.{op.step}" for op in active),
        recent_ops=list(selectors.operations_for_user(user=request.user, limit=RECENT_OPERATIONS)),
        # Earnings: the earnings app's card (earnings/_home_card.html); None hides it.
        # Never raises, and costs at most one cached upstream call.
        earnings_card=earnings_home_card(user=request.user),
    )
    return render(request, "panel/home.html", context)
