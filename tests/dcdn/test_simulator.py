"""The DCDN simulator, over real HTTP, against every rule of shared/dcdn-api.md."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest
import requests

from panel.dcdn.simulator import server as server_module
from panel.dcdn.simulator.server import SimulatorServer

ROOT = Path(__file__).resolve().parents[2]
DEMO = "demo-token"
ED25519 = "ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"k" * 32).decode()
EVM_WALLET = "0x" + "ab12" * 10
BASE58_WALLET = "7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV"  # 43 characters


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def decimal_json(response: requests.Response):
    return json.loads(response.text, parse_float=Decimal)


class Api:
    """A client for one token, speaking to the simulator's API base."""

    def __init__(self, server: SimulatorServer, token: str | None = DEMO) -> None:
        self.base = server.api_url
        self.token = token
        self.session = requests.Session()

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.base + path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.call("POST", path, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        return self.call("DELETE", path, **kwargs)

    def create(self, name: str = "web-1", *, timeout: float = 10, **fields) -> requests.Response:
        body = {"name": name, "plan": "s-small", "image": "ubuntu-22.04", "region": "eu-central"}
        body.update(fields)
        return self.post("/instances", json=body, timeout=timeout)

    def create_ok(self, name: str = "web-1", **fields) -> dict:
        response = self.create(name, **fields)
        assert response.status_code == 201, response.text
        return response.json()

    def wait_for_status(self, instance_id: str, status: str, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            response = self.get(f"/instances/{instance_id}")
            assert response.status_code == 200, response.text
            if response.json()["status"] == status:
                return response.json()
            assert time.monotonic() < deadline, f"never became {status}: {response.json()}"
            time.sleep(0.1)

    def wait_until_gone(self, instance_id: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.get(f"/instances/{instance_id}").status_code != 404:
            assert time.monotonic() < deadline, "the instance was never destroyed"
            time.sleep(0.1)

    def running(self, name: str = "web-1", **fields) -> dict:
        return self.wait_for_status(self.create_ok(name, **fields)["id"], "running")


def control(server: SimulatorServer, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, server.base_url + path, timeout=10, **kwargs)


def add_account(server: SimulatorServer, token: str, credits=100, nodes=()) -> Api:
    response = control(
        server, "POST", "/_sim/accounts", json={"token": token, "credits": credits, "nodes": nodes}
    )
    assert response.status_code == 201, response.text
    return Api(server, token)


def set_faults(server: SimulatorServer, **faults) -> None:
    response = control(server, "POST", "/_sim/faults", json=faults)
    assert response.status_code == 204, response.text


def sim_state(server: SimulatorServer, token: str = DEMO) -> dict:
    response = control(server, "GET", "/_sim/state", params={"token": token})
    assert response.status_code == 200, response.text
    return decimal_json(response)


def assert_error(response: requests.Response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    if field is not None:
        assert body["field"] == field
    return body


def decimal_places(value: Decimal) -> int:
    return max(0, -value.normalize().as_tuple().exponent)


@pytest.fixture
def api(simulator) -> Api:
    return Api(simulator)


@pytest.fixture
def own_server():
    """Start a private simulator with the given settings; every one is stopped afterwards."""
    started: list[SimulatorServer] = []

    def start(**options) -> SimulatorServer:
        options = {
            "create_seconds": 0.2,
            "destroy_seconds": 0.2,
            "transition_seconds": 0.2,
            **options,
        }
        server = SimulatorServer(port=0, **options)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# --------------------------------------------------------------------------------------
# The programmatic interface
# --------------------------------------------------------------------------------------


def test_server_reports_its_urls_on_a_free_loopback_port(simulator):
    assert simulator.port > 0
    assert simulator.base_url == f"http://127.0.0.1:{simulator.port}"
    assert simulator.api_url == f"http://127.0.0.1:{simulator.port}/api/v1/compute"


def test_stop_closes_the_port_and_a_server_refuses_a_non_loopback_host(own_server):
    server = own_server()
    url = server.api_url + "/plans"
    assert requests.get(url, headers={"Authorization": f"Bearer {DEMO}"}, timeout=5).ok
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)
    with pytest.raises(ValueError):
        SimulatorServer(host="0.0.0.0")


def test_reset_returns_to_the_seeded_state(simulator, api):
    api.create_ok()
    add_account(simulator, "other-token")
    set_faults(simulator, latency_ms=5)
    simulator.reset()
    assert control(simulator, "GET", "/_sim/calls").json()["total"] == 0
    assert control(simulator, "GET", "/_sim/faults").json()["latency_ms"] == 0
    assert api.get("/instances").json() == {"instances": []}
    assert Api(simulator, "other-token").get("/plans").status_code == 401


def test_state_is_inspectable_from_tests(simulator, api):
    created = api.create_ok()
    assert created["id"] in simulator.state.instances
    assert DEMO in simulator.state.accounts


# --------------------------------------------------------------------------------------
# Transport: auth, errors, routing
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Token {DEMO}"}],
    ids=["missing", "unknown", "wrong-scheme"],
)
def test_missing_or_unknown_token_is_401(simulator, headers):
    response = requests.get(simulator.api_url + "/plans", headers=headers, timeout=5)
    assert_error(response, 401)


def test_unknown_path_is_a_json_404_and_wrong_method_a_json_405(api, simulator):
    assert_error(api.get("/nothing-here"), 404)
    assert_error(api.get("/instances/abc/explode"), 404)
    assert_error(Api(simulator, None).get("/nothing-here"), 404)
    assert_error(requests.get(simulator.base_url + "/elsewhere", timeout=5), 404)
    response = api.delete("/plans")
    assert_error(response, 405)
    assert response.headers["Allow"] == "GET"
    assert_error(api.call("PUT", "/instances"), 405)


def test_responses_are_json(api):
    response = api.get("/plans")
    assert response.headers["Content-Type"] == "application/json"


# --------------------------------------------------------------------------------------
# Catalog
# --------------------------------------------------------------------------------------


def test_plans_list_shared_and_dedicated_with_the_reference_plans(api):
    plans = {plan["id"]: plan for plan in decimal_json(api.get("/plans"))["plans"]}
    assert plans["nano"] == {
        "id": "nano",
        "vcpus": 1,
        "ram_mb": 512,
        "disk_gb": 10,
        "bandwidth_tb": Decimal("0.5"),
        "price_usd": Decimal("2.0"),
        "cpu_type": "shared",
        "dedicated_ip": False,
    }
    assert plans["s-small"]["price_usd"] == Decimal("5.0")
    assert plans["s-small"]["cpu_type"] == "shared"
    dedicated = [p for p in plans.values() if p["cpu_type"] == "dedicated"]
    assert len(dedicated) >= 3
    assert any(p["price_usd"] > 100 for p in dedicated), "402 must be reachable with 100 credits"
    assert any(p["price_usd"] <= 100 for p in dedicated), "some dedicated plan must be creatable"
    for plan in plans.values():
        assert plan["cpu_type"] in {"shared", "dedicated"}
        assert isinstance(plan["dedicated_ip"], bool)


def test_prices_are_json_numbers(api):
    assert '"price_usd": 2.0' in api.get("/plans").text


def test_images_are_fifteen(api):
    images = api.get("/images").json()["images"]
    assert len(images) == 15
    assert len({image["id"] for image in images}) == 15
    assert {"id": "ubuntu-22.04", "name": "Ubuntu 22.04 LTS"} in images
    assert {"id": "debian-12", "name": "Debian 12 (Bookworm)"} in images


def test_regions_have_the_reference_node_counts(api):
    assert api.get("/regions").json() == {
        "regions": [
            {"id": "eu-central", "nodes": 2},
            {"id": "eu-west", "nodes": 1},
            {"id": "us-east", "nodes": 1},
            {"id": "us-west", "nodes": 1},
            {"id": "sa-east", "nodes": 3},
        ]
    }


def test_templates_reference_existing_images_and_plans_of_their_cpu_type(api):
    templates = api.get("/templates").json()["templates"]
    plans = {plan["id"]: plan for plan in api.get("/plans").json()["plans"]}
    images = {image["id"] for image in api.get("/images").json()["images"]}
    assert templates
    for template in templates:
        assert set(template) == {"id", "name", "description", "image", "plan", "cpu_type"}
        assert template["image"] in images
        assert plans[template["plan"]]["cpu_type"] == template["cpu_type"]


def test_the_catalog_is_the_same_for_every_account(simulator, api):
    other = add_account(simulator, "other-token")
    for path in ("/plans", "/images", "/regions", "/templates"):
        assert api.get(path).text == other.get(path).text


# --------------------------------------------------------------------------------------
# Creating instances
# --------------------------------------------------------------------------------------


def test_create_answers_201_with_the_instance_password_and_message(api):
    response = api.create("my-server", ssh_keys=[ED25519])
    assert response.status_code == 201
    created = decimal_json(response)
    assert uuid.UUID(created["id"]).version == 4
    assert created["status"] == "creating"
    assert created["name"] == "my-server"
    assert (created["plan"], created["image"], created["region"]) == (
        "s-small",
        "ubuntu-22.04",
        "eu-central",
    )
    assert created["cpu_type"] == "shared"
    assert created["redundant"] is False
    assert created["node"] in {"node-eu-central-1", "node-eu-central-2"}
    assert "nodes" not in created
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", created["ip_address"])
    assert isinstance(created["ssh_port"], int)
    assert created["ssh_command"] == f"ssh root@{created['ip_address']} -p {created['ssh_port']}"
    assert created["hostname"] == "my-server.compute.dcdncloud.com"
    assert created["monthly_cost_usd"] == Decimal("5.0")
    assert datetime.fromisoformat(created["created_at"].replace("Z", "+00:00")).utcoffset() == (
        timedelta(0)
    )
    assert isinstance(created["root_password"], str) and len(created["root_password"]) >= 12
    assert created["message"]


def test_redundant_instance_runs_on_two_distinct_nodes_of_its_region_at_twice_the_price(api):
    created = decimal_json(api.create("ha-1", region="sa-east", redundant=True))
    assert created["redundant"] is True
    assert len(created["nodes"]) == 2
    assert len(set(created["nodes"])) == 2
    assert all(node.startswith("node-sa-east-") for node in created["nodes"])
    assert created["node"] in created["nodes"]
    assert created["monthly_cost_usd"] == Decimal("10.0")


def test_dedicated_plan_is_created_with_dedicated_cpu_type(api):
    created = api.create_ok("db-1", plan="d-small", cpu_type="dedicated")
    assert created["cpu_type"] == "dedicated"


def test_the_root_password_is_never_shown_again(api):
    created = api.create_ok()
    password = created["root_password"]
    instance_id = created["id"]
    api.wait_for_status(instance_id, "running")
    seen = [
        api.get("/instances").text,
        api.get(f"/instances/{instance_id}").text,
        api.post(f"/instances/{instance_id}/stop").text,
    ]
    api.wait_for_status(instance_id, "stopped")
    seen.append(api.post(f"/instances/{instance_id}/start").text)
    for text in seen:
        assert password not in text
        assert "root_password" not in text


@pytest.mark.parametrize("name", ["a", "web-1", "0abc9", "a" * 63, "a-b-c"])
def test_valid_names_are_accepted(api, name):
    assert api.create(name).status_code == 201


@pytest.mark.parametrize(
    "name", ["", "-web", "web-", "Web", "web_1", "web.1", "a" * 64, "web 1", "wéb", "web\n"]
)
def test_invalid_names_are_400(api, name):
    assert_error(api.create(name), 400, field="name")


def test_a_name_in_use_is_409_even_while_destroying_and_free_once_gone(own_server):
    api = Api(own_server(destroy_seconds=1.0))
    first = api.create_ok("web-1")
    assert_error(api.create("web-1"), 409, field="name")
    assert api.delete(f"/instances/{first['id']}").status_code == 200
    assert_error(api.create("web-1"), 409, field="name")
    api.wait_until_gone(first["id"])
    assert api.create("web-1").status_code == 201


def test_names_are_unique_per_user_not_globally(simulator, api):
    api.create_ok("web-1")
    other = add_account(simulator, "other-token")
    assert other.create("web-1").status_code == 201


@pytest.mark.parametrize(
    ("field", "value"),
    [("plan", "mega"), ("image", "windows-95"), ("region", "moon-1")],
)
def test_unknown_plan_image_or_region_is_400(api, field, value):
    assert_error(api.create(**{field: value}), 400, field=field)


@pytest.mark.parametrize("field", ["name", "plan", "image", "region"])
def test_a_missing_required_field_is_400(api, field):
    body = {"name": "web-1", "plan": "s-small", "image": "ubuntu-22.04", "region": "eu-central"}
    del body[field]
    assert_error(api.post("/instances", json=body), 400, field=field)


def test_cpu_type_must_be_known_and_match_the_plan(api):
    assert_error(api.create(cpu_type="turbo"), 400, field="cpu_type")
    assert_error(api.create(cpu_type="dedicated"), 400, field="cpu_type")
    # Absent means "shared", which a dedicated plan does not match.
    assert_error(api.create(plan="d-small"), 400, field="cpu_type")
    assert api.create("web-2", cpu_type="shared").status_code == 201


@pytest.mark.parametrize("region", ["eu-west", "us-east", "us-west"])
def test_redundant_needs_a_region_with_two_nodes(api, region):
    assert_error(api.create(region=region, redundant=True), 400, field="redundant")


@pytest.mark.parametrize(
    "key_type",
    ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"],
)
def test_each_accepted_ssh_key_type_is_accepted(api, key_type):
    key = f"{key_type} {base64.b64encode(b'key material').decode()} alice@laptop"
    assert api.create(ssh_keys=[key]).status_code == 201


@pytest.mark.parametrize(
    "key",
    [
        "ssh-dss AAAAB3NzaC1kc3M=",
        "ssh-ed25519 not*base64",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5A",
        "ssh-ed25519",
        "AAAAC3NzaC1lZDI1NTE5",
        "",
        42,
        ED25519 + "\n" + ED25519,
    ],
    ids=["dss", "not-base64", "bad-padding", "no-data", "no-type", "empty", "number", "two"],
)
def test_an_invalid_ssh_key_is_400(api, key):
    assert_error(api.create(ssh_keys=[ED25519, key]), 400, field="ssh_keys")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", 5),
        ("plan", ["s-small"]),
        ("image", None),
        ("region", {"id": "eu-central"}),
        ("cpu_type", 1),
        ("redundant", "yes"),
        ("redundant", 1),
        ("ssh_keys", ED25519),
    ],
)
def test_wrong_field_types_are_400(api, field, value):
    assert_error(api.create(**{field: value}), 400, field=field)


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"", b'"text"', b'{"name": NaN}'])
def test_a_malformed_body_is_400(api, body):
    response = api.post("/instances", data=body, headers={"Content-Type": "application/json"})
    assert_error(response, 400)


