"""Instances pages against the simulator over real HTTP: forms, ownership, actions,
polling costs, the one-time password and error handling."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts.services import credential_store_unverified, dcdn_client_for
from panel.instances import services, snapshot
from panel.instances.models import Operation

PASSWORD = "correct-horse-battery-staple-7"
DEMO_TOKEN = "demo-token"
OTHER_TOKEN = "other-token-5e6f7a8b"
HTMX = {"HTTP_HX_REQUEST": "true"}
ED25519 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBp3cnbRZ2kFbsJv3WUKNcf8ZzBzTYZgdx0NKJqGmfqK me@laptop"
)


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sim_request(simulator, method: str, path: str, body: dict | None = None):
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


def sim_endpoints(simulator, token: str = DEMO_TOKEN) -> dict[str, int]:
    calls = sim_request(simulator, "GET", "/_sim/calls") or {}
    return dict(((calls.get("by_token") or {}).get(token) or {}).get("endpoints") or {})


def sim_faults(simulator, **faults) -> None:
    sim_request(simulator, "POST", "/_sim/faults", faults)


@pytest.fixture
def owner(db, simulator):
    user = get_user_model().objects.create_user("owner", "owner@example.com", PASSWORD)
    credential_store_unverified(user=user, token=DEMO_TOKEN)
    return user


@pytest.fixture
def outsider(db, simulator):
    sim_request(
        simulator, "POST", "/_sim/accounts", {"token": OTHER_TOKEN, "credits": 100, "nodes": []}
    )
    user = get_user_model().objects.create_user("outsider", "out@example.com", PASSWORD)
    credential_store_unverified(user=user, token=OTHER_TOKEN)
    return user


@pytest.fixture
def owner_client(client, owner) -> Client:
    client.force_login(owner)
    return client


@pytest.fixture
def outsider_client(outsider) -> Client:
    other = Client()
    other.force_login(outsider)
    return other


def wait_until(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def make_instance(user, name: str = "web-1", *, plan: str = "nano", region: str = "eu-west"):
    """An instance made directly on the simulator, waited until running; snapshot fresh."""
    client = dcdn_client_for(user)
    created = client.create_instance(name=name, plan=plan, image="debian-12", region=region)
    wait_until(lambda: client.get_instance(created.instance.id).status == "running")
    snapshot.snapshot_clear(owner=snapshot.owner_key(user))
    return client.get_instance(created.instance.id)


def text_of(response) -> str:
    return response.content.decode()


def field_errors(html: str, field_id: str) -> str:
    """The error list tied to a field, or ''."""
    match = re.search(rf'<ul class="errorlist" id="{field_id}_error">(.*?)</ul>', html, re.S)
    return match.group(1) if match else ""


# --- GET to an action URL is refused ---------------------------------------------------------


@pytest.mark.parametrize("name", ["start", "stop", "restart", "reset_password", "ssh_key"])
def test_get_to_an_instance_action_url_is_405(owner_client, name):
    response = owner_client.get(reverse(f"instances:{name}", args=["abc"]))
    assert response.status_code == 405


def test_get_to_reveal_is_405(owner_client):
    response = owner_client.get(reverse("instances:operation_reveal", args=[1]))
    assert response.status_code == 405


def test_pages_need_a_login(client, db):
    response = client.get(reverse("instances:list"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


# --- ownership ------------------------------------------------------------------------------


def test_detail_of_someone_elses_instance_is_404(owner, outsider_client):
    instance = make_instance(owner)
    response = outsider_client.get(reverse("instances:detail", args=[instance.id]))
    assert response.status_code == 404


def test_actions_on_someone_elses_instance_are_404(owner, outsider_client, simulator):
    instance = make_instance(owner)
    for name in ("stop", "restart", "reset_password"):
        response = outsider_client.post(reverse(f"instances:{name}", args=[instance.id]))
        assert response.status_code == 404, name
    response = outsider_client.post(
        reverse("instances:ssh_key", args=[instance.id]), {"public_key": ED25519}
    )
    assert response.status_code == 404
    response = outsider_client.get(reverse("instances:destroy", args=[instance.id]))
    assert response.status_code == 404
    response = outsider_client.post(
        reverse("instances:destroy", args=[instance.id]), {"confirm_name": instance.name}
    )
    assert response.status_code == 404
    # The owner's instance is untouched.
    assert dcdn_client_for(owner).get_instance(instance.id).status == "running"
    assert not Operation.objects.filter(instance_id=instance.id).exists()


def test_someone_elses_operation_is_404(owner, outsider_client):
    operation = services.operation_create_request(
        user=owner, name="web-9", plan="nano", image="debian-12", region="eu-west"
    )
    assert (
        outsider_client.get(reverse("instances:operation", args=[operation.pk])).status_code == 404
    )
    assert (
        outsider_client.get(
            reverse("instances:operation_progress", args=[operation.pk])
        ).status_code
        == 404
    )
    assert (
        outsider_client.post(reverse("instances:operation_reveal", args=[operation.pk])).status_code
        == 404
    )


# --- the create form ------------------------------------------------------------------------


def create_data(**overrides) -> dict:
    data = {
        "name": "web-1",
        "cpu_type": "shared",
        "plan": "nano",
        "image": "debian-12",
        "region": "eu-central",
        "ssh_keys": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_create_form_has_the_labelled_fields(owner_client):
    response = owner_client.get(reverse("instances:create"))
    html = text_of(response)
    assert response.status_code == 200
    for label in ("Name", "Plan", "Image", "Region", "CPU type", "SSH keys", "Redundant"):
        assert re.search(rf"<label for=\"id_\w+\">{re.escape(label)}</label>", html), label
    assert 'id="catalog-data"' in html
    assert "instance_form.js" in html
    assert 'aria-live="polite"' in html
    assert "per month" in html and "per hour" in html


def test_create_page_uses_the_cached_catalog(owner_client, simulator):
    owner_client.get(reverse("instances:create"))
    before = sim_endpoints(simulator)
    owner_client.get(reverse("instances:create"))
    owner_client.get(reverse("instances:create"))
    after = sim_endpoints(simulator)
    for endpoint in ("GET /plans", "GET /images", "GET /regions", "GET /templates"):
        assert before.get(endpoint) == 1, endpoint
        assert after.get(endpoint) == 1, endpoint


@pytest.mark.parametrize(
    ("overrides", "field_id", "words"),
    [
        ({"name": "-Bad_Name"}, "id_name", "lowercase"),
        ({"name": ""}, "id_name", "required"),
        ({"cpu_type": "dedicated", "plan": "nano"}, "id_plan", "shared CPUs"),
        ({"plan": "no-such-plan"}, "id_plan", "valid choice"),
        ({"image": "windows-95"}, "id_image", "valid choice"),
        ({"region": "moon-1"}, "id_region", "valid choice"),
        ({"region": "eu-west", "redundant": "on"}, "id_redundant", "at least 2 nodes"),
        ({"ssh_keys": "ssh-dss AAAA"}, "id_ssh_keys", "Unsupported key type"),
        ({"ssh_keys": f"{ED25519}\nssh-rsa not*base64"}, "id_ssh_keys", "Line 2"),
    ],
)
def test_create_form_puts_each_error_on_its_field(owner_client, overrides, field_id, words):
    response = owner_client.post(reverse("instances:create"), create_data(**overrides))
    html = text_of(response)
    assert response.status_code == 200
    assert words in field_errors(html, field_id)
    assert re.search(rf'id="{field_id}"[^>]*aria-invalid="true"', html) or re.search(
        rf'aria-invalid="true"[^>]*id="{field_id}"', html
    )
    assert f"{field_id}_error" in html
    assert not Operation.objects.exists()


def test_create_with_a_name_in_use_says_so_on_name(owner_client, owner):
    make_instance(owner, "taken")
    response = owner_client.post(reverse("instances:create"), create_data(name="taken"))
    assert "already in use" in field_errors(text_of(response), "id_name")
    assert not Operation.objects.exists()


def test_create_with_a_name_being_created_says_so_on_name(owner_client, owner):
    services.operation_create_request(
        user=owner, name="busy", plan="nano", image="debian-12", region="eu-west"
    )
    response = owner_client.post(reverse("instances:create"), create_data(name="busy"))
    assert "already in use" in field_errors(text_of(response), "id_name")
    assert Operation.objects.count() == 1


def test_create_records_an_operation_and_goes_to_its_page(owner_client, owner, simulator):
    before = sim_endpoints(simulator).get("POST /instances", 0)
    response = owner_client.post(
        reverse("instances:create"),
        create_data(name="web-2", redundant="on", ssh_keys=ED25519),
    )
    operation = Operation.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("instances:operation", args=[operation.pk])
    assert operation.kind == "create"
    assert operation.params["name"] == "web-2"
    assert operation.params["redundant"] is True
    assert operation.params["ssh_keys"] == [ED25519]
    # The view only records it: the worker sends it.
    assert sim_endpoints(simulator).get("POST /instances", 0) == before


def test_htmx_create_answers_hx_redirect(owner_client):
    response = owner_client.post(reverse("instances:create"), create_data(), **HTMX)
    operation = Operation.objects.get()
    assert response["HX-Redirect"] == reverse("instances:operation", args=[operation.pk])


def test_htmx_create_with_errors_returns_the_form_fragment(owner_client):
    response = owner_client.post(reverse("instances:create"), create_data(name="X"), **HTMX)
    html = text_of(response)
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="form-area">')
    assert "<html" not in html


def test_template_prefills_the_form_without_javascript(owner_client):
    response = owner_client.get(reverse("instances:create") + "?template=wordpress")
    html = text_of(response)
    form = response.context["form"]
    assert form.initial.get("image")
    assert form.initial.get("plan")
    assert 'value="wordpress" selected' in html


def run_operation(pk: int, timeout: float = 10.0) -> Operation:
    """Run the worker's steps here until the operation finishes."""

    def step():
        Operation.objects.filter(pk=pk).update(next_poll_at=None)
        services.operation_advance(operation_id=pk)
        return Operation.objects.get(pk=pk).is_finished

    wait_until(step, timeout)
    return Operation.objects.get(pk=pk)


