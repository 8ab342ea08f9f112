"""Contract tests: the client against the simulator over real HTTP, for every endpoint
and every error the contract names."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from decimal import Decimal

import pytest

from panel.dcdn.client import DcdnClient
from panel.dcdn.errors import (
    BadRequest,
    Conflict,
    InsufficientCredits,
    MalformedResponse,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from panel.dcdn.simulator.server import SimulatorServer
from panel.dcdn.types import CreatedInstance, Instance

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
WALLET = "0x" + "ab" * 20


def sim_post(sim, path: str, body: dict) -> None:
    request = urllib.request.Request(
        sim.base_url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


def sim_calls(sim, token: str = "demo-token") -> dict:
    with urllib.request.urlopen(sim.base_url + "/_sim/calls", timeout=5) as response:
        calls = json.load(response)
    return calls["by_token"].get(token, {"total": 0, "rate_limited": 0, "endpoints": {}})


def unique_key() -> str:
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture(autouse=True)
def _fast_retries(settings):
    settings.DCDN_RETRY_BACKOFF_SECONDS = 0.01


@pytest.fixture
def client(simulator):
    return DcdnClient(token="demo-token", budget_key=unique_key(), max_wait=5)


@pytest.fixture
def other_client(simulator):
    sim_post(simulator, "/_sim/accounts", {"token": "other-token", "credits": 50, "nodes": []})
    return DcdnClient(token="other-token", budget_key=unique_key())


def create(client: DcdnClient, name: str = "web-1", **overrides) -> CreatedInstance:
    order = {"plan": "nano", "image": "debian-12", "region": "eu-central", **overrides}
    return client.create_instance(name=name, **order)


def settle(client: DcdnClient, instance_id: str, status: str) -> Instance:
    """Poll sparingly (each poll costs budget) until the instance reaches ``status``."""
    for _ in range(20):
        time.sleep(0.25)
        instance = client.get_instance(instance_id)
        if instance.status == status:
            return instance
    raise AssertionError(f"instance never became {status}")


# --- catalog ---------------------------------------------------------------------------


def test_catalog_endpoints(client):
    plans = client.list_plans()
    assert {p.cpu_type for p in plans} == {"shared", "dedicated"}
    nano = next(p for p in plans if p.id == "nano")
    assert (nano.vcpus, nano.ram_mb, nano.price_usd) == (1, 512, Decimal("2.0"))
    assert len(client.list_images()) == 15
    regions = {r.id: r.nodes for r in client.list_regions()}
    assert regions == {"eu-central": 2, "eu-west": 1, "us-east": 1, "us-west": 1, "sa-east": 3}
    templates = client.list_templates()
    assert templates and all(t.plan and t.image for t in templates)


# --- instances -------------------------------------------------------------------------


def test_instance_lifecycle(client):
    assert client.list_instances() == []
    created = create(client, ssh_keys=[KEY])
    assert created.instance.status == "creating"
    assert created.root_password
    assert created.message
    instance_id = created.instance.id
    assert [i.id for i in client.list_instances()] == [instance_id]

    running = settle(client, instance_id, "running")
    assert running.usage is not None
    assert running.ip_address and running.ssh_port and running.node
    assert running.monthly_cost_usd == Decimal("2.0")

    assert client.stop_instance(instance_id).status == "stopping"
    settle(client, instance_id, "stopped")
    assert client.start_instance(instance_id).status == "starting"
    settle(client, instance_id, "running")
    assert client.restart_instance(instance_id).status == "restarting"
    settle(client, instance_id, "running")

    password = client.reset_password(instance_id)
    assert password and password != created.root_password
    assert client.add_ssh_key(instance_id, KEY) is None

    destroyed = client.destroy_instance(instance_id)
    assert destroyed.status == "destroyed"
    assert client.get_instance(instance_id).status == "destroying"
    time.sleep(0.3)
    with pytest.raises(NotFound):
        client.get_instance(instance_id)
    assert client.list_instances() == []


def test_redundant_instance_lists_both_nodes(client):
    created = create(client, name="ha-1", region="sa-east", redundant=True)
    assert created.instance.redundant
    assert len(created.instance.nodes) == 2
    assert created.instance.monthly_cost_usd == Decimal("4.0")


# --- 400 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"plan": "nope"}, "plan", "invalid_plan"),
        ({"image": "beos-5"}, "image", "invalid_image"),
        ({"region": "mars-1"}, "region", "invalid_region"),
        ({"name": "Bad_Name"}, "name", None),
        ({"cpu_type": "dedicated"}, "cpu_type", None),
        ({"region": "us-east", "redundant": True}, "redundant", None),
        ({"ssh_keys": ["ssh-rsa not-base64!"]}, "ssh_keys", None),
    ],
)
def test_invalid_create_is_bad_request_naming_the_field(client, overrides, field, code):
    with pytest.raises(BadRequest) as info:
        create(client, **{"name": "web-1", **overrides})
    assert info.value.field == field
    assert info.value.message
    if code:
        assert info.value.code == code


def test_invalid_ssh_key_on_an_instance_names_public_key(client):
    instance_id = create(client).instance.id
    with pytest.raises(BadRequest) as info:
        client.add_ssh_key(instance_id, "not a key")
    assert info.value.field == "public_key"


@pytest.mark.parametrize(
    ("amount", "wallet"),
    [(Decimal("5"), WALLET), (Decimal("0"), WALLET), (Decimal("1000000"), WALLET)],
)
def test_invalid_payout_amount_is_bad_request_on_amount(client, amount, wallet):
    with pytest.raises(BadRequest) as info:
        client.request_payout(amount=amount, wallet_address=wallet)
    assert info.value.field == "amount"


def test_malformed_wallet_is_bad_request_on_wallet_address(client):
    with pytest.raises(BadRequest) as info:
        client.request_payout(amount=Decimal("10"), wallet_address="my-wallet")
    assert info.value.field == "wallet_address"


# --- 401 on every endpoint -------------------------------------------------------------

ENDPOINTS = {
    "list_plans": lambda c: c.list_plans(),
    "list_images": lambda c: c.list_images(),
    "list_regions": lambda c: c.list_regions(),
    "list_templates": lambda c: c.list_templates(),
    "list_instances": lambda c: c.list_instances(),
    "get_instance": lambda c: c.get_instance("x"),
    "create_instance": lambda c: create(c),
    "start_instance": lambda c: c.start_instance("x"),
    "stop_instance": lambda c: c.stop_instance("x"),
    "restart_instance": lambda c: c.restart_instance("x"),
    "reset_password": lambda c: c.reset_password("x"),
    "add_ssh_key": lambda c: c.add_ssh_key("x", KEY),
    "destroy_instance": lambda c: c.destroy_instance("x"),
    "earnings_summary": lambda c: c.earnings_summary(),
    "node_earnings": lambda c: c.node_earnings("node-eu-central-1"),
    "request_payout": lambda c: c.request_payout(amount=Decimal(10), wallet_address=WALLET),
    "token_info": lambda c: c.token_info(),
}


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_an_unknown_token_is_unauthorized_everywhere(simulator, endpoint):
    hook_calls = []
    client = DcdnClient(
        token="wrong-token", budget_key=unique_key(), on_unauthorized=lambda: hook_calls.append(1)
    )
    with pytest.raises(Unauthorized) as info:
        ENDPOINTS[endpoint](client)
    assert info.value.code == "unauthorized"
    assert hook_calls == [1]
    assert sim_calls(simulator, "wrong-token")["total"] == 1


# --- 402, 404, 409 -----------------------------------------------------------------------


def test_a_plan_beyond_the_credits_is_insufficient_credits(client):
    with pytest.raises(InsufficientCredits) as info:
        create(client, plan="d-2xlarge", cpu_type="dedicated")
    assert info.value.code == "insufficient_credits"


def test_redundancy_doubles_the_credit_check(client):
    with pytest.raises(InsufficientCredits):
        create(client, plan="d-large", cpu_type="dedicated", redundant=True)


def test_a_missing_instance_is_not_found_for_every_instance_endpoint(client):
    for call in ("get_instance", "start_instance", "reset_password", "destroy_instance"):
        with pytest.raises(NotFound):
            ENDPOINTS[call](client)


def test_someone_elses_instance_is_not_found(client, other_client):
    theirs = create(other_client).instance.id
    with pytest.raises(NotFound):
        client.get_instance(theirs)
    with pytest.raises(NotFound):
        client.destroy_instance(theirs)
    assert other_client.get_instance(theirs).id == theirs


def test_someone_elses_node_is_not_found(other_client):
    with pytest.raises(NotFound):
        other_client.node_earnings("node-eu-central-1")


def test_a_name_in_use_is_conflict_on_name(client):
    create(client, name="dup")
    with pytest.raises(Conflict) as info:
        create(client, name="dup")
    assert (info.value.field, info.value.code) == ("name", "name_in_use")


def test_an_action_from_the_wrong_status_is_conflict(client):
    instance_id = create(client).instance.id
    settle(client, instance_id, "running")
    with pytest.raises(Conflict) as info:
        client.start_instance(instance_id)
    assert "running" in info.value.message
    assert info.value.field is None
    client.destroy_instance(instance_id)
    with pytest.raises(Conflict):
        client.destroy_instance(instance_id)


# --- 429 -------------------------------------------------------------------------------


class NoBudget:
    """Lets every request through, so the provider's own limit is what answers."""

    def __init__(self):
        self.penalties = []

    def acquire(self, key, *, max_wait=None):
        pass

    def penalize(self, key, seconds):
        self.penalties.append(seconds)