def test_unknown_extra_fields_are_ignored(api):
    assert api.create(template="wordpress", color="blue").status_code == 201


def test_creating_needs_credits_for_the_monthly_price_but_does_not_spend_them(simulator, api):
    assert_error(api.create(plan="d-xlarge", cpu_type="dedicated"), 402)
    # d-large costs 96: affordable once, not twice as a redundant pair.
    assert_error(api.create(plan="d-large", cpu_type="dedicated", redundant=True), 402)
    assert api.create("db-1", plan="d-large", cpu_type="dedicated").status_code == 201
    assert api.create("db-2", plan="d-large", cpu_type="dedicated").status_code == 201
    assert sim_state(simulator)["credits"] == 100


def test_a_balance_equal_to_the_price_is_enough(simulator):
    exact = add_account(simulator, "exact-token", credits=5)
    assert exact.create(plan="s-small").status_code == 201
    poor = add_account(simulator, "poor-token", credits=4.99)
    assert_error(poor.create(plan="s-small"), 402)


# --------------------------------------------------------------------------------------
# Reading instances; isolation between accounts
# --------------------------------------------------------------------------------------


def test_list_has_only_the_callers_instances(simulator, api):
    mine = api.create_ok("mine")
    other = add_account(simulator, "other-token")
    theirs = other.create_ok("theirs")
    assert [i["id"] for i in api.get("/instances").json()["instances"]] == [mine["id"]]
    assert [i["id"] for i in other.get("/instances").json()["instances"]] == [theirs["id"]]


