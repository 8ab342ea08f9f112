"""Earnings pages. Thin: parse input, call one selector or service, render.

Every upstream failure becomes a message on the page (or the token page for a rejected
token) through panel.dcdn_errors_ui; none becomes a 500.
"""

from __future__ import annotations

import csv
import re
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from accounts.reauth import require_recent_reauth
from panel.dcdn.errors import DcdnError
from panel.dcdn_errors_ui import (
    dcdn_error_message,
    dcdn_error_response,
    dcdn_error_retry_seconds,
)

from . import selectors, services
from .charts import daily_chart
from .forms import PayoutForm
from .models import PayoutRequest


def _refresh_asked(request: HttpRequest) -> bool:
    return request.method == "POST" or request.GET.get("refresh") == "1"


def _error_context(error: DcdnError) -> dict:
    return {"error": dcdn_error_message(error), "retry_seconds": dcdn_error_retry_seconds(error)}


@login_required
@require_http_methods(["GET", "POST"])
def summary(request: HttpRequest) -> HttpResponse:
    """Totals, the operator's nodes and the token panel. A POST is the refresh button."""
    context: dict = {}
    try:
        cached = selectors.earnings_summary_for(user=request.user, refresh=_refresh_asked(request))
    except DcdnError as exc:
        response = dcdn_error_response(request, exc)
        if response is not None:
            return response
        return render(request, "earnings/summary.html", _error_context(exc))
    if request.method == "POST":
        return redirect("earnings:summary")
    context["cached"] = cached
    context["summary"] = cached.value
    try:
        token = selectors.token_info_cached(user=request.user)
        context["token"] = token.value
    except DcdnError as exc:
        # The balances stand on their own; only the token panel says it is unavailable.
        context["token_error"] = dcdn_error_message(exc)
    return render(request, "earnings/summary.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def node(request: HttpRequest, node_id: str) -> HttpResponse:
    try:
        cached = selectors.node_earnings_for(
            user=request.user, node_id=node_id, refresh=_refresh_asked(request)
        )
    except DcdnError as exc:
        response = dcdn_error_response(request, exc)
        if response is not None:
            return response
        return render(request, "earnings/node.html", {"node_id": node_id, **_error_context(exc)})
    if request.method == "POST":
        return redirect("earnings:node", node_id=node_id)
    node_earnings = cached.value
    context = {
        "node_id": node_id,
        "cached": cached,
        "node": node_earnings,
        "chart": daily_chart(node_earnings),
        "days": list(reversed(node_earnings.daily)),
        "total_30d": sum((d.amount for d in node_earnings.daily), Decimal(0)),
    }
    return render(request, "earnings/node.html", context)


_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


@login_required
@require_GET
def node_csv(request: HttpRequest, node_id: str) -> HttpResponse:
    try:
        cached = selectors.node_earnings_for(user=request.user, node_id=node_id)
    except DcdnError as exc:
        response = dcdn_error_response(request, exc)
        if response is not None:
            return response
        return render(
            request,
            "earnings/node.html",
            {"node_id": node_id, **_error_context(exc)},
            status=503,
        )
    node_earnings = cached.value
    filename = _SAFE_FILENAME.sub("-", node_earnings.node_id or node_id) or "node"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}-earnings.csv"'
    writer = csv.writer(response)
    writer.writerow(
        [
            "date",
            "vps_dcdn",
            "cdn_dcdn",
            "gpu_dcdn",
            "total_dcdn",
            "uptime_percent",
        ]
    )
    for day in node_earnings.daily:
        writer.writerow(
            [
                day.date.isoformat(),
                format(day.vps, "f"),
                format(day.cdn, "f"),
                format(day.gpu, "f"),
                format(day.amount, "f"),
                format(day.uptime_percent, "f"),
            ]
        )
    return response


@login_required
@require_GET
def home_recent(request: HttpRequest) -> HttpResponse:
    """The home card's "last 7 days" figure, loaded after the page (one read per node
    not yet cached, shared with the node pages)."""
    context: dict = {"recent_days": selectors.RECENT_DAYS}
    try:
        cached = selectors.earnings_summary_for(user=request.user)
        total, _ = selectors.recent_earnings_for(user=request.user, summary=cached.value)
        context.update(recent_total=total, currency=cached.value.currency)
    except DcdnError as exc:
        context["recent_error"] = dcdn_error_message(exc)
    return render(request, "earnings/_home_card.html#recent", context)


# --- payouts -----------------------------------------------------------------------------


def _payout_page(request: HttpRequest, form: PayoutForm, *, status: int = 200) -> HttpResponse:
    context: dict = {"form": form, "minimum": services.MINIMUM_PAYOUT}
    try:
        cached = selectors.earnings_summary_for(user=request.user)
        context.update(cached=cached, summary=cached.value)
    except DcdnError as exc:
        response = dcdn_error_response(request, exc)
        if response is not None:
            return response
        context.update(_error_context(exc))
    context["recent_payouts"] = services.payouts_history(user=request.user)[:5]
    return render(request, "earnings/payout.html", context, status=status)