def test_the_providers_429_is_rate_limited_with_retry_after(settings):
    with SimulatorServer(port=0, rate_limit=3, rate_window_seconds=30) as sim:
        settings.DCDN_API_URL = sim.api_url
        budget = NoBudget()
        client = DcdnClient(token="demo-token", budget_key=unique_key(), budget=budget, max_wait=1)
        for _ in range(3):
            client.list_regions()
        with pytest.raises(RateLimited) as info:
            client.list_regions()
        assert 25 <= info.value.retry_after <= 30
        assert info.value.code == "rate_limited"
        assert budget.penalties == [info.value.retry_after]
        assert sim_calls(sim)["rate_limited"] == 1  # longer than max_wait: no retry


def test_after_a_429_the_shared_budget_holds_every_client_off(settings):
    with SimulatorServer(port=0, rate_limit=2, rate_window_seconds=30) as sim:
        settings.DCDN_API_URL = sim.api_url
        key, elsewhere = unique_key(), unique_key()
        DcdnClient(token="demo-token", budget_key=elsewhere).list_regions()
        DcdnClient(token="demo-token", budget_key=elsewhere).list_regions()
        first = DcdnClient(token="demo-token", budget_key=key, max_wait=0)
        with pytest.raises(RateLimited):
            first.list_regions()
        second = DcdnClient(token="demo-token", budget_key=key, max_wait=0)
        with pytest.raises(RateLimited) as info:
            second.list_plans()
        assert "budget" in info.value.message
        assert sim_calls(sim)["total"] == 3