def test_someone_elses_instance_is_404_exactly_like_a_missing_one(simulator, api):
    other = add_account(simulator, "other-token")
    theirs = other.create_ok("theirs")["id"]
    missing = str(uuid.uuid4())
    for method, suffix, body in [
        ("GET", "", None),
        ("DELETE", "", None),
        ("POST", "/start", None),
        ("POST", "/stop", None),
        ("POST", "/restart", None),
        ("POST", "/reset-password", None),
        ("POST", "/ssh-key", {"public_key": ED25519}),
    ]:
        foreign = api.call(method, f"/instances/{theirs}{suffix}", json=body)
        absent = api.call(method, f"/instances/{missing}{suffix}", json=body)
        assert_error(foreign, 404)
        assert foreign.json() == absent.json()
    assert other.get(f"/instances/{theirs}").json()["status"] in {"creating", "running"}


def test_detail_includes_deterministic_usage(api):
    created = api.running()
    first = decimal_json(api.get(f"/instances/{created['id']}"))
    second = decimal_json(api.get(f"/instances/{created['id']}"))
    usage = first["usage"]
    assert set(usage) == {"cpu_percent", "ram_used_mb", "disk_used_gb", "bandwidth_used_gb"}
    assert usage == second["usage"]
    assert 0 < usage["cpu_percent"] <= 100
    assert 0 < usage["ram_used_mb"] <= 2048
    assert 0 < usage["disk_used_gb"] <= 40
    assert usage["bandwidth_used_gb"] >= 0
    assert "usage" not in api.get("/instances").json()["instances"][0]


def test_a_stopped_instance_uses_no_cpu(api):
    instance_id = api.running()["id"]
    api.post(f"/instances/{instance_id}/stop")
    stopped = api.wait_for_status(instance_id, "stopped")
    assert stopped["usage"]["cpu_percent"] == 0


