"""The client over real HTTP against a tiny scripted server: headers, retries, backoff,
Retry-After, and what a non-GET does when its answer is lost."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from panel.dcdn.client import DcdnClient, _never_left
from panel.dcdn.errors import (
    BadRequest,
    MalformedResponse,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Unauthorized,
    Unavailable,
)

TOKEN = "secret-token-abc123"
PLANS = {
    "plans": [
        {
            "id": "vps-1",
            "vcpus": 1,
            "ram_mb": 1024,
            "disk_gb": 25,
            "bandwidth_tb": 1,
            "price_usd": 5.5,
            "cpu_type": "shared",
            "dedicated_ip": False,
        }
    ]
}
INSTANCE = {"id": "i-1", "name": "web", "status": "creating", "plan": "vps-1"}


@dataclass
class Reply:
    status: int = 200
    body: str | bytes = ""
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection without answering


@dataclass
class Seen:
    method: str
    path: str
    headers: dict
    body: bytes


class ScriptedServer:
    """Answers each request with the next scripted Reply (500 when the script is empty)."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.seen: list[Seen] = []
        script = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                script.seen.append(
                    Seen(self.command, self.path, dict(self.headers), self.rfile.read(length))
                )
                reply = script.replies.popleft() if script.replies else Reply(500, "empty")
                time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                payload = reply.body if isinstance(reply.body, bytes) else reply.body.encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client gave up (read timeout)
                    self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = handle_one

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/v1/compute"
        # A short poll interval keeps shutdown() (and so each test's teardown) quick.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)


def ok(data, status: int = 200, **headers) -> Reply:
    return Reply(status, json.dumps(data), {"Content-Type": "application/json", **headers})


def unique_key() -> str:
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture
def server(settings):
    srv = ScriptedServer()
    srv.thread.start()
    settings.DCDN_API_URL = srv.url
    settings.DCDN_EARNINGS_URL = srv.url
    settings.DCDN_RETRY_BACKOFF_SECONDS = 0.01
    settings.DCDN_RETRY_ATTEMPTS = 3
    settings.DCDN_READ_TIMEOUT = 0.5
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def client():
    return DcdnClient(token=TOKEN, budget_key=unique_key(), max_wait=5)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v1/compute"


# --- the request itself ----------------------------------------------------------------


def test_get_sends_bearer_token_and_parses_typed_results(server, client):
    server.script(ok(PLANS))
    plans = client.list_plans()
    assert plans[0].id == "vps-1"
    assert plans[0].price_usd == Decimal("5.5")
    seen = server.seen[0]
    assert (seen.method, seen.path) == ("GET", "/api/v1/compute/plans")
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Accept"] == "application/json"


def test_urls_are_read_from_settings_at_call_time(server, client, settings):
    other = ScriptedServer()
    other.thread.start()
    try:
        settings.DCDN_EARNINGS_URL = other.url
        other.script(ok({"symbol": "DCDN", "price_usd": 0.12}))
        assert client.token_info().price_usd == Decimal("0.12")
        assert other.seen[0].path == "/api/v1/compute/earnings/token-info"
        assert server.seen == []
    finally:
        other.httpd.shutdown()
        other.httpd.server_close()


def test_explicit_urls_override_settings(server):
    client = DcdnClient(token=TOKEN, budget_key=unique_key(), api_url=server.url + "/")
    server.script(ok({"regions": [{"id": "eu-central", "nodes": 2}]}))
    assert client.list_regions()[0].nodes == 2
    assert server.seen[0].path == "/api/v1/compute/regions"


def test_path_values_are_quoted(server, client):
    server.script(ok(INSTANCE))
    client.get_instance("../../earnings/summary")
    assert server.seen[0].path == "/api/v1/compute/instances/..%2F..%2Fearnings%2Fsummary"


@pytest.mark.parametrize("bad_id", ["", ".", ".."])
def test_an_empty_or_dot_id_is_not_found_without_a_request(server, settings, bad_id):
    settings.DCDN_RATE_LIMIT_PER_MINUTE = 1
    client = DcdnClient(token=TOKEN, budget_key=unique_key(), max_wait=0)
    with pytest.raises(NotFound):
        client.get_instance(bad_id)
    with pytest.raises(NotFound):
        client.destroy_instance(bad_id)
    assert server.seen == []
    server.script(ok(PLANS))
    client.list_plans()  # the budget's one slot was not spent on the refusals


