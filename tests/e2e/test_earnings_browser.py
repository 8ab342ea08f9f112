"""The operator's journey in real Chromium against the simulator: summary -> node (chart
and table) -> payout (re-entered password, confirmation, a double click and a replayed
POST) -> history with one payout; the simulator counts exactly one upstream payout.
Accessibility scans of the summary, node and payout pages. Chromium, the logged-in page
and the axe helper come from tests/e2e/conftest.py."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

PASSWORD = "correct-horse-battery-staple-7"
WALLET = "0x" + "5aB3" * 10


def _sim(simulator, path: str) -> dict:
    with urllib.request.urlopen(simulator.base_url + path, timeout=10) as response:
        return json.loads(response.read())


def _payout_posts(simulator, token: str = "demo-token") -> int:
    calls = _sim(simulator, "/_sim/calls")
    endpoints = calls.get("by_token", {}).get(token, {}).get("endpoints", {})
    return int(endpoints.get("POST /earnings/payout", 0))


@pytest.fixture
def operator(transactional_db, simulator, settings):
    from django.contrib.auth import get_user_model

    from accounts.services import credential_store_unverified

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = get_user_model().objects.create_user("operator", "op@example.com", PASSWORD)
    credential_store_unverified(user=user, token="demo-token")
    return user


def test_summary_node_payout_journey(live_server, operator, simulator, logged_in_page, axe_check):
    from playwright.sync_api import expect

    from panel.earnings.models import PayoutRequest

    base = live_server.url
    page = logged_in_page("operator", PASSWORD)
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

    # Overview: the earnings card, whose week total arrives as an htmx fragment.
    page.goto(f"{base}/")
    card = page.locator("section.earnings-card")
    expect(card.get_by_role("heading", name="Earnings")).to_be_visible()
    expect(card).to_contain_text("Available")
    expect(card.locator(".stat").nth(1)).to_contain_text(re.compile(r"Last 7 days\s*[\d,.]+ DCDN"))

    # Summary: balances, the node table, the token panel, freshness.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Earnings").click()
    page.wait_for_url(re.compile(r"/earnings/$"))
    expect(page.get_by_role("heading", name="Earnings", level=1)).to_be_visible()
    expect(page.get_by_text("Available", exact=True).first).to_be_visible()
    nodes = page.get_by_role("table").filter(has_text="Uptime")
    expect(nodes.get_by_role("row")).to_have_count(3)  # header + two nodes
    expect(page.get_by_role("heading", name="The DCDN token")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Figures (just fetched|from \d+ s ago)"))).to_be_visible()
    summary_violations = axe_check(page, context="earnings summary")

    # Node: the chart (an image with a name and description) and the same data as a table.
    page.get_by_role("link", name="node-eu-central-1").click()
    page.wait_for_url(re.compile(r"/earnings/nodes/node-eu-central-1/$"))
    chart = page.get_by_role("img", name=re.compile("Daily earnings of node-eu-central-1"))
    expect(chart).to_be_visible()
    assert page.locator("svg rect.series-vps").count() >= 1
    expect(page.get_by_role("table").get_by_role("row")).to_have_count(32)  # head + 30 + foot
    expect(page.get_by_role("link", name=re.compile("Download CSV"))).to_be_visible()
    node_violations = axe_check(page, context="earnings node")

    # Payout: the form asks for the password again first.
    page.get_by_role("link", name="Earnings", exact=True).first.click()
    page.get_by_role("link", name="Request a payout").click()
    if "/accounts/reauth/" in page.url:
        page.fill("input[name=password]", PASSWORD)
        page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(re.compile(r"/earnings/payout/$"))
    expect(page.get_by_role("heading", name="Request a payout")).to_be_visible()
    payout_violations = axe_check(page, context="earnings payout")

    # Invalid input first: refused on the page, nothing sent.
    page.get_by_label("Amount").fill("5")
    page.get_by_label("Wallet address").fill(WALLET)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("The minimum payout is 10 DCDN.")).to_be_visible()
    expect(page.get_by_label("Amount")).to_have_attribute("aria-invalid", "true")
    assert _payout_posts(simulator) == 0

    page.get_by_label("Amount").fill("12.5")
    page.get_by_label("Wallet address").fill(WALLET)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/earnings/payout/confirm/[^/]+/$"))
    expect(page.get_by_text("12.50 DCDN").first).to_be_visible()
    expect(page.get_by_text(WALLET)).to_be_visible()
    confirm_url = page.url
    assert _payout_posts(simulator) == 0
    confirm_violations = axe_check(page, context="earnings confirm")

    # A double click on the send button.
    page.get_by_role("button", name=re.compile("Send payout")).dblclick()
    page.wait_for_url(re.compile(r"/earnings/payouts/\d+/$"))
    expect(page.get_by_text("Pending", exact=True)).to_be_visible()

    # The same confirmation POSTed again (a replay from the same session).
    token = PayoutRequest.objects.get().confirm_token
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    replay = page.request.post(
        confirm_url,
        form={"confirm_token": token, "csrfmiddlewaretoken": csrf},
        headers={"Referer": confirm_url},
        max_redirects=0,
    )
    assert replay.status == 302

    # History: one payout with its amount, wallet and status.
    page.goto(f"{base}/earnings/payouts/")
    rows = page.locator("table.payouts tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("12.50")
    expect(rows.first).to_contain_text(WALLET)
    expect(rows.first).to_contain_text("Pending")
    history_violations = axe_check(page, context="earnings history")

    assert _payout_posts(simulator) == 1
    assert PayoutRequest.objects.exclude(state="cancelled").count() == 1
    state = _sim(simulator, "/_sim/state?token=demo-token")
    assert sum(1 for p in state["payouts"] if str(p["amount"]) in ("12.5", "12.50")) == 1

    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors
    assert summary_violations == [], summary_violations
    assert node_violations == [], node_violations
    assert payout_violations == [], payout_violations
    assert confirm_violations == [], confirm_violations
    assert history_violations == [], history_violations