# --------------------------------------------------------------------------------------
# The status machine
# --------------------------------------------------------------------------------------


def test_creating_becomes_running_after_create_seconds(own_server):
    api = Api(own_server(create_seconds=0.8))
    instance_id = api.create_ok()["id"]
    assert api.get(f"/instances/{instance_id}").json()["status"] == "creating"
    api.wait_for_status(instance_id, "running", timeout=2)


def test_stop_start_and_restart_pass_through_their_transitional_statuses(api):
    instance_id = api.running()["id"]

    stopping = api.post(f"/instances/{instance_id}/stop")
    assert stopping.status_code == 200
    assert stopping.json()["status"] == "stopping"
    assert stopping.json()["id"] == instance_id
    api.wait_for_status(instance_id, "stopped")

    starting = api.post(f"/instances/{instance_id}/start")
    assert (starting.status_code, starting.json()["status"]) == (200, "starting")
    api.wait_for_status(instance_id, "running")

    restarting = api.post(f"/instances/{instance_id}/restart")
    assert (restarting.status_code, restarting.json()["status"]) == (200, "restarting")
    api.wait_for_status(instance_id, "running")


@pytest.mark.parametrize(
    ("action", "wrong_status"), [("start", "running"), ("stop", "stopped"), ("restart", "stopped")]
)
def test_an_action_from_a_wrong_status_is_409_naming_the_status(api, action, wrong_status):
    instance_id = api.running()["id"]
    if wrong_status == "stopped":
        api.post(f"/instances/{instance_id}/stop")
        api.wait_for_status(instance_id, "stopped")
    body = assert_error(api.post(f"/instances/{instance_id}/{action}"), 409)
    assert wrong_status in body["message"]
    assert body["message"] == f"Instance is {wrong_status}; cannot {action}."


@pytest.mark.parametrize("action", ["start", "stop", "restart"])
def test_actions_while_creating_are_409(own_server, action):
    api = Api(own_server(create_seconds=5))
    instance_id = api.create_ok()["id"]
    body = assert_error(api.post(f"/instances/{instance_id}/{action}"), 409)
    assert "creating" in body["message"]


def test_destroy_answers_destroyed_then_destroying_then_404_and_gone_from_list(own_server):
    api = Api(own_server(destroy_seconds=1.0))
    instance_id = api.create_ok()["id"]
    response = api.delete(f"/instances/{instance_id}")
    assert response.status_code == 200
    assert response.json() == {
        "status": "destroyed",
        "message": "Instance has been permanently destroyed",
    }
    assert api.get(f"/instances/{instance_id}").json()["status"] == "destroying"
    assert [i["status"] for i in api.get("/instances").json()["instances"]] == ["destroying"]
    api.wait_until_gone(instance_id)
    assert api.get("/instances").json() == {"instances": []}
    assert_error(api.delete(f"/instances/{instance_id}"), 404)


def test_every_action_on_a_destroying_instance_is_409(own_server):
    api = Api(own_server(destroy_seconds=5))
    instance_id = api.running()["id"]
    api.delete(f"/instances/{instance_id}")
    for suffix in ("/start", "/stop", "/restart", "/reset-password"):
        body = assert_error(api.post(f"/instances/{instance_id}{suffix}"), 409)
        assert "destroying" in body["message"]
    body = assert_error(api.delete(f"/instances/{instance_id}"), 409)
    assert "destroying" in body["message"]
    body = assert_error(
        api.post(f"/instances/{instance_id}/ssh-key", json={"public_key": ED25519}), 409
    )
    assert "destroying" in body["message"]


@pytest.mark.parametrize("status", ["creating", "stopping", "stopped"])
def test_destroy_works_from_any_status_but_destroying(api, status):
    instance_id = api.create_ok()["id"]
    if status != "creating":
        api.wait_for_status(instance_id, "running")
        api.post(f"/instances/{instance_id}/stop")
    if status == "stopped":
        api.wait_for_status(instance_id, "stopped")
    assert api.delete(f"/instances/{instance_id}").status_code == 200


def test_reset_password_gives_a_new_password_when_running_or_stopped(api):
    created = api.create_ok()
    instance_id = created["id"]
    api.wait_for_status(instance_id, "running")
    first = api.post(f"/instances/{instance_id}/reset-password")
    assert first.status_code == 200
    assert set(first.json()) == {"root_password"}
    second = api.post(f"/instances/{instance_id}/reset-password").json()["root_password"]
    assert len({created["root_password"], first.json()["root_password"], second}) == 3
    api.post(f"/instances/{instance_id}/stop")
    api.wait_for_status(instance_id, "stopped")
    assert api.post(f"/instances/{instance_id}/reset-password").status_code == 200


def test_reset_password_works_in_transition_but_not_while_destroying(own_server):
    api = Api(own_server(create_seconds=5, destroy_seconds=5))
    instance_id = api.create_ok()["id"]
    creating = api.post(f"/instances/{instance_id}/reset-password")
    assert creating.status_code == 200 and creating.json()["root_password"]
    api.delete(f"/instances/{instance_id}")
    body = assert_error(api.post(f"/instances/{instance_id}/reset-password"), 409)
    assert "destroying" in body["message"]


def test_ssh_key_for_someone_elses_or_a_missing_instance_is_404_whatever_the_body(api, simulator):
    other = add_account(simulator, "other-token")
    instance_id = api.create_ok()["id"]
    for body in (None, {}, {"public_key": "nonsense"}, {"public_key": ED25519}):
        response = other.post(f"/instances/{instance_id}/ssh-key", json=body)
        assert_error(response, 404)
    assert_error(api.post("/instances/no-such-id/ssh-key", json={}), 404)


