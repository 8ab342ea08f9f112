"""Payouts: prepare (validate, draft), confirm (claim once, send once), reconcile.

The guarantee is at most one upstream payout per confirmed form. It rests on the
database, not on the browser: confirming claims the draft with one conditional UPDATE
(``state='draft'`` → ``'sending'``); only the request that changed the row sends, and
every other POST of the same confirmation (double click, replay, a second tab) gets the
existing request back without calling DCDN. A request that may have reached DCDN without
an answer becomes "unknown" and is settled by reading the summary, never by sending again.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.models import owner_key_for
from accounts.services import dcdn_client_for
from panel.dcdn.client import DcdnClient
from panel.dcdn.errors import (
    BadRequest,
    Conflict,
    DcdnError,
    InsufficientCredits,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from panel.dcdn.types import EarningsSummary

from .models import PayoutRequest
from .selectors import earnings_summary_for, earnings_summary_forget, token_info_cached

logger = logging.getLogger(__name__)

State = PayoutRequest.State

MINIMUM_PAYOUT = Decimal(10)
MAX_DECIMAL_PLACES = 8
AMOUNT_QUANTUM = Decimal(1).scaleb(-MAX_DECIMAL_PLACES)
# Whole digits a DecimalField(max_digits=28, decimal_places=8) can hold.
MAX_WHOLE_DIGITS = 20
# The same rule DCDN applies: an EVM address, or a base58 address of 32-44 characters.
EVM_WALLET = re.compile(r"0x[0-9a-fA-F]{40}")
BASE58_WALLET = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")
AMOUNT_PATTERN = re.compile(r"(\d+(\.\d*)?|\.\d+)")

WALLET_HELP = "0x followed by 40 hex digits, or a base58 address of 32 to 44 characters."
MESSAGE_REPLACED = "This confirmation was replaced by a newer payout request and was not sent."
MESSAGE_NOT_RECEIVED = (
    "DCDN did not receive this payout request; nothing was paid. You may request it again."
)


def draft_ttl() -> timedelta:
    """How long a confirmation page stays valid (the balance it showed may change)."""
    return timedelta(seconds=int(getattr(settings, "EARNINGS_PAYOUT_CONFIRM_SECONDS", 900)))


def reconcile_grace() -> timedelta:
    """How long after sending a request may still arrive at DCDN. Before that a summary
    without the payout proves nothing, so an unknown payout stays unknown."""
    default = 2 * (float(settings.DCDN_CONNECT_TIMEOUT) + float(settings.DCDN_READ_TIMEOUT)) + 30
    return timedelta(
        seconds=float(getattr(settings, "EARNINGS_PAYOUT_RECONCILE_GRACE_SECONDS", default))
    )


def sending_stale_after() -> timedelta:
    """A request still "sending" after this long lost its process (crash, restart)."""
    timeouts = float(settings.DCDN_CONNECT_TIMEOUT) + float(settings.DCDN_READ_TIMEOUT)
    return timedelta(seconds=timeouts + float(settings.DCDN_BUDGET_MAX_WAIT) + 30)


@dataclass
class PayoutInvalid(Exception):
    """The form's input cannot be sent; ``errors`` maps a field to its messages."""

    errors: dict[str, list[str]] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(m for msgs in self.errors.values() for m in msgs)


class PayoutNotConfirmable(Exception):
    """The confirmation cannot be used (expired, replaced, or another payout in flight)."""


class PayoutNotSent(Exception):
    """DCDN certainly did not take the request (busy, or no connection was made); the
    draft is back to awaiting confirmation and may be confirmed again."""

    def __init__(self, error: DcdnError) -> None:
        self.error = error
        super().__init__(error.message)


# --- validation --------------------------------------------------------------------------