def test_create_sends_json_body(server, client):
    server.script(ok({**INSTANCE, "root_password": "pw1", "message": "Creating"}, 201))
    created = client.create_instance(
        name="web", plan="vps-1", image="debian-12", region="eu-central", ssh_keys=["k1"]
    )
    assert created.instance.status == "creating"
    assert created.root_password == "pw1"
    seen = server.seen[0]
    assert seen.headers["Content-Type"] == "application/json"
    assert json.loads(seen.body) == {
        "name": "web",
        "plan": "vps-1",
        "image": "debian-12",
        "region": "eu-central",
        "cpu_type": "shared",
        "ssh_keys": ["k1"],
        "redundant": False,
    }


def test_payout_amount_keeps_exactly_the_decimals_digits(server, client):
    server.script(ok({"payout_id": "p1", "amount": 12.34567891, "status": "pending"}, 201))
    payout = client.request_payout(
        amount=Decimal("12.34567891"), wallet_address="0xabc", idempotency_key="op-7"
    )
    assert payout.amount == Decimal("12.34567891")
    seen = server.seen[0]
    assert b'"amount":12.34567891' in seen.body
    assert seen.headers["Idempotency-Key"] == "op-7"


def test_payout_of_a_large_amount_is_not_rounded_through_float(server, client):
    server.script(ok({"payout_id": "p1", "amount": "0", "status": "pending"}, 201))
    client.request_payout(amount=Decimal("123456789012.12345678"), wallet_address="0xabc")
    assert b'"amount":123456789012.12345678' in server.seen[0].body
    assert "Idempotency-Key" not in server.seen[0].headers


def test_payout_refuses_a_float_amount(server, client):
    with pytest.raises(TypeError):
        client.request_payout(amount=10.1, wallet_address="0xabc")
    assert server.seen == []


def test_amounts_in_answers_are_read_as_exact_decimals(server, client):
    server.script(
        ok({"currency": "DCDN", "total_earned": 0.1, "available": 1234567.12345678, "nodes": []})
    )
    summary = client.earnings_summary()
    assert summary.available == Decimal("1234567.12345678")
    assert summary.total_earned == Decimal("0.1")


def test_add_ssh_key_accepts_an_empty_answer(server, client):
    server.script(Reply(204))
    assert client.add_ssh_key("i-1", "ssh-ed25519 AAAA") is None
    assert json.loads(server.seen[0].body) == {"public_key": "ssh-ed25519 AAAA"}


def test_token_never_reaches_the_logs(server, client, caplog):
    caplog.set_level(logging.DEBUG)
    server.script(ok(PLANS), Reply(500, "boom"), ok(INSTANCE))
    client.list_plans()
    client.get_instance("i-1")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/instances/{id}" in text
    assert TOKEN not in text
    assert TOKEN not in repr(client)


# --- error translation over HTTP -------------------------------------------------------


def test_400_carries_message_code_and_field(server, client):
    server.script(ok({"error": "invalid_plan", "message": "Unknown plan 'zz'"}, 400))
    with pytest.raises(BadRequest) as info:
        client.create_instance(name="web", plan="zz", image="debian-12", region="eu-central")
    assert (info.value.code, info.value.field) == ("invalid_plan", "plan")
    assert info.value.message == "Unknown plan 'zz'"


def test_401_calls_on_unauthorized(server):
    calls = []
    client = DcdnClient(
        token=TOKEN, budget_key=unique_key(), on_unauthorized=lambda: calls.append(1)
    )
    server.script(ok({"error": "unauthorized", "message": "Invalid token"}, 401))
    with pytest.raises(Unauthorized):
        client.list_instances()
    assert calls == [1]
    assert len(server.seen) == 1  # a 4xx is not retried


def test_a_failing_on_unauthorized_hook_does_not_mask_the_error(server):
    def hook():
        raise RuntimeError("hook broke")

    client = DcdnClient(token=TOKEN, budget_key=unique_key(), on_unauthorized=hook)
    server.script(Reply(401, "Unauthorized"))
    with pytest.raises(Unauthorized):
        client.list_instances()


def test_404_on_get_is_not_retried(server, client):
    server.script(ok({"error": "not_found", "message": "No such instance"}, 404))
    with pytest.raises(NotFound):
        client.get_instance("nope")
    assert len(server.seen) == 1


# --- GET retries -----------------------------------------------------------------------


def test_get_is_retried_after_a_5xx(server, client):
    server.script(Reply(503, "busy"), ok(PLANS))
    assert client.list_plans()[0].id == "vps-1"
    assert len(server.seen) == 2