def test_payout_amounts_are_kept_at_eight_places(api):
    response = api.post(
        "/earnings/payout",
        data=b'{"amount": 10.0000000000000, "wallet_address": "0x' + b"ab" * 20 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert '"amount": 10.00000000,' in response.text or '"amount": 10.00000000}' in response.text
    summary = api.get("/earnings/summary").text
    assert "0000000000" not in summary


def test_null_for_an_optional_create_field_is_a_400(api):
    for field in ("cpu_type", "ssh_keys", "redundant"):
        response = api.create(f"n-{field.replace('_', '-')}", **{field: None})
        assert_error(response, 400, field=field)


def test_ssh_key_is_added_unless_the_key_is_invalid(api):
    instance_id = api.create_ok()["id"]
    response = api.post(f"/instances/{instance_id}/ssh-key", json={"public_key": ED25519})
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["message"]
    bad = api.post(f"/instances/{instance_id}/ssh-key", json={"public_key": "ssh-dss AAAA"})
    assert_error(bad, 400, field="public_key")
    assert_error(api.post(f"/instances/{instance_id}/ssh-key", json={}), 400, field="public_key")


# --------------------------------------------------------------------------------------
# Earnings
# --------------------------------------------------------------------------------------


def test_summary_shape_and_exact_identity(api):
    summary = decimal_json(api.get("/earnings/summary"))
    assert summary["currency"] == "DCDN"
    assert summary["operator_share"] == Decimal("0.7")
    assert (
        summary["total_earned"] == summary["available"] + summary["pending"] + summary["paid_out"]
    )
    assert summary["paid_out"] > 0, "part of the seeded history is already paid out"
    assert summary["available"] > 10
    assert [n["node_id"] for n in summary["nodes"]] == ["node-eu-central-1", "node-sa-east-2"]
    for node in summary["nodes"]:
        assert set(node) == {"node_id", "region", "status", "earned_30d", "uptime_30d_percent"}
        assert node["status"] in {"online", "offline"}
        assert 0 <= node["uptime_30d_percent"] <= 100
    for key in ("total_earned", "available", "pending", "paid_out"):
        assert isinstance(summary[key], Decimal | int)
        assert decimal_places(Decimal(summary[key])) <= 8


def test_amounts_are_json_numbers_not_strings(api):
    text = api.get("/earnings/summary").text
    assert re.search(r'"total_earned": \d+(\.\d{1,8})?[,}]', text)
    assert '"total_earned": "' not in text


def test_node_history_is_30_days_whose_amounts_add_up_exactly(api):
    summary = decimal_json(api.get("/earnings/summary"))
    for listed in summary["nodes"]:
        node = decimal_json(api.get(f"/earnings/node/{listed['node_id']}"))
        assert node["node_id"] == listed["node_id"]
        assert node["region"] == listed["region"]
        assert node["status"] == listed["status"]
        assert node["currency"] == "DCDN"
        daily = node["daily"]
        assert len(daily) == 30
        dates = [date.fromisoformat(day["date"]) for day in daily]
        assert dates == sorted(dates)
        assert all(b - a == timedelta(days=1) for a, b in pairwise(dates))
        assert dates[-1] <= date.today() + timedelta(days=1)
        for day in daily:
            services = day["services"]
            assert set(services) == {"vps", "cdn", "gpu"}
            assert day["amount"] == services["vps"] + services["cdn"] + services["gpu"]
            assert 0 <= day["uptime_percent"] <= 100
            for value in (day["amount"], *services.values()):
                assert decimal_places(Decimal(value)) <= 8
        assert listed["earned_30d"] == sum(day["amount"] for day in daily)
        assert node["total_earned"] >= listed["earned_30d"]
    assert summary["total_earned"] == sum(
        decimal_json(api.get(f"/earnings/node/{n['node_id']}"))["total_earned"]
        for n in summary["nodes"]
    )


def test_node_region_comes_from_its_id_or_the_seed(simulator):
    operator = add_account(simulator, "op-token", nodes=["node-us-west-7", "garage-box"])
    regions = {n["node_id"]: n["region"] for n in operator.get("/earnings/summary").json()["nodes"]}
    assert regions["node-us-west-7"] == "us-west"
    assert regions["garage-box"] in {"eu-central", "eu-west", "us-east", "us-west", "sa-east"}


def test_someone_elses_node_and_an_unknown_node_are_404(simulator, api):
    other = add_account(simulator, "op-token", nodes=["node-us-east-1"])
    assert_error(api.get("/earnings/node/node-us-east-1"), 404)
    assert_error(api.get("/earnings/node/node-nowhere-9"), 404)
    assert_error(other.get("/earnings/node/node-eu-central-1"), 404)
    assert other.get("/earnings/node/node-us-east-1").status_code == 200


def test_an_account_without_nodes_has_zero_earnings(simulator):
    nobody = add_account(simulator, "empty-token")
    summary = decimal_json(nobody.get("/earnings/summary"))
    assert summary["nodes"] == []
    for key in ("total_earned", "available", "pending", "paid_out"):
        assert summary[key] == 0
    assert_error(
        nobody.post("/earnings/payout", json={"amount": 10, "wallet_address": EVM_WALLET}),
        400,
        field="amount",
    )


def test_earnings_are_deterministic_for_a_seed(own_server):
    first, same, other = own_server(seed=7), own_server(seed=7), own_server(seed=8)
    texts = [Api(s).get("/earnings/node/node-sa-east-2").text for s in (first, same, other)]
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]


def test_token_info(api):
    info = decimal_json(api.get("/earnings/token-info"))
    assert info["symbol"] == "DCDN"
    assert info["name"] == "DCDN Token"
    assert info["price_usd"] > 0
    assert info["total_supply"] >= info["circulating_supply"] > 0
    assert info["distribution"] == {
        "node_operators": Decimal("0.70"),
        "platform": Decimal("0.25"),
        "treasury": Decimal("0.05"),
    }


# --------------------------------------------------------------------------------------
# Payouts
# --------------------------------------------------------------------------------------


def payout(api: Api, amount, wallet=EVM_WALLET, **kwargs) -> requests.Response:
    return api.post("/earnings/payout", json={"amount": amount, "wallet_address": wallet}, **kwargs)


def raw_payout(api: Api, amount_text: str, wallet=EVM_WALLET) -> requests.Response:
    body = f'{{"amount": {amount_text}, "wallet_address": "{wallet}"}}'
    return api.post("/earnings/payout", data=body, headers={"Content-Type": "application/json"})