@never_cache
@login_required
@require_recent_reauth
@require_http_methods(["GET", "POST"])
def payout(request: HttpRequest) -> HttpResponse:
    """The payout form. A valid POST creates a draft and shows its confirmation page;
    nothing is sent to DCDN until that page is confirmed."""
    if request.method == "GET":
        return _payout_page(request, PayoutForm())
    form = PayoutForm(request.POST)
    if not form.is_valid():
        return _payout_page(request, form, status=400)
    try:
        draft = services.payout_prepare(
            user=request.user,
            amount=form.cleaned_data["amount"],
            wallet_address=form.cleaned_data["wallet_address"],
        )
    except services.PayoutInvalid as exc:
        for field, field_errors in exc.errors.items():
            for message in field_errors:
                form.add_error(field if field in form.fields else None, message)
        return _payout_page(request, form, status=400)
    except DcdnError as exc:
        response = dcdn_error_response(request, exc)
        if response is not None:
            return response
        form.add_error(None, dcdn_error_message(exc))
        return _payout_page(request, form, status=503)
    return redirect("earnings:payout_confirm", confirm_token=draft.confirm_token)


def _confirm_page(
    request: HttpRequest, draft: PayoutRequest, *, error: str = "", status: int = 200
) -> HttpResponse:
    context = {
        "draft": draft,
        "error": error,
        "expired": services.payout_draft_is_expired(payout=draft),
        "usd": services.usd_value(amount=draft.amount, price_usd=draft.price_usd),
        "available_after": (draft.available_before - draft.amount)
        if draft.available_before is not None
        else None,
    }
    return render(request, "earnings/payout_confirm.html", context, status=status)


@never_cache
@login_required
@require_recent_reauth
@require_http_methods(["GET", "POST"])
def payout_confirm(request: HttpRequest, confirm_token: str) -> HttpResponse:
    """GET shows what will be sent; POST sends it, once, whatever the number of POSTs."""
    try:
        draft = services.payout_draft_for(user=request.user, confirm_token=confirm_token)
    except PayoutRequest.DoesNotExist:
        raise Http404("No such payout confirmation") from None
    if request.method == "GET":
        if draft.state == PayoutRequest.State.CANCELLED:
            return _confirm_page(
                request,
                draft,
                error="This confirmation was replaced by a newer payout request.",
                status=409,
            )
        if draft.state != PayoutRequest.State.DRAFT:
            return redirect("earnings:payout_detail", pk=draft.pk)
        return _confirm_page(request, draft)

    if request.POST.get("confirm_token") != confirm_token:
        return _confirm_page(
            request, draft, error="The form did not match this confirmation.", status=400
        )
    try:
        outcome = services.payout_confirm_outcome(user=request.user, confirm_token=confirm_token)
    except PayoutRequest.DoesNotExist:
        raise Http404("No such payout confirmation") from None
    except services.PayoutNotConfirmable as exc:
        draft.refresh_from_db()
        return _confirm_page(request, draft, error=str(exc), status=409)
    except services.PayoutNotSent as exc:
        draft.refresh_from_db()
        return _confirm_page(
            request,
            draft,
            error=f"{dcdn_error_message(exc.error)} Nothing was sent; you can confirm again.",
            status=503,
        )
    except DcdnError as exc:
        response = dcdn_error_response(request, exc)
        if response is not None:
            return response
        return _confirm_page(request, draft, error=dcdn_error_message(exc), status=503)

    _announce(request, outcome.payout, first=outcome.sent)
    return redirect("earnings:payout_detail", pk=outcome.payout.pk)


def _announce(request: HttpRequest, payout: PayoutRequest, *, first: bool) -> None:
    amount = services.format_amount(payout.amount)
    state = PayoutRequest.State
    if payout.state in (state.PENDING, state.PAID) and first:
        messages.success(request, f"Payout of {amount} DCDN requested.")
    elif payout.state == state.FAILED and first:
        messages.error(request, f"DCDN refused the payout: {payout.error_message}")
    elif payout.state == state.UNKNOWN and first:
        messages.warning(
            request,
            "DCDN did not answer in time. The panel will check whether the payout was "
            "received; it will not be sent again.",
        )
    elif not first:
        messages.info(request, "This payout was already submitted; it was not sent again.")


@login_required
@require_GET
def payouts(request: HttpRequest) -> HttpResponse:
    """The local payout history; unknown outcomes are reconciled when it is viewed."""
    problem = services.payouts_refresh(user=request.user)
    context = {"payouts": services.payouts_history(user=request.user), "problem": problem}
    return render(request, "earnings/payouts.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def payout_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One request's status. htmx polls the status fragment while it is in transition;
    a POST is the "check now" button for an unknown outcome (never a resend)."""
    try:
        payout_request = services.payout_for_user(user=request.user, pk=pk)
    except PayoutRequest.DoesNotExist:
        raise Http404("No such payout") from None
    problem = None
    if request.method == "POST":
        try:
            services.payout_reconcile(
                user=request.user,
                payout=payout_request,
                min_interval_seconds=selectors.MIN_REFRESH_SECONDS,
            )
        except DcdnError as exc:
            response = dcdn_error_response(request, exc)
            if response is not None:
                return response
            problem = dcdn_error_message(exc)
        if problem is None and not request.htmx:
            return redirect("earnings:payout_detail", pk=pk)
    elif payout_request.state in (PayoutRequest.State.UNKNOWN, PayoutRequest.State.PENDING):
        problem = services.payouts_refresh(user=request.user)
    payout_request.refresh_from_db()
    context = {
        "payout": payout_request,
        "problem": problem,
        "usd": services.usd_value(amount=payout_request.amount, price_usd=payout_request.price_usd),
    }
    template = "earnings/payout_detail.html"
    if request.htmx:
        template += "#status"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response