def failed_create(owner, **params) -> Operation:
    base = {"name": "web-3", "plan": "nano", "image": "debian-12", "region": "eu-west"}
    base.update(params)
    operation = run_operation(services.operation_create_request(user=owner, **base).pk)
    assert operation.state == "failed", operation.error_message
    return operation


def test_not_enough_credits_comes_back_as_a_form_error(owner_client, owner):
    operation = failed_create(owner, plan="d-2xlarge", cpu_type="dedicated")
    page = text_of(owner_client.get(reverse("instances:operation", args=[operation.pk])))
    assert "Edit and try again" in page
    assert "Not enough credits" in page
    response = owner_client.get(reverse("instances:create") + f"?from_operation={operation.pk}")
    html = text_of(response)
    assert "Not enough credits" in html
    assert response.context["form"].non_field_errors()
    assert response.context["form"]["plan"].value() == "d-2xlarge"


def test_a_409_from_dcdn_comes_back_on_name(owner_client, owner):
    make_instance(owner, "dup")
    # The panel's own check is skipped when its snapshot is old: DCDN answers 409.
    snapshot.snapshot_clear(owner=snapshot.owner_key(owner))
    operation = failed_create(owner, name="dup")
    page = text_of(owner_client.get(reverse("instances:operation", args=[operation.pk])))
    assert "Name: This name is already in use" in page
    response = owner_client.get(reverse("instances:create") + f"?from_operation={operation.pk}")
    assert "already in use" in field_errors(text_of(response), "id_name")