def test_a_payout_moves_its_amount_from_available_to_pending(api):
    before = decimal_json(api.get("/earnings/summary"))
    response = raw_payout(api, "12.34567891")
    assert response.status_code == 201
    created = decimal_json(response)
    assert set(created) == {"payout_id", "amount", "status", "requested_at"}
    assert created["amount"] == Decimal("12.34567891")
    assert created["status"] == "pending"
    datetime.fromisoformat(created["requested_at"].replace("Z", "+00:00"))
    after = decimal_json(api.get("/earnings/summary"))
    assert after["available"] == before["available"] - Decimal("12.34567891")
    assert after["pending"] == before["pending"] + Decimal("12.34567891")
    assert after["total_earned"] == before["total_earned"]
    assert after["total_earned"] == after["available"] + after["pending"] + after["paid_out"]


def test_a_pending_payout_is_paid_after_payout_seconds(own_server):
    api = Api(own_server(payout_seconds=0.3))
    before = decimal_json(api.get("/earnings/summary"))
    assert payout(api, 10).status_code == 201
    deadline = time.monotonic() + 5
    while (summary := decimal_json(api.get("/earnings/summary")))["pending"] != 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert summary["paid_out"] == before["paid_out"] + 10
    assert summary["available"] == before["available"] - 10
    assert (
        summary["total_earned"] == summary["available"] + summary["pending"] + summary["paid_out"]
    )


@pytest.mark.parametrize(
    "amount_text",
    ["0", "-5", "9.99999999", "10.123456789", '"25"', "true", "null", "[10]", "1e9"],
)
def test_a_bad_amount_is_400(api, amount_text):
    assert_error(raw_payout(api, amount_text), 400, field="amount")


def test_an_amount_above_available_is_400_and_the_whole_available_is_allowed(api):
    available = decimal_json(api.get("/earnings/summary"))["available"]
    assert_error(raw_payout(api, str(available + Decimal("0.00000001"))), 400, field="amount")
    assert raw_payout(api, str(available)).status_code == 201
    assert decimal_json(api.get("/earnings/summary"))["available"] == 0


def test_the_minimum_payout_and_eight_decimals_are_allowed(api):
    assert raw_payout(api, "10").status_code == 201
    assert raw_payout(api, "10.00000001").status_code == 201
    assert raw_payout(api, "10.500000000").status_code == 201  # trailing zeros are not places


def test_a_payout_without_amount_or_wallet_or_a_json_object_is_400(api):
    assert_error(api.post("/earnings/payout", json={"wallet_address": EVM_WALLET}), 400, "amount")
    assert_error(api.post("/earnings/payout", json={"amount": 10}), 400, "wallet_address")
    assert_error(api.post("/earnings/payout", data=b"nope"), 400)


@pytest.mark.parametrize(
    "wallet",
    [
        "0x" + "a" * 40,
        "0x" + "AbCdEf0123" * 4,
        "1" * 32,
        "z" * 44,
        BASE58_WALLET,
    ],
)
def test_well_formed_wallets_are_accepted(api, wallet):
    assert payout(api, 10, wallet).status_code == 201


@pytest.mark.parametrize(
    "wallet",
    [
        "0x" + "a" * 39,
        "0x" + "a" * 41,
        "0x" + "g" * 40,
        "1" * 31,
        "z" * 45,
        "0" * 34,  # 0, O, I and l are not base58
        "O" * 34,
        "I" * 34,
        "l" * 34,
        BASE58_WALLET + " ",
        "",
        12345,
        None,
    ],
)
def test_malformed_wallets_are_400(api, wallet):
    assert_error(payout(api, 10, wallet), 400, field="wallet_address")