def _decimal_places(value: Decimal) -> int:
    """Places after the point, not counting trailing zeros ("10.50" has one)."""
    normalized = value.normalize()
    exponent = normalized.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def payout_amount_clean(*, amount: str | Decimal) -> Decimal:
    """The amount as an exact Decimal with 8 places, or PayoutInvalid (field "amount").

    Checks only what needs no upstream call; the available balance is checked later.
    """
    if isinstance(amount, Decimal):
        value = amount
    else:
        text = (amount or "").strip()
        if not text:
            raise PayoutInvalid({"amount": ["Enter an amount."]})
        if not AMOUNT_PATTERN.fullmatch(text) or len(text) > 40:
            raise PayoutInvalid({"amount": ["Enter an amount as a number, such as 25 or 12.5."]})
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise PayoutInvalid(
                {"amount": ["Enter an amount as a number, such as 25 or 12.5."]}
            ) from None
    if not value.is_finite() or value <= 0:
        raise PayoutInvalid({"amount": ["The amount must be greater than zero."]})
    if _decimal_places(value) > MAX_DECIMAL_PLACES:
        raise PayoutInvalid({"amount": ["The amount may have at most 8 decimal places."]})
    if value < MINIMUM_PAYOUT:
        raise PayoutInvalid({"amount": [f"The minimum payout is {MINIMUM_PAYOUT} DCDN."]})
    if value.adjusted() >= MAX_WHOLE_DIGITS:
        raise PayoutInvalid({"amount": ["That amount is too large."]})
    return value.quantize(AMOUNT_QUANTUM)


def wallet_address_clean(*, wallet_address: str) -> str:
    wallet = (wallet_address or "").strip()
    if not wallet:
        raise PayoutInvalid({"wallet_address": ["Enter the wallet address to pay to."]})
    if not (EVM_WALLET.fullmatch(wallet) or BASE58_WALLET.fullmatch(wallet)):
        raise PayoutInvalid(
            {"wallet_address": [f"This is not a valid wallet address: expected {WALLET_HELP}"]}
        )
    return wallet


# --- prepare -----------------------------------------------------------------------------


def payout_prepare(*, user, amount: str | Decimal, wallet_address: str) -> PayoutRequest:
    """Validate the request and create a draft for the confirmation page.

    Nothing is sent. The format checks need no upstream call; the balance check reads a
    fresh summary (the cached one may be a minute old). Raises PayoutInvalid, or
    DcdnError when the summary cannot be read.
    """
    errors: dict[str, list[str]] = {}
    cleaned_amount: Decimal | None = None
    cleaned_wallet = ""
    try:
        cleaned_amount = payout_amount_clean(amount=amount)
    except PayoutInvalid as exc:
        errors.update(exc.errors)
    try:
        cleaned_wallet = wallet_address_clean(wallet_address=wallet_address)
    except PayoutInvalid as exc:
        errors.update(exc.errors)
    if errors or cleaned_amount is None:
        raise PayoutInvalid(errors)

    summary = earnings_summary_for(user=user, force=True).value
    if cleaned_amount > summary.available:
        raise PayoutInvalid(
            {
                "amount": [
                    f"The amount is more than your available balance of "
                    f"{format_amount(summary.available)} {summary.currency}."
                ]
            }
        )
    price = _token_price(user=user)
    with transaction.atomic():
        # One confirmation page per owner at a time: an older one (another tab, the back
        # button) can no longer send.
        _cancel_drafts(user=user)
        return PayoutRequest.objects.create(
            owner=user,
            owner_key=owner_key_for(user),
            amount=cleaned_amount,
            wallet_address=cleaned_wallet,
            state=State.DRAFT,
            available_before=summary.available,
            pending_before=summary.pending,
            paid_out_before=summary.paid_out,
            price_usd=price,
        )


def _token_price(*, user) -> Decimal | None:
    try:
        return token_info_cached(user=user).value.price_usd
    except DcdnError:
        return None  # the USD value is a courtesy; the payout does not depend on it


def _cancel_drafts(*, user, keep_pk: int | None = None) -> int:
    drafts = PayoutRequest.objects.filter(owner=user, state=State.DRAFT)
    if keep_pk is not None:
        drafts = drafts.exclude(pk=keep_pk)
    return drafts.update(state=State.CANCELLED, resolved_at=timezone.now())


def payout_draft_for(*, user, confirm_token: str) -> PayoutRequest:
    """The user's request with this confirmation token (any state); DoesNotExist otherwise."""
    return PayoutRequest.objects.get(owner=user, confirm_token=confirm_token)


def payout_draft_is_expired(*, payout: PayoutRequest) -> bool:
    return payout.state == State.DRAFT and payout.created_at < timezone.now() - draft_ttl()