def test_get_is_retried_after_malformed_json(server, client):
    server.script(Reply(200, "{not json"), ok(PLANS))
    assert client.list_plans()[0].id == "vps-1"
    assert len(server.seen) == 2


def test_get_is_retried_after_a_body_of_the_wrong_shape(server, client):
    server.script(ok({"plans": "nope"}), ok({"plans": [{"no_id": 1}]}), ok(PLANS))
    assert client.list_plans()[0].id == "vps-1"
    assert len(server.seen) == 3


def test_get_gives_up_after_the_configured_attempts(server, client):
    server.script(Reply(500), Reply(500), Reply(500), ok(PLANS))
    with pytest.raises(Unavailable):
        client.list_plans()
    assert len(server.seen) == 3


def test_malformed_after_all_attempts_is_malformed_response(server, client, settings):
    settings.DCDN_RETRY_ATTEMPTS = 2
    server.script(Reply(200, "<html>"), Reply(200, '{"plans": 3}'))
    with pytest.raises(MalformedResponse):
        client.list_plans()


def test_get_is_retried_after_a_read_timeout(server, client, settings):
    settings.DCDN_READ_TIMEOUT = 0.2
    server.script(Reply(200, json.dumps(PLANS), delay=0.6), ok(PLANS))
    assert client.list_plans()[0].id == "vps-1"
    assert len(server.seen) == 2


def test_get_is_retried_after_a_dropped_connection(server, client):
    server.script(Reply(drop=True), ok(PLANS))
    assert client.list_plans()[0].id == "vps-1"


def test_get_to_a_closed_port_is_unavailable_after_retries(client, settings):
    settings.DCDN_API_URL = closed_port_url()
    settings.DCDN_RETRY_BACKOFF_SECONDS = 0.01
    with pytest.raises(Unavailable) as info:
        client.list_plans()
    assert not isinstance(info.value, OutcomeUnknown)


def test_backoff_grows_exponentially(server, client, settings):
    settings.DCDN_RETRY_BACKOFF_SECONDS = 0.2
    server.script(Reply(500), Reply(500), ok(PLANS))
    started = time.monotonic()
    client.list_plans()
    # 0.2 then 0.4, each with jitter between x0.5 and x1.5.
    assert 0.3 <= time.monotonic() - started <= 1.5


def test_backoff_never_sleeps_past_max_wait(server, settings):
    settings.DCDN_RETRY_BACKOFF_SECONDS = 10
    client = DcdnClient(token=TOKEN, budget_key=unique_key(), max_wait=1)
    server.script(Reply(500), ok(PLANS))
    started = time.monotonic()
    with pytest.raises(Unavailable):
        client.list_plans()
    assert time.monotonic() - started < 0.5
    assert len(server.seen) == 1


def test_429_retry_after_seconds_is_honoured(server, client):
    server.script(ok({"error": "rate_limited"}, 429, **{"Retry-After": "1"}), ok(PLANS))
    started = time.monotonic()
    assert client.list_plans()[0].id == "vps-1"
    assert 0.95 <= time.monotonic() - started < 2.5
    assert len(server.seen) == 2


def test_429_retry_after_http_date_is_honoured(server, client):
    # HTTP dates have whole seconds: 2 s ahead means a wait between 1 and 2 s.
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    server.script(Reply(429, "slow down", {"Retry-After": when}), ok(PLANS))
    started = time.monotonic()
    client.list_plans()
    assert 0.9 <= time.monotonic() - started < 3


def test_429_longer_than_max_wait_raises_at_once_and_holds_off_later_calls(server):
    client = DcdnClient(token=TOKEN, budget_key=unique_key(), max_wait=1)
    server.script(Reply(429, "slow", {"Retry-After": "30"}), ok(PLANS))
    started = time.monotonic()
    with pytest.raises(RateLimited) as info:
        client.list_plans()
    assert time.monotonic() - started < 0.5
    assert info.value.retry_after == 30
    # The penalty reaches every client of this budget key: nothing more is sent.
    other = DcdnClient(token=TOKEN, budget_key=client._budget_key, max_wait=0)
    with pytest.raises(RateLimited) as again:
        other.list_plans()
    assert 28 < again.value.retry_after <= 30
    assert len(server.seen) == 1


def test_429_without_retry_after_waits_the_default(server):
    client = DcdnClient(token=TOKEN, budget_key=unique_key(), max_wait=1)
    server.script(Reply(429, ""))
    with pytest.raises(RateLimited) as info:
        client.list_plans()
    assert info.value.retry_after == 5


