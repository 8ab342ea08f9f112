"""Payout services with the DCDN client patched at the boundary: validation, the one-time
claim, each kind of failure, and reconciliation of unknown outcomes."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import TestCase
from django.utils import timezone

from accounts.errors import TokenMissing
from panel.dcdn.errors import (
    BadRequest,
    InsufficientCredits,
    OutcomeUnknown,
    RateLimited,
    Unavailable,
)
from panel.dcdn.types import Payout
from panel.earnings import services
from panel.earnings.models import PayoutRequest

from .conftest import BASE58_WALLET, EVM_WALLET, make_summary

pytestmark = pytest.mark.django_db

State = PayoutRequest.State


def prepare(user, amount="25", wallet=EVM_WALLET) -> PayoutRequest:
    return services.payout_prepare(user=user, amount=amount, wallet_address=wallet)


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("", "Enter an amount"),
        ("abc", "as a number"),
        ("1e3", "as a number"),
        ("12,5", "as a number"),
        ("NaN", "as a number"),
        ("-10", "as a number"),
        ("0", "greater than zero"),
        ("0.000", "greater than zero"),
        ("9.99999999", "minimum payout is 10 DCDN"),
        ("10.000000001", "at most 8 decimal places"),
        ("1" + "0" * 25, "too large"),
    ],
)
def test_bad_amounts_are_refused_before_any_call(user, fake_dcdn, amount, message):
    with pytest.raises(services.PayoutInvalid) as exc:
        prepare(user, amount=amount)
    assert any(message in m for m in exc.value.errors["amount"]), exc.value.errors
    assert fake_dcdn.calls == []


@pytest.mark.parametrize("amount", ["10", "10.00000000", "10.000000000", "10.5", ".5", "0.5"])
def test_amounts_at_the_edges(amount):
    if Decimal(amount) < 10:
        with pytest.raises(services.PayoutInvalid):
            services.payout_amount_clean(amount=amount)
    else:
        assert services.payout_amount_clean(amount=amount) == Decimal(amount)


@pytest.mark.parametrize(
    "wallet",
    [
        "",
        "0x" + "g" * 40,
        "0x" + "a" * 39,
        "0x" + "a" * 41,
        "0O" + "a" * 40,
        "1" * 31,
        "1" * 45,
        "0" * 40,  # base58 has no 0
        "l" * 40,  # nor l
        EVM_WALLET + " extra",
    ],
)
def test_bad_wallets_are_refused_before_any_call(user, fake_dcdn, wallet):
    with pytest.raises(services.PayoutInvalid) as exc:
        prepare(user, wallet=wallet)
    assert "wallet_address" in exc.value.errors
    assert fake_dcdn.calls == []


@pytest.mark.parametrize("wallet", [EVM_WALLET, "0x" + "A" * 40, BASE58_WALLET, "1" * 32, "z" * 44])
def test_good_wallets(wallet):
    assert services.wallet_address_clean(wallet_address=f"  {wallet} ") == wallet


def test_both_fields_report_errors_together(user, fake_dcdn):
    with pytest.raises(services.PayoutInvalid) as exc:
        prepare(user, amount="5", wallet="nope")
    assert set(exc.value.errors) == {"amount", "wallet_address"}


def test_amount_above_available_is_checked_against_a_fresh_summary(user, fake_dcdn):
    # A stale cached summary with a large balance must not let the request through.
    from panel.earnings import selectors

    fake_dcdn.summary = make_summary(available="1000")
    selectors.earnings_summary_for(user=user)
    fake_dcdn.summary = make_summary(available="30")
    with pytest.raises(services.PayoutInvalid) as exc:
        prepare(user, amount="30.00000001")
    assert "more than your available balance of 30.00 DCDN" in exc.value.errors["amount"][0]
    assert fake_dcdn.count("earnings_summary") == 2
    assert fake_dcdn.count("request_payout") == 0
    assert prepare(user, amount="30").amount == Decimal("30")


def test_prepare_records_the_balance_it_was_checked_against(user, fake_dcdn):
    draft = prepare(user, amount="12.5")
    assert draft.state == State.DRAFT
    assert draft.amount == Decimal("12.5")
    assert draft.available_before == Decimal("250.12345678")
    assert draft.pending_before == Decimal(0)
    assert draft.paid_out_before == Decimal(100)
    assert draft.price_usd == Decimal("0.0425")
    assert draft.owner_key == f"user:{user.pk}"
    assert len(draft.confirm_token) >= 32
    assert fake_dcdn.count("request_payout") == 0


def test_prepare_without_token_info_still_works(user, fake_dcdn):
    fake_dcdn.errors["token_info"] = Unavailable()
    assert prepare(user).price_usd is None


def test_a_new_draft_cancels_older_ones(user, fake_dcdn):
    first = prepare(user)
    second = prepare(user)
    first.refresh_from_db()
    assert first.state == State.CANCELLED
    assert second.state == State.DRAFT


# --- confirm ---------------------------------------------------------------------------------


def test_confirm_sends_once_with_the_idempotency_key(user, fake_dcdn):
    draft = prepare(user, amount="25.5")
    result = services.payout_confirm(user=user, confirm_token=draft.confirm_token)
    assert result.state == State.PENDING
    assert result.upstream_payout_id.startswith("po_")
    assert result.sent_at is not None and result.resolved_at is not None
    sent = [c for c in fake_dcdn.calls if c[0] == "request_payout"]
    assert sent == [("request_payout", Decimal("25.5"), EVM_WALLET, str(draft.idempotency_key))]
    assert isinstance(sent[0][1], Decimal)


def test_confirm_again_returns_the_same_request_without_a_call(user, fake_dcdn):
    draft = prepare(user)
    first = services.payout_confirm_outcome(user=user, confirm_token=draft.confirm_token)
    second = services.payout_confirm_outcome(user=user, confirm_token=draft.confirm_token)
    assert first.sent is True and second.sent is False
    assert second.payout.pk == first.payout.pk
    assert fake_dcdn.count("request_payout") == 1


def test_an_answer_of_paid_is_recorded_as_paid(user, fake_dcdn):
    fake_dcdn.payout_answer = Payout(
        payout_id="po_x", amount=Decimal(25), status="paid", requested_at=None
    )
    draft = prepare(user)
    assert services.payout_confirm(user=user, confirm_token=draft.confirm_token).state == State.PAID


def test_someone_elses_confirm_token_does_not_exist(user, outsider, fake_dcdn):
    draft = prepare(user)
    with pytest.raises(PayoutRequest.DoesNotExist):
        services.payout_confirm(user=outsider, confirm_token=draft.confirm_token)
    assert fake_dcdn.count("request_payout") == 0


def test_an_expired_confirmation_is_refused(user, fake_dcdn, settings):
    draft = prepare(user)
    PayoutRequest.objects.filter(pk=draft.pk).update(created_at=timezone.now() - timedelta(hours=1))
    with pytest.raises(services.PayoutNotConfirmable, match="expired"):
        services.payout_confirm(user=user, confirm_token=draft.confirm_token)
    assert fake_dcdn.count("request_payout") == 0


def test_a_cancelled_confirmation_is_refused(user, fake_dcdn):
    old = prepare(user)
    prepare(user)
    with pytest.raises(services.PayoutNotConfirmable, match="replaced"):
        services.payout_confirm(user=user, confirm_token=old.confirm_token)
    assert fake_dcdn.count("request_payout") == 0


def test_no_new_payout_while_another_outcome_is_unknown(user, fake_dcdn):
    fake_dcdn.errors["request_payout"] = [OutcomeUnknown()]
    first = prepare(user)
    services.payout_confirm(user=user, confirm_token=first.confirm_token)
    second = prepare(user)
    with pytest.raises(services.PayoutNotConfirmable, match="still being"):
        services.payout_confirm(user=user, confirm_token=second.confirm_token)
    assert fake_dcdn.count("request_payout") == 1
    assert PayoutRequest.objects.get(pk=second.pk).state == State.DRAFT


def test_missing_token_claims_nothing(user, fake_dcdn, monkeypatch):
    draft = prepare(user)

    def no_token(user, *, max_wait=None):
        raise TokenMissing()

    monkeypatch.setattr("panel.earnings.services.dcdn_client_for", no_token)
    with pytest.raises(TokenMissing):
        services.payout_confirm(user=user, confirm_token=draft.confirm_token)
    assert PayoutRequest.objects.get(pk=draft.pk).state == State.DRAFT


@pytest.mark.parametrize(
    "error",
    [
        BadRequest("Amount exceeds the available balance of 3 DCDN.", status=400),
        InsufficientCredits(status=402),
    ],
)
def test_a_definite_refusal_fails_the_request(user, fake_dcdn, error):
    fake_dcdn.errors["request_payout"] = error
    draft = prepare(user)
    result = services.payout_confirm(user=user, confirm_token=draft.confirm_token)
    assert result.state == State.FAILED
    assert result.error_message == error.message
    # Confirming again does not retry it.
    services.payout_confirm(user=user, confirm_token=draft.confirm_token)
    assert fake_dcdn.count("request_payout") == 1


@pytest.mark.parametrize(
    "error",
    [
        OutcomeUnknown(),
        Unavailable("Internal server error.", status=500),
        RuntimeError("a bug after sending"),
    ],
)
def test_a_possibly_received_request_becomes_unknown_and_is_never_resent(user, fake_dcdn, error):
    fake_dcdn.errors["request_payout"] = [error]
    draft = prepare(user)
    result = services.payout_confirm(user=user, confirm_token=draft.confirm_token)
    assert result.state == State.UNKNOWN
    services.payout_confirm(user=user, confirm_token=draft.confirm_token)
    assert fake_dcdn.count("request_payout") == 1


@pytest.mark.parametrize(
    "error", [RateLimited(retry_after=7), Unavailable("Could not connect to DCDN.")]
)
def test_a_request_that_certainly_did_not_arrive_can_be_confirmed_again(user, fake_dcdn, error):
    fake_dcdn.errors["request_payout"] = [error]
    draft = prepare(user)
    with pytest.raises(services.PayoutNotSent) as exc:
        services.payout_confirm(user=user, confirm_token=draft.confirm_token)
    assert exc.value.error is error
    assert PayoutRequest.objects.get(pk=draft.pk).state == State.DRAFT
    result = services.payout_confirm(user=user, confirm_token=draft.confirm_token)
    assert result.state == State.PENDING
    keys = {c[3] for c in fake_dcdn.calls if c[0] == "request_payout"}
    assert keys == {str(draft.idempotency_key)}  # the same key both times


def test_sending_drops_the_cached_summary(user, fake_dcdn):
    draft = prepare(user)
    services.payout_confirm(user=user, confirm_token=draft.confirm_token)
    from panel.earnings import selectors

    before = fake_dcdn.count("earnings_summary")
    selectors.earnings_summary_for(user=user)
    assert fake_dcdn.count("earnings_summary") == before + 1


# --- reconcile -------------------------------------------------------------------------------


def unknown_payout(user, fake_dcdn, amount="25") -> PayoutRequest:
    fake_dcdn.errors["request_payout"] = [OutcomeUnknown()]
    draft = prepare(user, amount=amount)
    result = services.payout_confirm(user=user, confirm_token=draft.confirm_token)
    assert result.state == State.UNKNOWN
    return result


def test_reconcile_marks_pending_when_the_balance_moved(user, fake_dcdn):
    payout = unknown_payout(user, fake_dcdn)
    fake_dcdn.summary = make_summary(available="225.12345678", pending="25")
    result = services.payout_reconcile(user=user, payout=payout)
    assert result.state == State.PENDING
    assert result.reconciled_at is not None
    assert result.state_label == "Pending (reconciled)"
    assert fake_dcdn.count("request_payout") == 1


def test_reconcile_counts_a_payout_already_paid(user, fake_dcdn):
    payout = unknown_payout(user, fake_dcdn)
    fake_dcdn.summary = make_summary(available="225.12345678", pending="0", paid_out="125")
    assert services.payout_reconcile(user=user, payout=payout).state == State.PENDING


def test_reconcile_waits_while_a_late_arrival_is_possible(user, fake_dcdn):
    payout = unknown_payout(user, fake_dcdn)
    result = services.payout_reconcile(user=user, payout=payout)
    assert result.state == State.UNKNOWN
    assert result.check_count == 1


def test_reconcile_fails_a_payout_that_never_arrived(user, fake_dcdn, settings):
    settings.EARNINGS_PAYOUT_RECONCILE_GRACE_SECONDS = 0
    payout = unknown_payout(user, fake_dcdn)
    result = services.payout_reconcile(user=user, payout=payout)
    assert result.state == State.FAILED
    assert result.error_message == services.MESSAGE_NOT_RECEIVED
    assert fake_dcdn.count("request_payout") == 1


def test_reconcile_leaves_settled_requests_alone(user, fake_dcdn):
    draft = prepare(user)
    done = services.payout_confirm(user=user, confirm_token=draft.confirm_token)
    calls = len(fake_dcdn.calls)
    assert services.payout_reconcile(user=user, payout=done).state == State.PENDING
    assert len(fake_dcdn.calls) == calls


def test_reconcile_error_leaves_it_unknown(user, fake_dcdn):
    payout = unknown_payout(user, fake_dcdn)
    fake_dcdn.errors["earnings_summary"] = Unavailable()
    with pytest.raises(Unavailable):
        services.payout_reconcile(user=user, payout=payout)
    payout.refresh_from_db()
    assert payout.state == State.UNKNOWN


def test_a_request_stuck_in_sending_is_treated_as_unknown(user, fake_dcdn):
    draft = prepare(user)
    PayoutRequest.objects.filter(pk=draft.pk).update(
        state=State.SENDING, sent_at=timezone.now() - timedelta(hours=1)
    )
    fake_dcdn.summary = make_summary(pending="25")
    result = services.payout_reconcile(user=user, payout=draft)
    assert result.state == State.PENDING
    assert fake_dcdn.count("request_payout") == 0


def test_history_refresh_reconciles_at_most_once_per_interval(user, fake_dcdn):
    unknown_payout(user, fake_dcdn)
    before = fake_dcdn.count("earnings_summary")
    services.payouts_refresh(user=user)
    services.payouts_refresh(user=user)
    services.payouts_refresh(user=user)
    assert fake_dcdn.count("earnings_summary") == before + 1


def test_history_refresh_marks_paid_when_nothing_is_pending_any_more(user, fake_dcdn):
    draft = prepare(user)
    services.payout_confirm(user=user, confirm_token=draft.confirm_token)
    fake_dcdn.summary = make_summary(available="225.12345678", pending="0", paid_out="125")
    assert services.payouts_refresh(user=user) is None
    assert PayoutRequest.objects.get(pk=draft.pk).state == State.PAID


def test_history_refresh_reports_a_dcdn_error(user, fake_dcdn):
    draft = prepare(user)
    services.payout_confirm(user=user, confirm_token=draft.confirm_token)
    fake_dcdn.errors["earnings_summary"] = Unavailable()
    assert "not answering" in services.payouts_refresh(user=user)


def test_history_without_open_requests_costs_nothing(user, fake_dcdn):
    assert services.payouts_refresh(user=user) is None
    assert fake_dcdn.calls == []


def test_reconcile_task_settles_by_id(user, fake_dcdn):
    from panel.earnings.tasks import payout_reconcile_task

    payout = unknown_payout(user, fake_dcdn)
    fake_dcdn.summary = make_summary(pending="25")
    payout_reconcile_task.apply(args=[payout.pk])
    payout.refresh_from_db()
    assert payout.state == State.PENDING
    payout_reconcile_task.apply(args=[999999])  # a deleted request is not an error


# --- display ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("12.5"), "12.50"),
        (Decimal("10"), "10.00"),
        (Decimal("0.00012"), "0.00012"),
        (Decimal("1234567.12345678"), "1,234,567.12345678"),
        (Decimal("1.123456789"), "1.12345679"),
        (Decimal("0"), "0.00"),
    ],
)
def test_format_amount(value, text):
    assert services.format_amount(value) == text


def test_usd_value_is_exact_to_the_cent():
    assert services.usd_value(amount=Decimal("250.12345678"), price_usd=Decimal("0.0425")) == (
        Decimal("10.63")
    )
    assert services.usd_value(amount=None, price_usd=Decimal(1)) is None


def test_check_now_cannot_be_pressed_faster_than_the_refresh_floor(user, fake_dcdn):
    payout = unknown_payout(user, fake_dcdn)
    before = fake_dcdn.count("earnings_summary")
    for _ in range(3):
        services.payout_reconcile(user=user, payout=payout, min_interval_seconds=5)
    assert fake_dcdn.count("earnings_summary") == before + 1


def test_an_unknown_outcome_schedules_a_worker_check(user, fake_dcdn, monkeypatch, settings):
    from panel.earnings import tasks

    scheduled = []
    monkeypatch.setattr(
        tasks.payout_reconcile_task,
        "apply_async",
        lambda **kwargs: scheduled.append(kwargs),
    )
    settings.EARNINGS_PAYOUT_RECONCILE_GRACE_SECONDS = 40
    fake_dcdn.errors["request_payout"] = [OutcomeUnknown()]
    draft = prepare(user)
    with TestCase.captureOnCommitCallbacks(execute=True):
        payout = services.payout_confirm(user=user, confirm_token=draft.confirm_token)
    assert scheduled == [{"args": [payout.pk], "countdown": 40, "retry": False}]


def test_a_broker_failure_does_not_break_the_payout(user, fake_dcdn, monkeypatch):
    from panel.earnings import tasks

    def broken(**kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.payout_reconcile_task, "apply_async", broken)
    fake_dcdn.errors["request_payout"] = [OutcomeUnknown()]
    draft = prepare(user)
    with TestCase.captureOnCommitCallbacks(execute=True):
        payout = services.payout_confirm(user=user, confirm_token=draft.confirm_token)
    assert payout.state == State.UNKNOWN


def test_periodic_sweep_queues_unknown_and_stuck_requests(user, fake_dcdn, monkeypatch):
    from panel.earnings import tasks

    queued = []
    monkeypatch.setattr(tasks.payout_reconcile_task, "delay", queued.append)
    unknown = unknown_payout(user, fake_dcdn)
    stuck = prepare(user)
    PayoutRequest.objects.filter(pk=stuck.pk).update(
        state=State.SENDING, sent_at=timezone.now() - timedelta(hours=1)
    )
    assert tasks.payouts_reconcile_due() == 2
    assert sorted(queued) == sorted([unknown.pk, stuck.pk])