# --- confirm -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfirmOutcome:
    payout: PayoutRequest
    # True only for the one call that claimed the draft and asked DCDN.
    sent: bool


def payout_confirm(*, user, confirm_token: str, client: DcdnClient | None = None) -> PayoutRequest:
    """Send the confirmed draft to DCDN, at most once whatever happens (see
    ``payout_confirm_outcome``)."""
    return payout_confirm_outcome(user=user, confirm_token=confirm_token, client=client).payout


def payout_confirm_outcome(
    *, user, confirm_token: str, client: DcdnClient | None = None
) -> ConfirmOutcome:
    """Send the confirmed draft to DCDN, at most once whatever happens.

    Returns the request in its new state. A confirmation already claimed (double click,
    replay, second tab) returns the existing request without any upstream call. Raises
    PayoutRequest.DoesNotExist for a token that is not the user's, PayoutNotConfirmable
    for an expired or replaced draft or while another payout is in flight, and
    DcdnError when no client can be made (nothing was claimed then), and PayoutNotSent
    when DCDN certainly did not take it (the draft may be confirmed again).
    """
    payout = payout_draft_for(user=user, confirm_token=confirm_token)
    if payout.state == State.CANCELLED:
        raise PayoutNotConfirmable(MESSAGE_REPLACED)
    if payout.state != State.DRAFT:
        return ConfirmOutcome(payout=payout, sent=False)
    client = client or dcdn_client_for(user)
    now = timezone.now()
    with transaction.atomic():
        # Serialise confirmations of one owner so that two drafts cannot both pass the
        # in-flight check below.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        in_flight = (
            PayoutRequest.objects.filter(owner=user, state__in=[State.SENDING, State.UNKNOWN])
            .exclude(pk=payout.pk)
            .exists()
        )
        claimed = 0
        if not in_flight:
            claimed = PayoutRequest.objects.filter(
                pk=payout.pk,
                owner=user,
                state=State.DRAFT,
                created_at__gte=now - draft_ttl(),
            ).update(state=State.SENDING, sent_at=now, error_message="")
            if claimed:
                _cancel_drafts(user=user, keep_pk=payout.pk)
    payout.refresh_from_db()
    if not claimed:
        if payout.state == State.DRAFT:
            if in_flight:
                raise PayoutNotConfirmable(
                    "Another payout is still being sent or checked. Wait until its outcome "
                    "is known, then try again."
                )
            raise PayoutNotConfirmable(
                "This confirmation has expired. Start the payout again to see your current balance."
            )
        if payout.state == State.CANCELLED:
            raise PayoutNotConfirmable(MESSAGE_REPLACED)
        # Someone else claimed it: never a second upstream call.
        return ConfirmOutcome(payout=payout, sent=False)
    # The claim is committed: every other POST now sees "sending" and stops above.
    return ConfirmOutcome(payout=_send(payout=payout, client=client), sent=True)


def _send(*, payout: PayoutRequest, client: DcdnClient) -> PayoutRequest:
    owner_key = payout.owner_key
    try:
        result = client.request_payout(
            amount=payout.amount,
            wallet_address=payout.wallet_address,
            idempotency_key=str(payout.idempotency_key),
        )
    except OutcomeUnknown as exc:
        logger.warning("Payout %s: outcome unknown (%s)", payout.pk, type(exc).__name__)
        return _mark_unknown(payout=payout, message=str(exc.message))
    except RateLimited as exc:
        # Refused before DCDN processed it (our budget or a 429): nothing was paid, so
        # the same confirmation may be used again once DCDN has room.
        return _back_to_draft(payout=payout, error=exc)
    except Unavailable as exc:
        if exc.status is None:
            # The connection was never made: the request cannot have arrived.
            return _back_to_draft(payout=payout, error=exc)
        # A 5xx may come after the payout was recorded: find out, do not resend.
        return _mark_unknown(payout=payout, message=exc.message)
    except DcdnError as exc:
        if _is_refusal(exc):
            return _mark_failed(payout=payout, message=exc.message)
        return _mark_unknown(payout=payout, message=exc.message)
    except Exception:
        # A bug after the request may have left: never guess "not sent".
        logger.exception("Payout %s: unexpected error while sending", payout.pk)
        return _mark_unknown(payout=payout, message="The panel failed while sending.")
    finally:
        # Whatever happened, the balance may have changed.
        earnings_summary_forget(owner_key=owner_key)
    state = State.PAID if result.status == "paid" else State.PENDING
    _finish(
        payout,
        state=state,
        upstream_payout_id=result.payout_id,
        upstream_status=result.status,
        error_message="",
        resolved_at=timezone.now(),
    )
    logger.info("Payout %s accepted by DCDN as %s", payout.pk, result.payout_id)
    return payout