def test_a_400_from_dcdn_comes_back_on_the_field_it_names(owner_client, owner):
    operation = Operation.objects.create(
        owner=owner,
        owner_key=snapshot.owner_key(owner),
        kind="create",
        state="failed",
        instance_name="web-4",
        params={"name": "web-4", "plan": "nano", "image": "debian-12", "region": "eu-west"},
        error_code="bad_request",
        error_field="image",
        error_message="Image 'debian-12' is not available in eu-west.",
    )
    page = text_of(owner_client.get(reverse("instances:operation", args=[operation.pk])))
    assert "Image: Image &#x27;debian-12&#x27; is not available" in page
    response = owner_client.get(reverse("instances:create") + f"?from_operation={operation.pk}")
    assert "not available in eu-west" in field_errors(text_of(response), "id_image")


def test_from_someone_elses_operation_is_404(owner, outsider_client):
    operation = services.operation_create_request(
        user=owner, name="web-9", plan="nano", image="debian-12", region="eu-west"
    )
    response = outsider_client.get(reverse("instances:create") + f"?from_operation={operation.pk}")
    assert response.status_code == 404


# --- the list ------------------------------------------------------------------------------


def test_list_shows_instances_with_their_columns_and_total(owner_client, owner):
    instance = make_instance(owner, "alpha")
    response = owner_client.get(reverse("instances:list"))
    html = text_of(response)
    assert response.status_code == 200
    assert "alpha" in html
    assert instance.ip_address in html
    assert "badge-running" in html and "Running" in html
    assert "Monthly total" in html
    assert response["Vary"] and "HX-Request" in response["Vary"]
    assert 'scope="col"' in html and 'scope="row"' in html