def test_budget_is_acquired_before_every_attempt(server):
    class CountingBudget:
        def __init__(self):
            self.acquired = []
            self.penalties = []

        def acquire(self, key, *, max_wait=None):
            self.acquired.append(key)

        def penalize(self, key, seconds):
            self.penalties.append(seconds)

    budget = CountingBudget()
    client = DcdnClient(token=TOKEN, budget_key="acct", budget=budget)
    server.script(Reply(500), Reply(429, "", {"Retry-After": "0.1"}), ok(PLANS))
    client.list_plans()
    assert budget.acquired == ["acct"] * 3
    assert budget.penalties == [0.1]


# --- non-GET: sent at most once ----------------------------------------------------------


def create(client):
    return client.create_instance(name="web", plan="vps-1", image="debian-12", region="eu-1")


def test_post_is_not_retried_after_a_5xx(server, client):
    server.script(Reply(500, "boom"), ok(INSTANCE))
    with pytest.raises(Unavailable) as info:
        create(client)
    assert not isinstance(info.value, OutcomeUnknown)
    assert len(server.seen) == 1


def test_post_is_not_retried_after_a_429(server, client):
    server.script(Reply(429, "", {"Retry-After": "0.1"}), ok(INSTANCE))
    with pytest.raises(RateLimited):
        client.start_instance("i-1")
    assert len(server.seen) == 1


def test_delete_is_not_retried(server, client):
    server.script(Reply(502), ok({"status": "destroyed"}))
    with pytest.raises(Unavailable):
        client.destroy_instance("i-1")
    assert len(server.seen) == 1


def test_create_read_timeout_is_outcome_unknown(server, client, settings):
    settings.DCDN_READ_TIMEOUT = 0.2
    server.script(Reply(201, json.dumps(INSTANCE), delay=0.6))
    with pytest.raises(OutcomeUnknown):
        create(client)
    time.sleep(0.5)
    assert len(server.seen) == 1


def test_payout_read_timeout_is_outcome_unknown(server, client, settings):
    settings.DCDN_READ_TIMEOUT = 0.2
    server.script(Reply(201, "{}", delay=0.6))
    with pytest.raises(OutcomeUnknown):
        client.request_payout(amount=Decimal("10"), wallet_address="0xabc")
    time.sleep(0.5)
    assert len(server.seen) == 1


def test_payout_dropped_connection_is_outcome_unknown(server, client):
    server.script(Reply(drop=True), ok({}))
    with pytest.raises(OutcomeUnknown):
        client.request_payout(amount=Decimal("10"), wallet_address="0xabc")
    assert len(server.seen) == 1


def test_create_with_an_unreadable_2xx_answer_is_outcome_unknown(server, client):
    server.script(Reply(201, "{garbled"))
    with pytest.raises(OutcomeUnknown):
        create(client)


def test_post_that_cannot_connect_is_unavailable_not_unknown(client, settings):
    settings.DCDN_API_URL = closed_port_url()
    with pytest.raises(Unavailable) as info:
        create(client)
    assert not isinstance(info.value, OutcomeUnknown)


def test_post_refused_by_the_budget_is_rate_limited_and_not_sent(server, settings):
    settings.DCDN_RATE_LIMIT_PER_MINUTE = 1
    client = DcdnClient(token=TOKEN, budget_key=unique_key(), max_wait=0)
    server.script(ok(INSTANCE), ok(INSTANCE))
    client.start_instance("i-1")
    with pytest.raises(RateLimited) as info:
        client.stop_instance("i-1")
    assert info.value.retry_after > 50
    assert "budget" in info.value.message
    assert len(server.seen) == 1


def test_connection_failures_that_never_left_are_told_apart():
    assert _never_left(requests.ConnectTimeout())
    assert not _never_left(requests.ConnectionError("Connection aborted."))


def test_without_a_budget_key_clients_of_one_token_share_a_budget_that_hides_the_token(server):
    class RecordingBudget:
        def __init__(self):
            self.keys = []

        def acquire(self, key, *, max_wait=None):
            self.keys.append(key)

        def penalize(self, key, seconds):
            pass

    budget = RecordingBudget()
    server.script(*[ok({"regions": []})] * 3)
    for token in (TOKEN, TOKEN, "another-token"):
        DcdnClient(token=token, budget=budget).list_regions()
    first, second, third = budget.keys
    assert first == second != third
    assert TOKEN not in first and first.startswith("token:")
