"""Fixtures for the earnings tests: users, a fake DCDN client patched at the boundary
(``dcdn_client_for`` as the earnings package sees it), and simulator helpers."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.reauth import SESSION_KEY
from panel.dcdn.types import (
    DailyEarning,
    EarningsSummary,
    NodeEarnings,
    NodeSummary,
    Payout,
    TokenInfo,
)

PASSWORD = "correct-horse-battery-staple-7"
DEMO_TOKEN = "demo-token"
EVM_WALLET = "0x" + "ab12" * 10
BASE58_WALLET = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("operator", "op@example.com", PASSWORD)


@pytest.fixture
def outsider(db):
    return get_user_model().objects.create_user("outsider", "out@example.com", PASSWORD)


def mark_reauth(client: Client) -> None:
    session = client.session
    session[SESSION_KEY] = int(time.time())
    session.save()


@pytest.fixture
def logged_in(client, user) -> Client:
    client.force_login(user)
    return client


@pytest.fixture
def reauthed(logged_in) -> Client:
    mark_reauth(logged_in)
    return logged_in


# --- a fake DCDN at the boundary ----------------------------------------------------------


def make_node(node_id: str = "node-eu-central-1", *, days: int = 30) -> NodeEarnings:
    start = date(2026, 10, 1)
    daily = [
        DailyEarning(
            date=start + timedelta(days=i),
            amount=Decimal("1.25") + Decimal(i) / 100,
            uptime_percent=Decimal("99.5") - (Decimal(i % 3) * 10),
            vps=Decimal("1.00"),
            cdn=Decimal("0.25"),
            gpu=Decimal(i) / 100,
        )
        for i in range(days)
    ]
    return NodeEarnings(
        node_id=node_id,
        region="eu-central",
        status="online",
        currency="DCDN",
        total_earned=Decimal("123.45678901"),
        daily=daily,
    )


def make_summary(
    *,
    available: str = "250.12345678",
    pending: str = "0",
    paid_out: str = "100",
    nodes: tuple[str, ...] = ("node-eu-central-1", "node-sa-east-2"),
) -> EarningsSummary:
    total = Decimal(available) + Decimal(pending) + Decimal(paid_out)
    return EarningsSummary(
        currency="DCDN",
        total_earned=total,
        available=Decimal(available),
        pending=Decimal(pending),
        paid_out=Decimal(paid_out),
        operator_share=Decimal("0.7"),
        nodes=[
            NodeSummary(
                node_id=n,
                region="eu-central",
                status="online" if i == 0 else "offline",
                earned_30d=Decimal("45.5"),
                uptime_30d_percent=Decimal("99.12"),
            )
            for i, n in enumerate(nodes)
        ],
    )


TOKEN_INFO = TokenInfo(
    symbol="DCDN",
    name="DCDN Token",
    price_usd=Decimal("0.0425"),
    total_supply=Decimal(1_000_000_000),
    circulating_supply=Decimal(312_500_000),
    distribution={
        "node_operators": Decimal("0.70"),
        "platform": Decimal("0.25"),
        "treasury": Decimal("0.05"),
    },
)


@dataclass
class FakeDcdn:
    """Stands in for DcdnClient. ``errors[method]`` is raised by that method (once if it is
    a list); ``calls`` records every call."""

    summary: EarningsSummary = field(default_factory=make_summary)
    nodes: dict[str, NodeEarnings] = field(
        default_factory=lambda: {n: make_node(n) for n in ("node-eu-central-1", "node-sa-east-2")}
    )
    errors: dict = field(default_factory=dict)
    calls: list = field(default_factory=list)
    payout_answer: Payout | None = None

    def _maybe_raise(self, name: str) -> None:
        error = self.errors.get(name)
        if isinstance(error, list):
            error = error.pop(0) if error else None
        if error is not None:
            raise error

    def count(self, name: str) -> int:
        return sum(1 for c in self.calls if c[0] == name)

    def earnings_summary(self) -> EarningsSummary:
        self.calls.append(("earnings_summary",))
        self._maybe_raise("earnings_summary")
        return self.summary

    def node_earnings(self, node_id: str) -> NodeEarnings:
        self.calls.append(("node_earnings", node_id))
        self._maybe_raise("node_earnings")
        from panel.dcdn.errors import NotFound

        if node_id not in self.nodes:
            raise NotFound("Node not found.")
        return self.nodes[node_id]

    def token_info(self) -> TokenInfo:
        self.calls.append(("token_info",))
        self._maybe_raise("token_info")
        return TOKEN_INFO

    def request_payout(self, *, amount, wallet_address, idempotency_key=None) -> Payout:
        self.calls.append(("request_payout", amount, wallet_address, idempotency_key))
        self._maybe_raise("request_payout")
        return self.payout_answer or Payout(
            payout_id=f"po_{len(self.calls):04d}",
            amount=amount,
            status="pending",
            requested_at=None,
        )


@pytest.fixture
def fake_dcdn(monkeypatch) -> FakeDcdn:
    fake = FakeDcdn()

    def client_for(user, *, max_wait=None):
        return fake

    monkeypatch.setattr("panel.earnings.selectors.dcdn_client_for", client_for)
    monkeypatch.setattr("panel.earnings.services.dcdn_client_for", client_for)
    return fake


# --- simulator helpers -------------------------------------------------------------------


def sim_request(simulator, method: str, path: str, body: dict | None = None) -> dict | None:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        simulator.base_url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"} if data else {},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw) if raw.strip() else None


def sim_calls(simulator, token: str = DEMO_TOKEN, endpoint: str | None = None) -> int:
    calls = sim_request(simulator, "GET", "/_sim/calls") or {}
    entry = (calls.get("by_token") or {}).get(token) or {}
    if endpoint is None:
        return int(entry.get("total", 0))
    return int((entry.get("endpoints") or {}).get(endpoint, 0))


def sim_payout_posts(simulator, token: str = DEMO_TOKEN) -> int:
    return sim_calls(simulator, token, "POST /earnings/payout")


def sim_state(simulator, token: str = DEMO_TOKEN) -> dict:
    return sim_request(simulator, "GET", f"/_sim/state?token={token}") or {}


def sim_faults(simulator, **faults) -> None:
    sim_request(simulator, "POST", "/_sim/faults", faults)


def sim_add_account(simulator, token: str, nodes: list[str], credits: int = 0) -> dict:
    return sim_request(
        simulator, "POST", "/_sim/accounts", {"token": token, "credits": credits, "nodes": nodes}
    )


@pytest.fixture
def demo_user(user, simulator):
    """The operator with the simulator's demo token (two nodes, earnings history)."""
    from accounts.services import credential_store_unverified

    credential_store_unverified(user=user, token=DEMO_TOKEN)
    return user


@pytest.fixture
def demo_client(client, demo_user) -> Client:
    client.force_login(demo_user)
    mark_reauth(client)
    return client