def test_list_search_filter_and_sort(owner_client, owner):
    a = make_instance(owner, "alpha")
    make_instance(owner, "beta", region="us-east")
    url = reverse("instances:list")
    assert [i.name for i in owner_client.get(url + "?q=alp").context["rows"]] == ["alpha"]
    rows = owner_client.get(url + f"?q={a.ip_address}").context["rows"]
    assert [i.name for i in rows] == ["alpha"]
    rows = owner_client.get(url + "?region=us-east").context["rows"]
    assert [i.name for i in rows] == ["beta"]
    rows = owner_client.get(url + "?status=stopped").context["rows"]
    assert rows == []
    rows = owner_client.get(url + "?sort=-name").context["rows"]
    assert [i.name for i in rows] == ["beta", "alpha"]
    html = text_of(owner_client.get(url + "?sort=-name"))
    assert 'aria-sort="descending"' in html


def test_filtered_list_totals_the_shown_rows_and_all_instances(owner_client, owner):
    make_instance(owner, "alpha", plan="nano")
    make_instance(owner, "beta", plan="s-small")
    url = reverse("instances:list")
    html = text_of(owner_client.get(url + "?q=alp"))
    assert re.search(r'id="monthly-total">\$2\.00<', html)
    assert re.search(r'id="monthly-total-all">\$7\.00<', html)
    assert "Monthly total, shown instances" in html and "all 2 instances" in html
    html = text_of(owner_client.get(url))
    assert re.search(r'id="monthly-total">\$7\.00<', html)
    assert "monthly-total-all" not in html


def test_sorting_by_plan_follows_the_plan_prices(owner_client, owner):
    make_instance(owner, "a", plan="s-medium")
    make_instance(owner, "b", plan="nano")
    make_instance(owner, "c", plan="s-small")
    owner_client.get(reverse("instances:create"))  # the catalog is cached from here on
    rows = owner_client.get(reverse("instances:list") + "?sort=plan").context["rows"]
    assert [i.plan for i in rows] == ["nano", "s-small", "s-medium"]
    rows = owner_client.get(reverse("instances:list") + "?sort=-plan").context["rows"]
    assert [i.plan for i in rows] == ["s-medium", "s-small", "nano"]


def table_wrapper(html: str) -> str:
    return re.search(r'<div id="instances-table"[^>]*>', html).group(0)


def test_table_refreshes_itself_slowly_and_settled_rows_do_not_poll(owner_client, owner):
    instance = make_instance(owner, "alpha")
    url = reverse("instances:list")
    for response in (owner_client.get(url), owner_client.get(url + "?q=al", **HTMX)):
        html = text_of(response)
        wrapper = table_wrapper(html)
        assert 'hx-trigger="every 30s, instances-changed from:body"' in wrapper
        assert 'hx-get="/instances/' in wrapper
        row = re.search(rf'<tr id="row-{instance.id}"[^>]*>', html).group(0)
        assert "hx-trigger" not in row
    # The refresh keeps the filters and sort it was rendered with.
    html = text_of(owner_client.get(url + "?q=al&sort=-cost", **HTMX))
    assert 'hx-get="/instances/?q=al&amp;sort=-cost"' in table_wrapper(html)


def test_many_tabs_refreshing_the_table_cost_one_list_per_interval(owner, simulator, settings):
    settings.DCDN_SNAPSHOT_SECONDS = 0.5
    make_instance(owner, "alpha")
    tabs = []
    for _ in range(4):
        tab = Client()
        tab.force_login(owner)
        tabs.append(tab)
    url = reverse("instances:list")
    tabs[0].get(url, **HTMX)
    before = sim_endpoints(simulator)
    started = time.monotonic()
    polls = 0
    while time.monotonic() - started < 1.6:
        for tab in tabs:
            assert tab.get(url, **HTMX).status_code == 200
            polls += 1
    elapsed = time.monotonic() - started
    after = sim_endpoints(simulator)
    new = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert set(new) <= {"GET /instances"}, new
    allowed = int(elapsed / settings.DCDN_SNAPSHOT_SECONDS) + 1
    assert polls > 4 * allowed
    assert new.get("GET /instances", 0) <= allowed, (new, elapsed, polls)


def test_htmx_list_request_returns_the_table_fragment(owner_client, owner):
    make_instance(owner, "alpha")
    response = owner_client.get(reverse("instances:list") + "?q=alp", **HTMX)
    html = text_of(response)
    assert html.lstrip().startswith('<div id="instances-table"')
    assert "<html" not in html
    assert 'hx-swap-oob="true"' in html