# --- 5xx and other faults -----------------------------------------------------------------


def test_a_provider_that_is_down_is_unavailable_after_get_retries(client, simulator):
    sim_post(simulator, "/_sim/faults", {"down": True})
    with pytest.raises(Unavailable) as info:
        client.list_instances()
    assert info.value.status == 503
    assert sim_calls(simulator)["total"] == 3


def test_a_create_while_down_is_unavailable_and_sent_once(client, simulator):
    sim_post(simulator, "/_sim/faults", {"down": True})
    with pytest.raises(Unavailable) as info:
        create(client)
    assert not isinstance(info.value, OutcomeUnknown)
    assert sim_calls(simulator)["total"] == 1


def test_500s_are_unavailable(client, simulator):
    sim_post(simulator, "/_sim/faults", {"error_rate": 1.0})
    with pytest.raises(Unavailable) as info:
        client.earnings_summary()
    assert info.value.status == 500


def test_transient_500s_on_a_get_are_retried_through(client, simulator):
    # The simulator's fault dice are reseeded on reset, so this sequence is reproducible.
    sim_post(simulator, "/_sim/faults", {"error_rate": 0.3})
    for _ in range(5):
        assert len(client.list_images()) == 15


def test_malformed_answers_to_a_get_are_malformed_response(client, simulator):
    sim_post(simulator, "/_sim/faults", {"malformed_rate": 1.0})
    with pytest.raises(MalformedResponse):
        client.list_instances()
    assert sim_calls(simulator)["total"] == 3


