"""Earnings against the simulator over real HTTP: exact figures, the cache's effect on
upstream calls, validation that sends nothing, and payouts that never double."""

from __future__ import annotations

import csv
import io
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse

from panel.earnings import selectors, services
from panel.earnings.models import PayoutRequest

from .conftest import (
    BASE58_WALLET,
    DEMO_TOKEN,
    EVM_WALLET,
    mark_reauth,
    sim_add_account,
    sim_calls,
    sim_faults,
    sim_payout_posts,
    sim_state,
)

pytestmark = pytest.mark.django_db

State = PayoutRequest.State


def _prepare_and_confirm_page(client, amount: str = "10.5", wallet: str = EVM_WALLET):
    response = client.post(reverse("earnings:payout"), {"amount": amount, "wallet_address": wallet})
    assert response.status_code == 302, response.content.decode()[:2000]
    draft = PayoutRequest.objects.get(state=State.DRAFT)
    assert response["Location"] == reverse("earnings:payout_confirm", args=[draft.confirm_token])
    return draft


def _confirm(client, draft):
    return client.post(
        reverse("earnings:payout_confirm", args=[draft.confirm_token]),
        {"confirm_token": draft.confirm_token},
    )


# --- reads ---------------------------------------------------------------------------------


def test_summary_shows_the_simulators_figures_exactly(demo_client, simulator):
    state = sim_state(simulator)
    response = demo_client.get(reverse("earnings:summary"))
    assert response.status_code == 200
    summary = response.context["summary"]
    # The simulator's own totals, as exact decimals (no float rounding on the way).
    assert summary.available == Decimal(str(state["available"]))
    assert summary.pending == Decimal(str(state["pending"]))
    assert summary.paid_out == Decimal(str(state["paid_out"]))
    assert summary.total_earned == summary.available + summary.pending + summary.paid_out
    assert all(isinstance(v, Decimal) for v in (summary.available, summary.total_earned))
    html = response.content.decode()
    assert services.format_amount(summary.available) in html
    for node_id in state["nodes"]:
        assert reverse("earnings:node", args=[node_id]) in html
    assert "0.0425 USD per DCDN" in html
    assert "70%" in html and "25%" in html and "5%" in html
    usd = services.usd_value(amount=summary.available, price_usd=Decimal("0.0425"))
    assert f"${usd:,}" in html
    assert "Figures just fetched from DCDN" in html