def test_empty_list_leads_to_the_create_form(owner_client):
    html = text_of(owner_client.get(reverse("instances:list")))
    assert "No instances yet" in html
    assert reverse("instances:create") in html


def test_list_without_a_token_links_to_the_token_page(client, db, simulator):
    user = get_user_model().objects.create_user("new", "new@example.com", PASSWORD)
    client.force_login(user)
    response = client.get(reverse("instances:list"))
    assert response.status_code == 200
    assert "Add your API token" in text_of(response)
    assert reverse("accounts:token") in text_of(response)


def test_only_rows_in_transition_poll(owner_client, owner):
    settled = make_instance(owner, "settled")
    moving = make_instance(owner, "moving")
    services.instance_action(user=owner, instance_id=moving.id, action="stop")
    html = text_of(owner_client.get(reverse("instances:list")))
    moving_row = re.search(rf'<tr id="row-{moving.id}"[^>]*>', html).group(0)
    settled_row = re.search(rf'<tr id="row-{settled.id}"[^>]*>', html).group(0)
    assert 'hx-trigger="every 2s"' in moving_row
    assert "hx-trigger" not in settled_row


def test_a_row_that_settles_stops_polling_and_toasts(owner_client, owner, settings):
    settings.DCDN_SNAPSHOT_SECONDS = 0.1
    instance = make_instance(owner, "web-1")
    services.instance_action(user=owner, instance_id=instance.id, action="stop")
    url = reverse("instances:list") + f"?row={instance.id}&was=stopping&name=web-1"

    def settled():
        response = owner_client.get(url, **HTMX)
        return response if "badge-stopped" in text_of(response) else None

    response = wait_until(settled)
    assert "hx-trigger" not in text_of(response)
    trigger = json.loads(response["HX-Trigger"])
    assert trigger["toast"]["text"] == "web-1 is now stopped."
    assert "instances-changed" not in trigger  # the row updated itself; nothing else changed


def test_list_polls_cost_no_upstream_call_beyond_the_snapshot(owner_client, owner, simulator):
    instance = make_instance(owner, "web-1")
    owner_client.get(reverse("instances:list"))
    before = sim_endpoints(simulator)
    started = time.monotonic()
    for _ in range(25):
        owner_client.get(
            reverse("instances:list") + f"?row={instance.id}&was=stopping&name=web-1", **HTMX
        )
        owner_client.get(reverse("instances:list"), **HTMX)
        owner_client.get(reverse("instances:operations") + "?part=inflight&sig=", **HTMX)
        owner_client.get(reverse("instances:detail", args=[instance.id]) + "?part=status", **HTMX)
    elapsed = time.monotonic() - started
    after = sim_endpoints(simulator)
    new = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert set(new) <= {"GET /instances"}, new
    # One snapshot refresh per DCDN_SNAPSHOT_SECONDS at most, for 100 polls.
    allowed = int(elapsed / 2.0) + 1
    assert new.get("GET /instances", 0) <= allowed, (new, elapsed)


# --- detail and actions -----------------------------------------------------------------------


def test_detail_shows_facts_usage_and_actions(owner_client, owner):
    instance = make_instance(owner, "web-1")
    response = owner_client.get(reverse("instances:detail", args=[instance.id]))
    html = text_of(response)
    assert response.status_code == 200
    for text in (
        instance.hostname,
        instance.ip_address,
        instance.ssh_command,
        "Copy SSH command",
        "Resource usage",
        "<meter",
        "CPU",
        "RAM",
        "Disk",
        "Bandwidth",
    ):
        assert text in html, text
    # Running: Start does not apply.
    assert re.search(r'<button type="submit" class="btn" disabled>Start</button>', html)
    assert re.search(r'<button type="submit" class="btn">Stop</button>', html)
    assert 'hx-confirm="Stop web-1?' in html and 'data-confirm="Stop web-1?' in html
    assert 'data-confirm="Restart web-1?' in html
    assert reverse("instances:destroy", args=[instance.id]) in html


def test_stop_without_javascript_redirects_with_a_message(owner_client, owner):
    instance = make_instance(owner, "web-1")
    response = owner_client.post(reverse("instances:stop", args=[instance.id]))
    assert response.status_code == 302
    assert response["Location"] == reverse("instances:detail", args=[instance.id])
    page = owner_client.get(response["Location"])
    assert "Stopping web-1" in text_of(page)