def test_a_malformed_answer_to_a_create_is_outcome_unknown_and_it_did_happen(client, simulator):
    sim_post(simulator, "/_sim/faults", {"malformed_rate": 1.0})
    with pytest.raises(OutcomeUnknown):
        create(client, name="ghost")
    sim_post(simulator, "/_sim/faults", {"malformed_rate": 0})
    assert [i.name for i in client.list_instances()] == ["ghost"]


def test_a_create_whose_answer_hangs_is_outcome_unknown_and_sent_once(client, simulator, settings):
    settings.DCDN_READ_TIMEOUT = 0.3
    sim_post(simulator, "/_sim/faults", {"hang_after_commit_ms": 1000})
    with pytest.raises(OutcomeUnknown):
        create(client, name="slow-1")
    sim_post(simulator, "/_sim/faults", {"hang_after_commit_ms": 0})
    assert [i.name for i in client.list_instances()] == ["slow-1"]
    assert sim_calls(simulator)["endpoints"]["POST /instances"] == 1


def test_a_payout_whose_answer_hangs_is_outcome_unknown_and_the_key_finds_it(
    client, simulator, settings
):
    settings.DCDN_READ_TIMEOUT = 0.3
    sim_post(
        simulator,
        "/_sim/faults",
        {"hang_after_commit_ms": 1000, "hang_after_commit_count": 1},
    )
    with pytest.raises(OutcomeUnknown):
        client.request_payout(amount=Decimal("10"), wallet_address=WALLET, idempotency_key="k1")
    assert sim_calls(simulator)["endpoints"]["POST /earnings/payout"] == 1
    again = client.request_payout(amount=Decimal("10"), wallet_address=WALLET, idempotency_key="k1")
    assert client.earnings_summary().pending == again.amount == Decimal("10")


# --- earnings --------------------------------------------------------------------------


def test_earnings_summary_adds_up(client):
    summary = client.earnings_summary()
    assert summary.currency == "DCDN"
    assert summary.operator_share == Decimal("0.7")
    assert summary.total_earned == summary.available + summary.pending + summary.paid_out
    assert {n.node_id for n in summary.nodes} == {"node-eu-central-1", "node-sa-east-2"}


def test_node_earnings_has_thirty_days(client):
    node = client.node_earnings("node-eu-central-1")
    assert node.region == "eu-central"
    assert len(node.daily) == 30
    assert node.daily == sorted(node.daily, key=lambda d: d.date)
    day = node.daily[0]
    assert day.amount == day.vps + day.cdn + day.gpu


def test_payout_moves_the_exact_amount_from_available_to_pending(client):
    before = client.earnings_summary()
    amount = Decimal("10.12345678")
    payout = client.request_payout(amount=amount, wallet_address=WALLET, idempotency_key="p-1")
    assert (payout.amount, payout.status) == (amount, "pending")
    assert payout.payout_id and payout.requested_at
    after = client.earnings_summary()
    assert after.available == before.available - amount
    assert after.pending == before.pending + amount


def test_the_same_idempotency_key_pays_once(client):
    first = client.request_payout(amount=Decimal("11"), wallet_address=WALLET, idempotency_key="x")
    second = client.request_payout(amount=Decimal("11"), wallet_address=WALLET, idempotency_key="x")
    assert first.payout_id == second.payout_id
    assert client.earnings_summary().pending == Decimal("11")


def test_token_info(client):
    info = client.token_info()
    assert info.symbol == "DCDN"
    assert info.price_usd > 0
    assert sum(info.distribution.values()) == Decimal("1.00")
    assert info.distribution["node_operators"] == Decimal("0.70")