def test_the_same_idempotency_key_returns_the_first_answer_without_a_second_payout(simulator, api):
    key = {"Idempotency-Key": "payout-abc"}
    first = payout(api, 15, headers=key)
    again = payout(api, 15, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.text == again.text
    different_body = payout(api, 20, headers=key)
    assert different_body.text == first.text
    payouts = [p for p in sim_state(simulator)["payouts"] if p["status"] == "pending"]
    assert len(payouts) == 1
    assert (
        payout(api, 15, headers={"Idempotency-Key": "payout-def"}).json()["payout_id"]
        != (first.json()["payout_id"])
    )
    assert payout(api, 15).status_code == 201
    assert len([p for p in sim_state(simulator)["payouts"] if p["status"] == "pending"]) == 3


def test_an_idempotency_key_replays_a_refusal_too_and_is_per_token(simulator, api):
    key = {"Idempotency-Key": "k-1"}
    refused = payout(api, 5, headers=key)
    assert_error(refused, 400, field="amount")
    assert payout(api, 50, headers=key).text == refused.text
    other = add_account(simulator, "op-token", nodes=["node-us-east-1"])
    assert payout(other, 10, headers=key).status_code == 201


# --------------------------------------------------------------------------------------
# Rate limiting
# --------------------------------------------------------------------------------------


def test_over_the_limit_is_429_with_retry_after_and_429s_do_not_count(own_server):
    server = own_server(rate_limit=3, rate_window_seconds=1.0)
    api = Api(server)
    assert [api.get("/plans").status_code for _ in range(3)] == [200, 200, 200]
    limited = api.get("/plans")
    assert_error(limited, 429)
    assert limited.headers["Retry-After"] == "1"
    for _ in range(5):
        assert api.get("/plans").status_code == 429
    time.sleep(1.05)
    # The five 429s took no slot: a full window's worth is accepted again.
    assert [api.get("/plans").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_retry_after_is_the_wait_until_a_slot_frees_rounded_up(own_server):
    api = Api(own_server(rate_limit=1, rate_window_seconds=4.5))
    assert api.get("/plans").status_code == 200
    assert api.get("/plans").headers["Retry-After"] == "5"
    time.sleep(1.2)
    assert api.get("/plans").headers["Retry-After"] == "4"


def test_the_window_slides(own_server):
    api = Api(own_server(rate_limit=2, rate_window_seconds=1.0))
    start = time.monotonic()
    assert api.get("/plans").status_code == 200
    time.sleep(0.6)
    assert api.get("/plans").status_code == 200
    assert api.get("/plans").status_code == 429
    time.sleep(max(0.0, start + 1.1 - time.monotonic()))
    # Only the first request left the window; a fixed window would have freed both.
    assert api.get("/plans").status_code == 200
    assert api.get("/plans").status_code == 429


def test_the_limit_is_per_token_and_control_endpoints_are_not_limited(own_server):
    server = own_server(rate_limit=2, rate_window_seconds=60)
    api = Api(server)
    other = add_account(server, "other-token")
    assert [api.get("/plans").status_code for _ in range(3)] == [200, 200, 429]
    assert other.get("/plans").status_code == 200
    for _ in range(10):
        assert control(server, "GET", "/_sim/calls").status_code == 200
    calls = control(server, "GET", "/_sim/calls").json()
    assert calls["rate_limited"] == 1
    assert calls["by_token"][DEMO]["rate_limited"] == 1


def test_exactly_the_limit_is_accepted_under_concurrency(own_server):
    server = own_server(rate_limit=60, rate_window_seconds=60)
    set_faults(server, latency_ms=50)

    def fetch(_):
        return requests.get(
            server.api_url + "/plans", headers={"Authorization": f"Bearer {DEMO}"}, timeout=10
        ).status_code

    with ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(fetch, range(80)))
    assert statuses.count(200) == 60
    assert statuses.count(429) == 20


# --------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------


def test_error_rate_one_answers_500_before_doing_anything(simulator, api):
    set_faults(simulator, error_rate=1)
    assert_error(api.get("/plans"), 500)
    assert_error(api.create(), 500)
    set_faults(simulator, error_rate=0)
    assert sim_state(simulator)["instances"] == 0
    assert api.get("/plans").status_code == 200


def test_malformed_rate_one_answers_200_with_invalid_json(simulator, api):
    set_faults(simulator, malformed_rate=1)
    response = api.get("/instances")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        json.loads(response.text)
    set_faults(simulator, malformed_rate=0)
    assert api.get("/instances").json() == {"instances": []}


def test_down_answers_every_api_request_503_but_not_the_control_endpoints(simulator, api):
    set_faults(simulator, down=True)
    assert_error(api.get("/plans"), 503)
    assert_error(Api(simulator, None).get("/plans"), 503)
    assert_error(api.create(), 503)
    assert control(simulator, "GET", "/_sim/calls").status_code == 200
    set_faults(simulator, down=False)
    assert api.get("/plans").status_code == 200
    assert sim_state(simulator)["instances"] == 0


def test_latency_delays_api_answers(simulator, api):
    set_faults(simulator, latency_ms=300)
    started = time.monotonic()
    assert api.get("/plans").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    control(simulator, "GET", "/_sim/calls")
    assert time.monotonic() - started < 0.25


def test_fault_keys_left_out_keep_their_values(simulator):
    set_faults(simulator, latency_ms=40, error_rate=0.25)
    set_faults(simulator, down=True)
    faults = control(simulator, "GET", "/_sim/faults").json()
    assert faults["latency_ms"] == 40
    assert faults["error_rate"] == 0.25
    assert faults["down"] is True


@pytest.mark.parametrize(
    "body",
    [
        {"error_rate": 2},
        {"malformed_rate": -0.1},
        {"latency_ms": "slow"},
        {"down": "yes"},
        {"hang_after_commit_count": -1},
        {"hang_after_commit_count": 1.5},
    ],
)
def test_bad_fault_settings_are_400(simulator, body):
    assert control(simulator, "POST", "/_sim/faults", json=body).status_code == 400


def test_hang_after_commit_applies_the_effect_then_hangs(simulator, api):
    set_faults(simulator, hang_after_commit_ms=1500, hang_after_commit_count=1)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        api.create("slow-1", timeout=0.4)
    # The request left and took effect although its answer never came.
    instances = api.get("/instances").json()["instances"]
    assert [i["name"] for i in instances] == ["slow-1"]
    assert time.monotonic() - started < 1.4, "reads must not wait for the hung request"
    # The count is used up: the next mutation answers at once.
    started = time.monotonic()
    assert api.create("fast-1").status_code == 201
    assert time.monotonic() - started < 1.0


def test_hang_without_a_count_hangs_every_mutation_until_cleared(simulator, api):
    set_faults(simulator, hang_after_commit_ms=1000)
    for name in ("slow-1", "slow-2"):
        with pytest.raises(requests.ReadTimeout):
            api.create(name, timeout=0.3)
    started = time.monotonic()
    assert api.get("/instances").status_code == 200
    assert time.monotonic() - started < 0.5, "reads do not hang"
    assert payout_hangs(api)
    set_faults(simulator, hang_after_commit_ms=0)
    assert api.create("fast-1").status_code == 201
    assert len(api.get("/instances").json()["instances"]) == 3


def payout_hangs(api: Api) -> bool:
    before = decimal_json(api.get("/earnings/summary"))["pending"]
    try:
        payout(api, 10, timeout=0.3)
    except requests.ReadTimeout:
        return decimal_json(api.get("/earnings/summary"))["pending"] == before + 10
    return False


# --------------------------------------------------------------------------------------
# Control endpoints
# --------------------------------------------------------------------------------------


def test_calls_count_every_api_request_by_token_and_templated_endpoint(simulator, api):
    instance_id = api.create_ok()["id"]
    api.get(f"/instances/{instance_id}")
    api.get(f"/instances/{uuid.uuid4()}")  # a 404 counts too
    api.get("/instances")
    api.get("/earnings/node/node-eu-central-1")
    payout(api, 1)  # a 400 counts too
    Api(simulator, None).get("/plans")
    Api(simulator, "bogus").get("/plans")
    control(simulator, "GET", "/_sim/state", params={"token": DEMO})
    calls = control(simulator, "GET", "/_sim/calls").json()
    assert calls["total"] == 8
    assert calls["rate_limited"] == 0
    assert calls["by_token"][DEMO] == {
        "total": 6,
        "rate_limited": 0,
        "endpoints": {
            "POST /instances": 1,
            "GET /instances/{id}": 2,
            "GET /instances": 1,
            "GET /earnings/node/{node_id}": 1,
            "POST /earnings/payout": 1,
        },
    }
    assert calls["by_token"]["bogus"]["total"] == 1
    assert sum(entry["total"] for entry in calls["by_token"].values()) == 8


def test_calls_count_500s_and_can_be_reset(simulator, api):
    set_faults(simulator, error_rate=1)
    api.get("/plans")
    assert control(simulator, "GET", "/_sim/calls").json()["by_token"][DEMO]["total"] == 1
    assert control(simulator, "POST", "/_sim/calls/reset").status_code == 204
    assert control(simulator, "GET", "/_sim/calls").json() == {
        "total": 0,
        "rate_limited": 0,
        "by_token": {},
    }


def test_add_account_then_use_it(simulator):
    response = control(
        simulator,
        "POST",
        "/_sim/accounts",
        json={"token": "alice-token", "credits": 7.5, "nodes": ["node-eu-west-1"]},
    )
    assert response.status_code == 201
    alice = Api(simulator, "alice-token")
    summary = alice.get("/earnings/summary").json()
    assert [n["node_id"] for n in summary["nodes"]] == ["node-eu-west-1"]
    assert sim_state(simulator, "alice-token")["credits"] == Decimal("7.5")
    assert_error(alice.create(plan="s-medium"), 402)


def test_adding_an_existing_token_is_409(simulator):
    body = {"token": DEMO, "credits": 1, "nodes": []}
    assert control(simulator, "POST", "/_sim/accounts", json=body).status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"credits": 1},
        {"token": "", "credits": 1},
        {"token": 5},
        {"token": "t", "credits": "lots"},
        {"token": "t", "credits": -1},
        {"token": "t", "nodes": "node-1"},
        {"token": "t", "nodes": ["a", "a"]},
        ["t"],
    ],
)
def test_adding_an_account_with_a_bad_body_is_400(simulator, body):
    assert control(simulator, "POST", "/_sim/accounts", json=body).status_code == 400