def test_htmx_stop_returns_the_polling_status_block_and_a_toast(owner_client, owner):
    instance = make_instance(owner, "web-1")
    response = owner_client.post(reverse("instances:stop", args=[instance.id]), **HTMX)
    html = text_of(response)
    assert html.lstrip().startswith('<section id="status-block"')
    assert "badge-stopping" in html
    assert 'hx-trigger="every 2s"' in html
    assert json.loads(response["HX-Trigger"])["toast"]["text"] == "Stopping web-1…"


def test_an_action_that_does_not_apply_shows_why(owner_client, owner):
    instance = make_instance(owner, "web-1")
    response = owner_client.post(reverse("instances:start", args=[instance.id]), **HTMX)
    assert response.status_code == 200
    assert 'class="alert alert-error"' in text_of(response)
    assert json.loads(response["HX-Trigger"])["toast"]["level"] == "error"
    response = owner_client.post(reverse("instances:start", args=[instance.id]), follow=True)
    assert response.status_code == 200
    assert "running" in text_of(response).lower()


def test_status_poll_reads_the_snapshot_and_stops_when_settled(owner_client, owner, settings):
    settings.DCDN_SNAPSHOT_SECONDS = 0.1
    instance = make_instance(owner, "web-1")
    services.instance_action(user=owner, instance_id=instance.id, action="restart")
    url = reverse("instances:detail", args=[instance.id]) + "?part=status&was=restarting&name=web-1"

    def settled():
        response = owner_client.get(url, **HTMX)
        return response if "badge-running" in text_of(response) else None

    response = wait_until(settled)
    assert "hx-trigger" not in text_of(response)
    assert json.loads(response["HX-Trigger"])["toast"]["text"] == "web-1 is now running."


def test_add_ssh_key_is_validated_before_sending(owner_client, owner, simulator):
    instance = make_instance(owner, "web-1")
    url = reverse("instances:ssh_key", args=[instance.id])
    response = owner_client.post(url, {"public_key": "ssh-ed25519 ***"})
    assert "not valid base64" in field_errors(text_of(response), "id_public_key")
    response = owner_client.post(url, {"public_key": "hello"}, **HTMX)
    assert "type" in field_errors(text_of(response), "id_public_key")
    assert not any("ssh-key" in e for e in sim_endpoints(simulator))
    response = owner_client.post(url, {"public_key": ED25519}, **HTMX)
    assert "The key was added" in text_of(response)
    assert sum(v for k, v in sim_endpoints(simulator).items() if "ssh-key" in k) == 1


def test_destroy_asks_for_the_exact_name(owner_client, owner):
    instance = make_instance(owner, "web-1")
    url = reverse("instances:destroy", args=[instance.id])
    page = text_of(owner_client.get(url))
    assert "Type the instance name to confirm" in page
    response = owner_client.post(url, {"confirm_name": "web-2"})
    assert response.status_code == 200
    assert "not this instance" in field_errors(text_of(response), "id_confirm_name")
    assert not Operation.objects.exists()
    response = owner_client.post(url, {"confirm_name": "web-1"})
    operation = Operation.objects.get()
    assert operation.kind == "destroy" and operation.instance_id == instance.id
    assert response["Location"] == reverse("instances:operation", args=[operation.pk])


def test_reset_password_goes_to_the_reveal_page(owner_client, owner):
    instance = make_instance(owner, "web-1")
    response = owner_client.post(reverse("instances:reset_password", args=[instance.id]))
    operation = Operation.objects.get(kind="reset_password")
    assert response["Location"] == reverse("instances:operation", args=[operation.pk])
    html = text_of(owner_client.get(response["Location"]))
    assert "Reveal root password" in html
    detail = text_of(owner_client.get(reverse("instances:detail", args=[instance.id])))
    assert "Reveal root password" in detail


# --- the one-time password ---------------------------------------------------------------------


def reset_operation(owner) -> Operation:
    instance = make_instance(owner, "web-1")
    return services.instance_reset_password(user=owner, instance_id=instance.id)


def test_reveal_shows_the_password_once_then_refuses(owner_client, owner):
    operation = reset_operation(owner)
    url = reverse("instances:operation_reveal", args=[operation.pk])
    first = owner_client.post(url)
    html = text_of(first)
    assert first.status_code == 200
    assert "no-store" in first["Cache-Control"]
    password = re.search(r'<p class="secret" id="root-password">([^<]+)</p>', html).group(1)
    assert len(password) >= 8
    assert "will not be shown again" in html
    assert 'hx-history="false"' in html
    assert 'data-copy-target="#root-password"' in html
    assert "Reveal root password" not in html
    second = owner_client.post(url)
    assert "no-store" in second["Cache-Control"]
    assert password not in text_of(second)
    assert "already revealed" in text_of(second)
    # Never kept anywhere else: not on the operation page, not in a cookie.
    page = owner_client.get(reverse("instances:operation", args=[operation.pk]))
    assert password not in text_of(page)
    assert all(password not in c.value for c in owner_client.cookies.values())
    assert "no-store" in page["Cache-Control"]