def _is_refusal(error: DcdnError) -> bool:
    """DCDN definitely answered no (a 4xx): nothing was paid."""
    if isinstance(error, BadRequest | InsufficientCredits | Unauthorized | NotFound | Conflict):
        return True
    return error.status is not None and 400 <= error.status < 500


def _finish(payout: PayoutRequest, **changes) -> None:
    """Apply an outcome, unless another process already settled the request."""
    PayoutRequest.objects.filter(pk=payout.pk, state__in=[State.SENDING, State.UNKNOWN]).update(
        **changes
    )
    payout.refresh_from_db()


def _mark_failed(*, payout: PayoutRequest, message: str) -> PayoutRequest:
    _finish(payout, state=State.FAILED, error_message=message, resolved_at=timezone.now())
    return payout


def _mark_unknown(*, payout: PayoutRequest, message: str) -> PayoutRequest:
    _finish(payout, state=State.UNKNOWN, error_message=message)
    if payout.state == State.UNKNOWN:
        _schedule_reconcile(payout_id=payout.pk)
    return payout


def _back_to_draft(*, payout: PayoutRequest, error: DcdnError) -> PayoutRequest:
    reverted = PayoutRequest.objects.filter(pk=payout.pk, state=State.SENDING).update(
        state=State.DRAFT, sent_at=None
    )
    payout.refresh_from_db()
    if reverted:
        raise PayoutNotSent(error)
    return payout


def _schedule_reconcile(*, payout_id: int) -> None:
    """Ask a worker to settle the unknown outcome later. Best effort: the history page
    also reconciles when it is opened."""

    def enqueue() -> None:
        try:
            from .tasks import payout_reconcile_task

            payout_reconcile_task.apply_async(
                args=[payout_id], countdown=int(reconcile_grace().total_seconds()), retry=False
            )
        except Exception:
            logger.warning("Could not schedule reconciliation of payout %s", payout_id)

    transaction.on_commit(enqueue)


# --- reconcile ---------------------------------------------------------------------------


def _mark_stale_sending(*, user) -> None:
    """A request left in "sending" by a crashed process is as unknown as a timeout."""
    PayoutRequest.objects.filter(
        owner=user, state=State.SENDING, sent_at__lt=timezone.now() - sending_stale_after()
    ).update(state=State.UNKNOWN, error_message="The panel stopped before DCDN answered.")


def _decide(*, payout: PayoutRequest, summary: EarningsSummary, read_at) -> None:
    """Settle one unknown request from a summary read at ``read_at`` (after sending)."""
    now = timezone.now()
    if payout.pending_before is None or payout.paid_out_before is None:
        PayoutRequest.objects.filter(pk=payout.pk).update(
            last_checked_at=now, check_count=payout.check_count + 1
        )
        return
    # A payout moves its amount into pending (later paid_out): their sum only grows by
    # payouts, so growth by at least the amount means DCDN recorded it.
    grown = (summary.pending + summary.paid_out) - (payout.pending_before + payout.paid_out_before)
    base = PayoutRequest.objects.filter(pk=payout.pk, state=State.UNKNOWN)
    if grown >= payout.amount:
        base.update(
            state=State.PENDING,
            upstream_status="pending",
            error_message="",
            reconciled_at=now,
            resolved_at=now,
            last_checked_at=now,
            check_count=payout.check_count + 1,
        )
    elif payout.sent_at and read_at >= payout.sent_at + reconcile_grace():
        base.update(
            state=State.FAILED,
            error_message=MESSAGE_NOT_RECEIVED,
            reconciled_at=now,
            resolved_at=now,
            last_checked_at=now,
            check_count=payout.check_count + 1,
        )
    else:
        base.update(last_checked_at=now, check_count=payout.check_count + 1)