def test_reset_endpoint_answers_204_and_restores_the_seed(simulator, api):
    api.create_ok()
    payout(api, 10)
    assert control(simulator, "POST", "/_sim/reset").status_code == 204
    state = sim_state(simulator)
    assert state["instances"] == 0
    assert state["credits"] == 100
    assert all(p["status"] == "paid" for p in state["payouts"])


def test_state_endpoint_shows_credits_instances_and_payouts(simulator, api):
    api.create_ok()
    created = payout(api, 10).json()
    state = sim_state(simulator)
    assert state["credits"] == 100
    assert state["instances"] == 1
    assert created["payout_id"] in [p["payout_id"] for p in state["payouts"]]
    assert control(simulator, "GET", "/_sim/state", params={"token": "nope"}).status_code == 404
    assert control(simulator, "GET", "/_sim/state").status_code == 400


def test_control_endpoints_refuse_clients_that_are_not_loopback(simulator, monkeypatch):
    assert server_module.control_allowed("127.0.0.1")
    assert server_module.control_allowed("::1")
    assert not server_module.control_allowed("10.1.2.3")
    monkeypatch.setattr(server_module, "control_allowed", lambda _host: False)
    assert control(simulator, "GET", "/_sim/calls").status_code == 403
    assert control(simulator, "POST", "/_sim/reset").status_code == 403


def test_unknown_control_path_is_404_and_wrong_method_405(simulator):
    assert control(simulator, "GET", "/_sim/nothing").status_code == 404
    assert control(simulator, "GET", "/_sim/reset").status_code == 405


# --------------------------------------------------------------------------------------
# Determinism, concurrency, the state file, the command
# --------------------------------------------------------------------------------------


def test_instances_are_deterministic_for_a_seed(own_server):
    made = [Api(own_server(seed=seed)).create_ok() for seed in (3, 3, 4)]
    same = [(m["id"], m["ip_address"], m["ssh_port"], m["node"]) for m in made]
    assert same[0] == same[1]
    assert same[0] != same[2]


def test_fifty_concurrent_clients_are_served_concurrently(simulator):
    set_faults(simulator, latency_ms=200)
    barrier = threading.Barrier(50)

    def fetch(_):
        barrier.wait()
        return requests.get(
            simulator.api_url + "/plans", headers={"Authorization": f"Bearer {DEMO}"}, timeout=30
        ).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(fetch, range(50)))
    elapsed = time.monotonic() - started
    print(f"50 concurrent requests with 200 ms latency took {elapsed:.2f} s")
    assert statuses == [200] * 50
    assert elapsed < 5.0


def test_the_state_file_keeps_the_state_across_restarts(own_server, tmp_path):
    path = tmp_path / "sim-state.json"
    first = own_server(state_file=str(path))
    api = Api(first)
    created = api.create_ok("kept-1")
    api.wait_for_status(created["id"], "running")
    paid = payout(api, 11, headers={"Idempotency-Key": "k"})
    add_account(first, "alice-token", credits=3, nodes=["node-us-east-1"])
    summary = api.get("/earnings/summary").text
    first.stop()
    json.loads(path.read_text())

    second = own_server(state_file=str(path))
    api = Api(second)
    instance = api.get(f"/instances/{created['id']}").json()
    assert (instance["name"], instance["status"]) == ("kept-1", "running")
    assert payout(api, 11, headers={"Idempotency-Key": "k"}).text == paid.text
    assert sim_state(second, "alice-token")["credits"] == 3
    assert api.get("/earnings/summary").text == summary
    assert api.create("kept-1").status_code == 409


def run_simulator_process(*args: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "manage.py", "dcdn_simulator", "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = process.stdout.readline()
    return process, line


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_the_command_prints_its_url_serves_and_stops_on_a_signal(stop_signal):
    process, line = run_simulator_process("--create-seconds", "0.1", "--rate-limit", "5")
    try:
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line + process.stderr.read()
        response = requests.get(
            f"{match.group(0)}/api/v1/compute/regions",
            headers={"Authorization": f"Bearer {DEMO}"},
            timeout=5,
        )
        assert response.status_code == 200
        process.send_signal(stop_signal)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