def test_htmx_reveal_swaps_in_the_secret_and_refuses_the_second_time(owner_client, owner):
    operation = reset_operation(owner)
    url = reverse("instances:operation_reveal", args=[operation.pk])
    page = text_of(owner_client.get(reverse("instances:operation", args=[operation.pk])))
    assert 'hx-target="#reveal-controls" hx-swap="outerHTML"' in page
    first = owner_client.post(url, **HTMX)
    html = text_of(first)
    # The fragment replaces the button's region: the password, and no button any more.
    assert html.lstrip().startswith('<div id="reveal-controls">')
    assert 'id="root-password"' in html and "will not be shown again" in html
    assert "Reveal root password" not in html and "<form" not in html
    assert "HX-Retarget" not in first
    assert "no-store" in first["Cache-Control"]
    # A second request (another tab, an old page) is refused; its controls lose the button.
    second = owner_client.post(url, **HTMX)
    assert second["HX-Retarget"] == "#reveal-message"
    assert second["HX-Reswap"] == "innerHTML"
    assert "already revealed" in text_of(second)
    assert 'id="root-password"' not in text_of(second)
    assert 'id="reveal-controls" hx-swap-oob="true"' in text_of(second)
    assert "Reveal root password" not in text_of(second)


# --- operations ---------------------------------------------------------------------------


def test_operation_page_polls_the_database_while_active(owner_client, owner, simulator):
    operation = services.operation_create_request(
        user=owner, name="web-5", plan="nano", image="debian-12", region="eu-west"
    )
    page = text_of(owner_client.get(reverse("instances:operation", args=[operation.pk])))
    assert 'aria-current="step"' in page
    assert '<ol class="steps"' in page
    assert 'hx-trigger="every 2s"' in page
    before = sim_endpoints(simulator)
    progress_url = reverse("instances:operation_progress", args=[operation.pk]) + "?was=active"
    for _ in range(10):
        owner_client.get(progress_url, **HTMX)
        owner_client.get(
            reverse("instances:operations") + f"?part=rows&active={operation.pk}", **HTMX
        )
    assert sim_endpoints(simulator) == before
    # Let the worker's steps run here, then the next poll toasts and stops polling.
    assert run_operation(operation.pk).state == "succeeded"
    response = owner_client.get(progress_url, **HTMX)
    assert "hx-trigger" not in text_of(response).split('id="reveal-controls"')[0]
    assert (
        json.loads(response["HX-Trigger"])["toast"]["text"] == "web-5 was created and is running."
    )
    assert "Reveal root password" in text_of(response)


def test_progress_polls_leave_a_revealed_password_on_the_page(owner_client, owner):
    operation = reset_operation(owner)
    Operation.objects.filter(pk=operation.pk).update(state="submitted", finished_at=None)
    progress = reverse("instances:operation_progress", args=[operation.pk]) + "?was=active"
    before = text_of(owner_client.get(progress, **HTMX))
    assert 'id="reveal-controls" hx-swap-oob="true"' in before
    assert "Reveal root password" in before
    owner_client.post(reverse("instances:operation_reveal", args=[operation.pk]), **HTMX)
    # The poll of a still-running operation must not swap the shown password away.
    assert "reveal-controls" not in text_of(owner_client.get(progress, **HTMX))


def test_operation_page_names_the_state_once(owner_client, owner):
    operation = run_operation(
        services.operation_create_request(
            user=owner, name="web-8", plan="nano", image="debian-12", region="eu-west"
        ).pk
    )
    page = text_of(owner_client.get(reverse("instances:operation", args=[operation.pk])))
    state = re.search(r"<p>State:(.*?)</p>", page, re.S).group(1)
    assert re.sub(r"<[^>]+>", "", state).split() == ["Succeeded"]
    active = services.operation_create_request(
        user=owner, name="web-9", plan="nano", image="debian-12", region="eu-west"
    )
    active.state = "submitted"
    active.save()
    page = text_of(owner_client.get(reverse("instances:operation", args=[active.pk])))
    state = re.search(r"<p>State:(.*?)</p>", page, re.S).group(1)
    assert re.sub(r"<[^>]+>", " ", state).split() == ["In", "progress"]