def payout_reconcile(
    *, user, payout: PayoutRequest, min_interval_seconds: float = 0
) -> PayoutRequest:
    """Settle an "unknown" request from a fresh summary; never sends the payout again.

    Pending when DCDN's pending + paid out grew by at least the amount since the request
    was prepared; failed ("not received") when it clearly did not, once late arrival is
    no longer possible; otherwise it stays unknown. ``min_interval_seconds`` spares the
    budget when a button asks again too soon. Raises DcdnError when the summary cannot be
    read (the request stays unknown).
    """
    _mark_stale_sending(user=user)
    payout.refresh_from_db()
    if payout.state != State.UNKNOWN:
        return payout
    if payout.last_checked_at and payout.last_checked_at > timezone.now() - timedelta(
        seconds=min_interval_seconds
    ):
        return payout
    cached = earnings_summary_for(user=user, force=True)
    _decide(payout=payout, summary=cached.value, read_at=cached.fetched_at)
    payout.refresh_from_db()
    return payout


def payouts_refresh(*, user) -> str | None:
    """Bring the history up to date when it is viewed; returns an error message or None.

    Unknown requests are reconciled at most once per cache interval (one fresh summary
    serves them all). Pending ones become paid when DCDN reports nothing pending any
    more and paid out grew by their amount, read from the cached summary (no extra call
    while it is fresh).
    """
    _mark_stale_sending(user=user)
    interval = timedelta(seconds=int(settings.DCDN_EARNINGS_CACHE_SECONDS))
    now = timezone.now()
    unknown = list(PayoutRequest.objects.filter(owner=user, state=State.UNKNOWN))
    due = [p for p in unknown if p.last_checked_at is None or p.last_checked_at <= now - interval]
    pending_exists = PayoutRequest.objects.filter(owner=user, state=State.PENDING).exists()
    if not due and not pending_exists:
        return None
    try:
        cached = earnings_summary_for(user=user, force=bool(due))
    except DcdnError as exc:
        from panel.dcdn_errors_ui import dcdn_error_message

        return dcdn_error_message(exc)
    for payout in due:
        _decide(payout=payout, summary=cached.value, read_at=cached.fetched_at)
    summary = cached.value
    if summary.pending == 0:
        # Nothing is pending at DCDN any more: a request accepted before this read was
        # paid, provided paid_out grew by at least its amount since it was prepared.
        for payout in PayoutRequest.objects.filter(
            owner=user, state=State.PENDING, sent_at__lt=cached.fetched_at
        ):
            if payout.paid_out_before is not None and (
                summary.paid_out - payout.paid_out_before >= payout.amount
            ):
                PayoutRequest.objects.filter(pk=payout.pk, state=State.PENDING).update(
                    state=State.PAID, upstream_status="paid", resolved_at=now
                )
    return None


def payout_reconcile_by_id(*, payout_id: int) -> PayoutRequest | None:
    """For the worker: settle one request by id; None when it no longer exists."""
    payout = PayoutRequest.objects.select_related("owner").filter(pk=payout_id).first()
    if payout is None:
        return None
    return payout_reconcile(user=payout.owner, payout=payout)


def payout_for_user(*, user, pk: int) -> PayoutRequest:
    """The user's own request (DoesNotExist for anyone else's, same as a missing one)."""
    return PayoutRequest.objects.exclude(state=State.CANCELLED).get(owner=user, pk=pk)


def payouts_history(*, user):
    return PayoutRequest.objects.filter(owner=user).exclude(
        state__in=[State.DRAFT, State.CANCELLED]
    )


# --- display -----------------------------------------------------------------------------


def format_amount(value: Decimal | None) -> str:
    """Up to 8 decimals, trailing zeros stripped but at least two ("12.50", "0.00012")."""
    if value is None:
        return ""
    quantized = Decimal(value).quantize(AMOUNT_QUANTUM)
    text = f"{quantized:,f}"
    if "." in text:
        whole, frac = text.split(".")
        frac = frac.rstrip("0")
        frac = frac.ljust(2, "0")
        return f"{whole}.{frac}"
    return f"{text}.00"


def usd_value(*, amount: Decimal | None, price_usd: Decimal | None) -> Decimal | None:
    if amount is None or price_usd is None:
        return None
    return (Decimal(amount) * Decimal(price_usd)).quantize(Decimal("0.01"))