def test_user_without_nodes_sees_an_empty_state(client, user, simulator):
    from accounts.services import credential_store_unverified

    sim_add_account(simulator, "no-nodes-token", [])
    credential_store_unverified(user=user, token="no-nodes-token")
    client.force_login(user)
    response = client.get(reverse("earnings:summary"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "You do not operate any nodes yet" in html
    assert "alert-error" not in html
    assert selectors.earnings_home_card(user=user) is None


def test_node_page_has_chart_table_and_csv(demo_client, simulator):
    node_id = sim_state(simulator)["nodes"][0]
    response = demo_client.get(reverse("earnings:node", args=[node_id]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'role="img"' in html and "<desc" in html and 'class="series-vps"' in html
    assert " style=" not in html
    node = response.context["node"]
    assert len(node.daily) == 30

    csv_response = demo_client.get(reverse("earnings:node_csv", args=[node_id]))
    assert csv_response.status_code == 200
    assert csv_response["Content-Type"].startswith("text/csv")
    assert csv_response["Content-Disposition"] == (f'attachment; filename="{node_id}-earnings.csv"')
    rows = list(csv.reader(io.StringIO(csv_response.content.decode())))
    assert rows[0] == ["date", "vps_dcdn", "cdn_dcdn", "gpu_dcdn", "total_dcdn", "uptime_percent"]
    assert len(rows) == 31
    first = node.daily[0]
    assert rows[1][0] == first.date.isoformat()
    assert Decimal(rows[1][4]) == first.amount
    assert Decimal(rows[1][1]) == first.vps


def test_someone_elses_node_is_404(demo_client, simulator):
    sim_add_account(simulator, "other-operator", ["node-us-west-9"])
    response = demo_client.get(reverse("earnings:node", args=["node-us-west-9"]))
    assert response.status_code == 404
    assert demo_client.get(reverse("earnings:node_csv", args=["node-us-west-9"])).status_code == 404


def test_moving_between_pages_costs_no_extra_upstream_call(demo_client, simulator, demo_user):
    node_id = sim_state(simulator)["nodes"][0]
    demo_client.get(reverse("earnings:summary"))
    after_summary = sim_calls(simulator)
    assert after_summary == 2  # summary + token info
    demo_client.get(reverse("earnings:node", args=[node_id]))
    after_node = sim_calls(simulator)
    assert after_node == after_summary + 1
    # Back and forth: everything comes from the cache.
    demo_client.get(reverse("earnings:summary"))
    demo_client.get(reverse("earnings:node", args=[node_id]))
    demo_client.get(reverse("earnings:node_csv", args=[node_id]))
    demo_client.get(reverse("earnings:payout"))
    demo_client.get(reverse("earnings:payouts"))
    assert selectors.earnings_home_card(user=demo_user) is not None
    assert sim_calls(simulator) == after_node


def test_home_card_costs_at_most_one_call_and_then_none(demo_user, simulator):
    card = selectors.earnings_home_card(user=demo_user)
    assert card is not None
    assert sim_calls(simulator) == 1
    assert card["available"] == Decimal(str(sim_state(simulator)["available"]))
    assert selectors.earnings_home_card(user=demo_user) is not None
    assert sim_calls(simulator) == 1


def test_refresh_button_reads_again_but_not_more_than_every_few_seconds(
    demo_client, simulator, monkeypatch
):
    demo_client.get(reverse("earnings:summary"))
    before = sim_calls(simulator, endpoint="GET /earnings/summary")
    demo_client.post(reverse("earnings:summary"), {"refresh": "1"})
    assert sim_calls(simulator, endpoint="GET /earnings/summary") == before
    monkeypatch.setattr(selectors, "MIN_REFRESH_SECONDS", 0)
    response = demo_client.post(reverse("earnings:summary"), {"refresh": "1"})
    assert response.status_code == 302
    assert sim_calls(simulator, endpoint="GET /earnings/summary") == before + 1


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "wallet", "field", "text"),
    [
        ("9.99999999", EVM_WALLET, "amount", "minimum payout"),
        ("10.123456789", EVM_WALLET, "amount", "at most 8 decimal places"),
        ("-20", EVM_WALLET, "amount", "as a number"),
        ("0", EVM_WALLET, "amount", "greater than zero"),
        ("25", "0x1234", "wallet_address", "not a valid wallet address"),
        ("25", "not a wallet at all!!", "wallet_address", "not a valid wallet address"),
        ("999999", EVM_WALLET, "amount", "more than your available balance"),
    ],
)
def test_invalid_payout_sends_nothing(demo_client, simulator, amount, wallet, field, text):
    response = demo_client.post(
        reverse("earnings:payout"), {"amount": amount, "wallet_address": wallet}
    )
    assert response.status_code == 400
    form = response.context["form"]
    assert any(text in e for e in form.errors[field]), form.errors
    html = response.content.decode()
    assert 'aria-invalid="true"' in html
    assert f'aria-describedby="id_{field}_helptext id_{field}_error"' in html
    assert sim_payout_posts(simulator) == 0
    assert not PayoutRequest.objects.exists()


def test_local_format_errors_make_no_upstream_call_at_all(demo_client, simulator):
    demo_client.get(reverse("earnings:payout"))  # warms the cache for the page
    before = sim_calls(simulator)
    demo_client.post(reverse("earnings:payout"), {"amount": "5", "wallet_address": "x"})
    assert sim_calls(simulator) == before


# --- payouts ---------------------------------------------------------------------------------


def test_payout_happy_path(demo_client, simulator):
    available = Decimal(str(sim_state(simulator)["available"]))
    draft = _prepare_and_confirm_page(demo_client, "12.34567891", BASE58_WALLET)
    assert sim_payout_posts(simulator) == 0
    page = demo_client.get(reverse("earnings:payout_confirm", args=[draft.confirm_token]))
    html = page.content.decode()
    assert "12.34567891 DCDN" in html and BASE58_WALLET in html
    assert f'name="confirm_token" value="{draft.confirm_token}"' in html
    assert "$0.52" in html  # 12.34567891 x 0.0425 USD

    response = _confirm(demo_client, draft)
    draft.refresh_from_db()
    assert response.status_code == 302
    assert response["Location"] == reverse("earnings:payout_detail", args=[draft.pk])
    assert draft.state == State.PENDING
    assert draft.upstream_payout_id.startswith("po_")
    assert draft.available_before == available
    assert sim_payout_posts(simulator) == 1
    state = sim_state(simulator)
    assert Decimal(str(state["available"])) == available - Decimal("12.34567891")
    assert any(
        p["payout_id"] == draft.upstream_payout_id and Decimal(str(p["amount"])) == draft.amount
        for p in state["payouts"]
    )
    history = demo_client.get(reverse("earnings:payouts")).content.decode()
    assert draft.upstream_payout_id in history and BASE58_WALLET in history
    # The summary shows the new balance (the cache was dropped after the payout).
    summary = demo_client.get(reverse("earnings:summary")).context["summary"]
    assert summary.pending >= Decimal("12.34567891")


def test_double_submit_sends_one_payout(demo_client, simulator):
    draft = _prepare_and_confirm_page(demo_client)
    first = _confirm(demo_client, draft)
    second = _confirm(demo_client, draft)
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert sim_payout_posts(simulator) == 1
    assert PayoutRequest.objects.get(pk=draft.pk).state == State.PENDING


def test_replayed_post_after_success_sends_nothing(demo_client, simulator, client):
    draft = _prepare_and_confirm_page(demo_client)
    _confirm(demo_client, draft)
    # Later, the same POST again (browser resubmit, history, an attacker with the form).
    for _ in range(3):
        response = _confirm(demo_client, draft)
        assert response.status_code == 302
    assert sim_payout_posts(simulator) == 1


def test_confirm_token_of_another_user_is_404(demo_client, simulator, outsider, client):
    draft = _prepare_and_confirm_page(demo_client)
    other = type(demo_client)()
    other.force_login(outsider)
    mark_reauth(other)
    confirm_url = reverse("earnings:payout_confirm", args=[draft.confirm_token])
    assert other.get(confirm_url).status_code == 404
    response = other.post(
        reverse("earnings:payout_confirm", args=[draft.confirm_token]),
        {"confirm_token": draft.confirm_token},
    )
    assert response.status_code == 404
    assert other.get(reverse("earnings:payout_detail", args=[draft.pk])).status_code == 404
    assert sim_payout_posts(simulator) == 0


def test_a_newer_form_replaces_an_older_confirmation_in_another_tab(demo_client, simulator):
    old = _prepare_and_confirm_page(demo_client, "10")
    response = demo_client.post(
        reverse("earnings:payout"), {"amount": "11", "wallet_address": EVM_WALLET}
    )
    assert response.status_code == 302
    new = PayoutRequest.objects.get(state=State.DRAFT)
    assert _confirm(demo_client, old).status_code == 409
    _confirm(demo_client, new)
    assert sim_payout_posts(simulator) == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_confirms_send_one_payout(demo_client, simulator, demo_user):
    draft = _prepare_and_confirm_page(demo_client)
    # Latency keeps the first request in flight while the second arrives.
    sim_faults(simulator, latency_ms=300)
    barrier = threading.Barrier(4)
    results: list = []
    errors: list = []

    def confirm() -> None:
        try:
            barrier.wait(timeout=5)
            results.append(
                services.payout_confirm(user=demo_user, confirm_token=draft.confirm_token).state
            )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert len(results) == 4
    assert sim_payout_posts(simulator) == 1
    assert PayoutRequest.objects.get(pk=draft.pk).state == State.PENDING


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_over_http_send_one_payout(demo_client, simulator, demo_user):
    draft = _prepare_and_confirm_page(demo_client)
    sim_faults(simulator, latency_ms=300)
    barrier = threading.Barrier(3)
    statuses: list[int] = []

    def post() -> None:
        from django.test import Client

        c = Client()
        c.force_login(demo_user)
        mark_reauth(c)
        try:
            barrier.wait(timeout=5)
            statuses.append(_confirm(c, draft).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert statuses == [302, 302, 302]
    assert sim_payout_posts(simulator) == 1


def test_timeout_after_the_request_left_is_unknown_then_reconciled(
    demo_client, simulator, settings, demo_user
):
    settings.DCDN_READ_TIMEOUT = 0.5
    draft = _prepare_and_confirm_page(demo_client, "20")
    sim_faults(simulator, hang_after_commit_ms=1500, hang_after_commit_count=1)
    response = _confirm(demo_client, draft)
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.state == State.UNKNOWN
    assert sim_payout_posts(simulator) == 1
    # Confirming again, or opening the pages, never re-POSTs.
    _confirm(demo_client, draft)
    detail = demo_client.get(reverse("earnings:payout_detail", args=[draft.pk]))
    assert detail.status_code == 200
    assert sim_payout_posts(simulator) == 1

    draft = services.payout_reconcile(user=demo_user, payout=draft)
    assert draft.state == State.PENDING
    assert draft.reconciled_at is not None
    assert sim_payout_posts(simulator) == 1
    assert "Pending (reconciled)" in demo_client.get(reverse("earnings:payouts")).content.decode()


def test_history_page_reconciles_an_unknown_payout(demo_client, simulator, settings):
    settings.DCDN_READ_TIMEOUT = 0.5
    draft = _prepare_and_confirm_page(demo_client, "15")
    sim_faults(simulator, hang_after_commit_ms=1500, hang_after_commit_count=1)
    _confirm(demo_client, draft)
    assert PayoutRequest.objects.get(pk=draft.pk).state == State.UNKNOWN
    response = demo_client.get(reverse("earnings:payouts"))
    assert "Pending (reconciled)" in response.content.decode()
    assert sim_payout_posts(simulator) == 1


def test_unknown_payout_that_never_arrived_fails_after_the_grace_period(
    demo_client, simulator, settings, demo_user
):
    settings.EARNINGS_PAYOUT_RECONCILE_GRACE_SECONDS = 0
    draft = _prepare_and_confirm_page(demo_client, "15")
    sim_faults(simulator, down=True)  # a 503: DCDN may or may not have recorded it
    _confirm(demo_client, draft)
    draft.refresh_from_db()
    assert draft.state == State.UNKNOWN
    sim_faults(simulator, down=False)
    draft = services.payout_reconcile(user=demo_user, payout=draft)
    assert draft.state == State.FAILED
    assert "You may request it again" in draft.error_message
    assert sim_state(simulator)["payouts"][-1]["amount"] != 15


def test_simulator_refusal_marks_the_request_failed(demo_client, simulator, demo_user):
    draft = _prepare_and_confirm_page(demo_client, "20")
    # Between the form and the confirmation, most of the balance went elsewhere.
    other = PayoutRequest.objects.get(pk=draft.pk)
    other_amount = Decimal(str(sim_state(simulator)["available"])) - 15
    from accounts.services import dcdn_client_for

    dcdn_client_for(demo_user).request_payout(amount=other_amount, wallet_address=EVM_WALLET)
    _confirm(demo_client, other)
    other.refresh_from_db()
    assert other.state == State.FAILED
    assert "available" in other.error_message.lower()
    assert sim_payout_posts(simulator) == 2


def test_payout_pages_require_a_recent_password(client, demo_user, simulator):
    client.force_login(demo_user)
    response = client.get(reverse("earnings:payout"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:reauth"))
    response = client.post(
        reverse("earnings:payout"), {"amount": "20", "wallet_address": EVM_WALLET}
    )
    assert response.status_code == 302 and "reauth" in response["Location"]
    assert not PayoutRequest.objects.exists()


def test_summary_without_a_token_goes_to_the_token_page(logged_in, simulator):
    response = logged_in.get(reverse("earnings:summary"))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:token")


def test_summary_when_dcdn_is_down_shows_an_alert_not_a_500(demo_client, simulator, settings):
    settings.DCDN_RETRY_ATTEMPTS = 1
    sim_faults(simulator, down=True)
    response = demo_client.get(reverse("earnings:summary"))
    assert response.status_code == 200
    assert "not answering properly" in response.content.decode()
    assert selectors.earnings_home_card(user=response.wsgi_request.user) is None


def test_token_info_is_shared_between_users(demo_client, simulator, outsider):
    from accounts.services import credential_store_unverified

    demo_client.get(reverse("earnings:summary"))
    sim_add_account(simulator, "second-operator", ["node-us-east-5"])
    credential_store_unverified(user=outsider, token="second-operator")
    selectors.token_info_cached(user=outsider)
    assert sim_calls(simulator, "second-operator", "GET /earnings/token-info") == 0
    assert sim_calls(simulator, DEMO_TOKEN, "GET /earnings/token-info") == 1


def test_upstream_calls_along_the_whole_journey(demo_client, simulator, demo_user):
    """What each step costs upstream (the figures the README quotes)."""
    node_ids = sim_state(simulator)["nodes"]

    def step(action) -> int:
        before = sim_calls(simulator)
        action()
        return sim_calls(simulator) - before

    costs = {
        "home card": step(lambda: selectors.earnings_home_card(user=demo_user)),
        "home card, last 7 days": step(lambda: demo_client.get(reverse("earnings:home_recent"))),
        "summary": step(lambda: demo_client.get(reverse("earnings:summary"))),
        "nodes": step(
            lambda: [demo_client.get(reverse("earnings:node", args=[n])) for n in node_ids]
        ),
        "payout form": step(lambda: demo_client.get(reverse("earnings:payout"))),
        "payout prepared": step(
            lambda: demo_client.post(
                reverse("earnings:payout"), {"amount": "10", "wallet_address": EVM_WALLET}
            )
        ),
        "payout sent": step(
            lambda: _confirm(demo_client, PayoutRequest.objects.get(state=State.DRAFT))
        ),
        "payout status": step(
            lambda: demo_client.get(
                reverse("earnings:payout_detail", args=[PayoutRequest.objects.get().pk])
            )
        ),
        "history": step(lambda: demo_client.get(reverse("earnings:payouts"))),
        "summary again": step(lambda: demo_client.get(reverse("earnings:summary"))),
        "home card again": step(lambda: selectors.earnings_home_card(user=demo_user)),
    }
    assert costs == {
        "home card": 1,  # the summary
        "home card, last 7 days": len(node_ids),  # one history per node, shared with node pages
        "summary": 1,  # token info, then shared by every user
        "nodes": 0,
        "payout form": 0,
        "payout prepared": 1,  # a fresh summary to check the balance
        "payout sent": 1,  # the one POST
        "payout status": 1,  # the summary again (the payout changed it)
        "history": 0,
        "summary again": 0,
        "home card again": 0,
    }
    assert sim_payout_posts(simulator) == 1


def test_home_page_shows_the_earnings_card(demo_client, simulator):
    response = demo_client.get(reverse("home"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "earnings-card" in html
    available = Decimal(str(sim_state(simulator)["available"]))
    assert services.format_amount(available) in html
    assert reverse("earnings:summary") in html
    assert sim_calls(simulator, endpoint="GET /earnings/summary") == 1