def test_failed_create_marks_the_step_where_it_failed(owner_client, owner):
    operation = failed_create(owner, plan="d-2xlarge", cpu_type="dedicated")
    assert operation.step == "submitted"
    page = text_of(owner_client.get(reverse("instances:operation", args=[operation.pk])))
    steps = re.search(r'<ol class="steps"[^>]*>(.*?)</ol>', page, re.S).group(1)
    items = re.findall(r'<li class="(\w+)"[^>]*>\s*([^<]+)', steps)
    assert [(c, t.strip()) for c, t in items] == [
        ("failed", "Submission failed"),
        ("pending", "Creating"),
        ("pending", "Running"),
    ]
    assert "no root password" not in page  # nothing to reveal for a create that failed
    activity = text_of(owner_client.get(reverse("instances:operations")))
    assert '<td class="nowrap hide-sm">Submission failed</td>' in activity


def test_operation_page_head_gains_the_instance_link_while_polling(owner_client, owner):
    operation = services.operation_create_request(
        user=owner, name="web-10", plan="nano", image="debian-12", region="eu-west"
    )
    page = text_of(owner_client.get(reverse("instances:operation", args=[operation.pk])))
    head = re.search(r'<div class="row" id="op-head-links">(.*?)</div>', page, re.S).group(1)
    assert "All activity" in head and ">Instance<" not in head
    poll = re.search(r'hx-get="([^"]*/progress/[^"]*)"', page).group(1).replace("&amp;", "&")
    assert "head=1" in poll
    run_operation(operation.pk)
    operation.refresh_from_db()
    response = owner_client.get(poll, **HTMX)
    fragment = text_of(response)
    head = re.search(
        r'<div class="row" id="op-head-links" hx-swap-oob="true">(.*?)</div>', fragment, re.S
    ).group(1)
    detail = reverse("instances:detail", args=[operation.instance_id])
    assert f'href="{detail}">Instance<' in head
    # The same progress block polled on the instance page has no page head to refresh.
    plain = reverse("instances:operation_progress", args=[operation.pk]) + "?was=active"
    assert "op-head-links" not in text_of(owner_client.get(plain, **HTMX))


def test_activity_page_lists_operations_with_state_and_times(owner_client, owner):
    services.operation_create_request(
        user=owner, name="web-6", plan="nano", image="debian-12", region="eu-west"
    )
    response = owner_client.get(reverse("instances:operations"))
    html = text_of(response)
    assert "Create web-6" in html
    assert "badge-queued" in html
    assert "<time" in html
    assert 'hx-trigger="every 2s"' in html


def test_activity_rows_toast_operations_that_finished(owner_client, owner):
    operation = reset_operation(owner)
    response = owner_client.get(
        reverse("instances:operations") + f"?part=rows&active={operation.pk}", **HTMX
    )
    assert "reset" in json.loads(response["HX-Trigger"])["toast"]["text"]
    assert "hx-trigger" not in text_of(response)


# --- home -------------------------------------------------------------------------------------


def test_home_shows_status_counts_spend_and_activity(owner_client, owner):
    make_instance(owner, "web-1")
    services.operation_create_request(
        user=owner, name="web-7", plan="nano", image="debian-12", region="eu-west"
    )
    response = owner_client.get(reverse("home"))
    html = text_of(response)
    assert response.status_code == 200
    assert "Monthly spend" in html
    assert "badge-running" in html
    assert "In progress" in html and "Create web-7" in html
    assert "Latest activity" in html
    for name in ("list", "create", "operations"):
        assert reverse(f"instances:{name}") in html


def test_home_without_a_token_says_what_to_do(client, db, simulator):
    user = get_user_model().objects.create_user("new", "new@example.com", PASSWORD)
    client.force_login(user)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert "Add your API token" in text_of(response)


def test_a_destroyed_row_removes_itself_and_refreshes_the_totals(owner_client, owner, settings):
    settings.DCDN_SNAPSHOT_SECONDS = 0.1
    instance = make_instance(owner, "web-1")
    client = dcdn_client_for(owner)
    client.destroy_instance(instance.id)
    snapshot.snapshot_get(user=owner)
    url = reverse("instances:list") + f"?row={instance.id}&was=destroying&name=web-1"

    def gone():
        response = owner_client.get(url, **HTMX)
        return response if response.status_code == 200 and not response.content else None

    response = wait_until(gone)
    trigger = json.loads(response["HX-Trigger"])
    assert trigger["toast"]["text"] == "web-1 was destroyed."
    assert "instances-changed" in trigger
