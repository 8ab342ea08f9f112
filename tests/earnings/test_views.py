"""Earnings pages with the DCDN client patched at the boundary: rendering, errors that
never become a 500, re-authentication, ownership, CSP-safe markup."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.errors import TokenMissing
from panel.dcdn.errors import OutcomeUnknown, RateLimited, Unauthorized, Unavailable
from panel.earnings.models import PayoutRequest

from .conftest import EVM_WALLET, make_summary, mark_reauth

pytestmark = pytest.mark.django_db

State = PayoutRequest.State
INLINE_STYLE = re.compile(r"\sstyle\s*=", re.IGNORECASE)


def assert_csp_safe(html: str) -> None:
    assert not INLINE_STYLE.search(html), "inline style attribute"
    assert "<style" not in html
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "nonce=" in tag, tag
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"


def test_summary_page(logged_in, fake_dcdn):
    response = logged_in.get(reverse("earnings:summary"))
    assert response.status_code == 200
    html = response.content.decode()
    assert_csp_safe(html)
    assert "250.12345678" in html
    assert "$10.63" in html  # 250.12345678 DCDN at 0.0425 USD
    assert '<th scope="col">Node</th>' in html
    assert "<caption>" in html
    assert "badge-online" in html and "badge-offline" in html
    assert reverse("earnings:node", args=["node-eu-central-1"]) in html
    assert "1,000,000,000" in html
    assert "Figures just fetched from DCDN" in html


def test_summary_without_nodes(logged_in, fake_dcdn):
    fake_dcdn.summary = make_summary(nodes=())
    html = logged_in.get(reverse("earnings:summary")).content.decode()
    assert "You do not operate any nodes yet" in html
    assert "<table" not in html


def test_summary_survives_a_token_info_failure(logged_in, fake_dcdn):
    fake_dcdn.errors["token_info"] = Unavailable()
    response = logged_in.get(reverse("earnings:summary"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "250.12345678" in html and "not answering properly" in html


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (Unavailable(), "not answering properly"),
        (RateLimited(retry_after=12), "retrying in 12 s"),
    ],
)
def test_summary_errors_are_shown_not_raised(logged_in, fake_dcdn, error, text):
    fake_dcdn.errors["earnings_summary"] = error
    response = logged_in.get(reverse("earnings:summary"))
    assert response.status_code == 200
    assert text in response.content.decode()


@pytest.mark.parametrize("error", [TokenMissing(), Unauthorized()])
def test_token_problems_go_to_the_token_page(logged_in, fake_dcdn, error):
    fake_dcdn.errors["earnings_summary"] = error
    response = logged_in.get(reverse("earnings:summary"))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:token")


def test_pages_need_login(client, db):
    for url in (
        reverse("earnings:summary"),
        reverse("earnings:node", args=["n1"]),
        reverse("earnings:node_csv", args=["n1"]),
        reverse("earnings:payout"),
        reverse("earnings:payouts"),
        reverse("earnings:payout_detail", args=[1]),
        reverse("earnings:home_recent"),
    ):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_node_page_and_csv(logged_in, fake_dcdn):
    response = logged_in.get(reverse("earnings:node", args=["node-eu-central-1"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert_csp_safe(html)
    assert "<svg" in html and "<desc" in html
    assert html.count("<tr>") >= 31
    assert 'href="/earnings/nodes/node-eu-central-1/earnings.csv"' in html
    response = logged_in.get(reverse("earnings:node_csv", args=["node-eu-central-1"]))
    assert response["Content-Disposition"] == (
        'attachment; filename="node-eu-central-1-earnings.csv"'
    )
    lines = response.content.decode().splitlines()
    assert lines[1] == "2026-10-01,1.00,0.25,0,1.25,99.5"


def test_unknown_node_is_404(logged_in, fake_dcdn):
    assert logged_in.get(reverse("earnings:node", args=["nope"])).status_code == 404
    assert logged_in.get(reverse("earnings:node_csv", args=["nope"])).status_code == 404


def test_node_error_is_an_alert(logged_in, fake_dcdn):
    fake_dcdn.errors["node_earnings"] = Unavailable()
    response = logged_in.get(reverse("earnings:node", args=["node-eu-central-1"]))
    assert response.status_code == 200
    assert "not answering properly" in response.content.decode()


def test_home_recent_fragment(logged_in, fake_dcdn):
    response = logged_in.get(reverse("earnings:home_recent"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Last 7 days" in html and "<html" not in html
    assert fake_dcdn.count("node_earnings") == 2


def test_home_card_template(logged_in, fake_dcdn, user):
    from django.template.loader import render_to_string

    from panel.earnings.selectors import earnings_home_card

    card = earnings_home_card(user=user)
    html = render_to_string("earnings/_home_card.html", {"earnings_card": card})
    assert "250.12345678" in html
    assert 'hx-get="/earnings/home-card/recent/"' in html
    assert 'href="/earnings/"' in html
    logged_in.get(reverse("earnings:node", args=["node-eu-central-1"]))
    logged_in.get(reverse("earnings:node", args=["node-sa-east-2"]))
    card = earnings_home_card(user=user)
    html = render_to_string("earnings/_home_card.html", {"earnings_card": card})
    assert "hx-get" not in html and "Last 7 days" in html
    assert_csp_safe(html)


def test_home_card_shows_two_decimals_with_the_exact_amount_at_hand(logged_in, fake_dcdn, user):
    from django.template.loader import render_to_string

    from panel.earnings.selectors import earnings_home_card

    html = render_to_string(
        "earnings/_home_card.html", {"earnings_card": earnings_home_card(user=user)}
    )
    assert '<span aria-hidden="true" title="250.12345678">250.12</span>' in html
    assert '<span class="visually-hidden">250.12345678</span>' in html
    fragment = logged_in.get(reverse("earnings:home_recent")).content.decode()
    shown = re.search(r'<span aria-hidden="true" title="([\d.,]+)">([\d.,]+)</span>', fragment)
    assert shown and len(shown.group(2).split(".")[1]) == 2
    assert f'<span class="visually-hidden">{shown.group(1)}</span>' in fragment


# --- payout pages ----------------------------------------------------------------------------


def test_payout_form_needs_a_fresh_password(logged_in, fake_dcdn):
    response = logged_in.get(reverse("earnings:payout"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:reauth"))
    assert "next=%2Fearnings%2Fpayout%2F" in response["Location"]


def test_payout_form(reauthed, fake_dcdn):
    response = reauthed.get(reverse("earnings:payout"))
    assert response.status_code == 200
    html = response.content.decode()
    assert_csp_safe(html)
    assert '<label for="id_amount">Amount</label>' in html
    assert '<label for="id_wallet_address">Wallet address</label>' in html
    assert "data-single-submit" in html and "js/earnings.js" in html
    assert response["Cache-Control"].startswith("max-age=0")


def test_payout_form_with_a_low_balance_says_so(reauthed, fake_dcdn):
    fake_dcdn.summary = make_summary(available="3.5")
    html = reauthed.get(reverse("earnings:payout")).content.decode()
    assert "below the minimum payout" in html


def test_payout_prepare_error_from_dcdn_is_shown(reauthed, fake_dcdn):
    fake_dcdn.errors["earnings_summary"] = Unavailable()
    response = reauthed.post(
        reverse("earnings:payout"), {"amount": "20", "wallet_address": EVM_WALLET}
    )
    assert response.status_code == 503
    assert "not answering properly" in response.content.decode()
    assert not PayoutRequest.objects.exists()


def test_confirm_page_and_send(reauthed, fake_dcdn):
    response = reauthed.post(
        reverse("earnings:payout"), {"amount": "20", "wallet_address": EVM_WALLET}
    )
    draft = PayoutRequest.objects.get()
    url = reverse("earnings:payout_confirm", args=[draft.confirm_token])
    assert response["Location"] == url
    page = reauthed.get(url)
    html = page.content.decode()
    assert_csp_safe(html)
    assert "20.00 DCDN" in html and EVM_WALLET in html and "$0.85" in html
    assert "230.12345678" in html  # available after
    assert fake_dcdn.count("request_payout") == 0

    sent = reauthed.post(url, {"confirm_token": draft.confirm_token})
    assert sent["Location"] == reverse("earnings:payout_detail", args=[draft.pk])
    detail = reauthed.get(sent["Location"])
    html = detail.content.decode()
    assert "Payout of 20.00 DCDN requested." in html
    assert "badge-pending" in html
    # Replays land on the same page and say it was not sent again.
    again = reauthed.post(url, {"confirm_token": draft.confirm_token})
    assert again["Location"] == sent["Location"]
    assert "already submitted" in reauthed.get(again["Location"]).content.decode()
    assert reauthed.get(url)["Location"] == sent["Location"]
    assert fake_dcdn.count("request_payout") == 1


def test_confirm_with_a_mismatched_form_sends_nothing(reauthed, fake_dcdn):
    reauthed.post(reverse("earnings:payout"), {"amount": "20", "wallet_address": EVM_WALLET})
    draft = PayoutRequest.objects.get()
    url = reverse("earnings:payout_confirm", args=[draft.confirm_token])
    assert reauthed.post(url, {"confirm_token": "other"}).status_code == 400
    assert reauthed.post(url, {}).status_code == 400
    assert fake_dcdn.count("request_payout") == 0


def test_confirm_needs_a_fresh_password_too(logged_in, fake_dcdn):
    mark_reauth(logged_in)
    logged_in.post(reverse("earnings:payout"), {"amount": "20", "wallet_address": EVM_WALLET})
    draft = PayoutRequest.objects.get()
    session = logged_in.session
    session.pop("accounts_reauth_at")
    session.save()
    url = reverse("earnings:payout_confirm", args=[draft.confirm_token])
    response = logged_in.post(url, {"confirm_token": draft.confirm_token})
    assert response.status_code == 302 and "reauth" in response["Location"]
    assert fake_dcdn.count("request_payout") == 0


def test_confirm_busy_keeps_the_confirmation(reauthed, fake_dcdn):
    fake_dcdn.errors["request_payout"] = [RateLimited(retry_after=4)]
    reauthed.post(reverse("earnings:payout"), {"amount": "20", "wallet_address": EVM_WALLET})
    draft = PayoutRequest.objects.get()
    url = reverse("earnings:payout_confirm", args=[draft.confirm_token])
    response = reauthed.post(url, {"confirm_token": draft.confirm_token})
    assert response.status_code == 503
    html = response.content.decode()
    assert "retrying in 4 s" in html and "Nothing was sent" in html
    assert 'name="confirm_token"' in html
    assert reauthed.post(url, {"confirm_token": draft.confirm_token}).status_code == 302
    assert PayoutRequest.objects.get().state == State.PENDING


def test_unknown_outcome_detail_page_polls_and_offers_a_check(reauthed, fake_dcdn):
    fake_dcdn.errors["request_payout"] = [OutcomeUnknown()]
    reauthed.post(reverse("earnings:payout"), {"amount": "20", "wallet_address": EVM_WALLET})
    draft = PayoutRequest.objects.get()
    url = reverse("earnings:payout_confirm", args=[draft.confirm_token])
    detail_url = reauthed.post(url, {"confirm_token": draft.confirm_token})["Location"]
    html = reauthed.get(detail_url).content.decode()
    assert "badge-unknown" in html and "will not send it again" in html
    assert 'hx-trigger="every 15s"' in html and "Check now" in html
    fragment = reauthed.get(detail_url, headers={"HX-Request": "true"})
    assert "<html" not in fragment.content.decode()
    assert "HX-Request" in fragment["Vary"]
    fake_dcdn.summary = make_summary(pending="20")
    # Opening the page checked a moment ago; "Check now" waits a few seconds between reads.
    reauthed.post(detail_url)
    assert PayoutRequest.objects.get().state == State.UNKNOWN
    PayoutRequest.objects.update(last_checked_at=timezone.now() - timedelta(seconds=10))
    reauthed.post(detail_url)
    assert PayoutRequest.objects.get().state == State.PENDING
    assert fake_dcdn.count("request_payout") == 1


def test_payout_detail_of_another_user_is_404(client, outsider, reauthed, fake_dcdn):
    reauthed.post(reverse("earnings:payout"), {"amount": "20", "wallet_address": EVM_WALLET})
    draft = PayoutRequest.objects.get()
    client.force_login(outsider)
    assert client.get(reverse("earnings:payout_detail", args=[draft.pk])).status_code == 404
    assert client.post(reverse("earnings:payout_detail", args=[draft.pk])).status_code == 404


def test_history_lists_requests(reauthed, fake_dcdn):
    reauthed.post(reverse("earnings:payout"), {"amount": "20", "wallet_address": EVM_WALLET})
    draft = PayoutRequest.objects.get()
    reauthed.post(
        reverse("earnings:payout_confirm", args=[draft.confirm_token]),
        {"confirm_token": draft.confirm_token},
    )
    html = reauthed.get(reverse("earnings:payouts")).content.decode()
    assert_csp_safe(html)
    assert "20.00" in html and EVM_WALLET in html and "Pending" in html
    assert draft.confirm_token not in html


def test_empty_history(logged_in, fake_dcdn):
    html = logged_in.get(reverse("earnings:payouts")).content.decode()
    assert "No payouts yet" in html
    assert fake_dcdn.calls == []


def test_amount_formatting_filters():
    from panel.earnings.templatetags.earnings_format import (
        dcdn,
        dcdn_short,
        percent,
        usd,
        usd_of,
        whole,
    )

    assert dcdn(Decimal("1.10000000")) == "1.10"
    assert dcdn_short(Decimal("405.61911804")) == "405.61"  # never more than there is
    assert dcdn_short(Decimal("12345.5")) == "12,345.50"
    assert dcdn_short(None) == ""
    assert dcdn(None) == ""
    assert usd(Decimal("1234.5")) == "$1,234.50"
    assert usd_of(Decimal(100), Decimal("0.0425")) == "$4.25"
    assert percent(Decimal("0.70")) == "70%"
    assert whole(Decimal("312500000")) == "312,500,000"
