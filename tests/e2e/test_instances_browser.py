"""The instances journey in real Chromium against the live panel, a real Celery worker and
the simulator: log in, save a token, create, watch it run, reveal the password once, stop
and start, destroy by typing the name. Then axe-core scans of the main pages."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from tests.instances.test_views import sim_endpoints
from tests.processes import celery_env, start_celery_worker, stop_process

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-staple-7"
NAME = "e2e-web"
SSH_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBp3cnbRZ2kFbsJv3WUKNcf8ZzBzTYZgdx0NKJqGmfqK e2e@test"
)


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The same short timings in the live server and in the worker (celery_env copies them).
    settings.DCDN_SNAPSHOT_SECONDS = 0.5
    settings.OPERATIONS_POLL_SECONDS = 0.5
    settings.DCDN_BUDGET_MAX_WAIT = 2.0
    # The worker runs beat too: a task message lost on the way (another run's worker on
    # the same broker, a crash) is re-sent by the reconciler within seconds.
    settings.OPERATIONS_RECONCILE_SECONDS = 2.0
    settings.OPERATIONS_RECONCILE_MARGIN_SECONDS = 3.0


@pytest.fixture
def worker(live_server, simulator, _fast, tmp_path):
    """A real Celery worker (with beat) on the test database, the simulator and our cache."""
    proc = start_celery_worker(celery_env(), beat=True, log_path=tmp_path / "worker.log")
    yield proc
    stop_process(proc)


def make_user(username: str = "alice"):
    return get_user_model().objects.create_user(username, f"{username}@example.com", PASSWORD)


@pytest.mark.timeout(180)
def test_instance_journey(live_server, logged_in_page, worker, simulator, axe_check):
    from playwright.sync_api import expect

    base = live_server.url
    make_user()
    page = logged_in_page("alice", PASSWORD)
    serious = {}

    # Save the API token.
    page.goto(base + "/accounts/token/")
    page.get_by_label("API token").fill("demo-token")
    page.get_by_role("button", name="Verify and save").click()
    expect(page.get_by_text("API token verified")).to_be_visible()

    # The empty list leads to the create form.
    page.goto(base + "/instances/")
    expect(page.get_by_text("No instances yet")).to_be_visible()
    page.get_by_role("link", name="Create your first instance").click()
    expect(page).to_have_url(re.compile(r"/instances/new/$"))

    # The form reacts as choices change (and the server checks the same rules).
    region, plan, cpu, redundant = (
        page.get_by_label("Region"),
        page.get_by_label("Plan"),
        page.get_by_label("CPU type"),
        page.get_by_label("Redundant"),
    )
    price = page.locator("#price")
    region.select_option("eu-west")
    expect(redundant).to_be_disabled()
    expect(page.locator("#redundant-why")).to_contain_text("only 1 node")
    region.select_option("eu-central")
    expect(redundant).to_be_enabled()
    cpu.select_option("dedicated")
    expect(plan).to_have_value(re.compile(r"^d-"))
    cpu.select_option("shared")
    plan.select_option("s-small")
    expect(price).to_have_text("$5.00 per month · $0.0068 per hour")
    redundant.check()
    expect(price).to_contain_text("$10.00 per month")
    redundant.uncheck()
    page.get_by_label("Template").select_option("docker-host")
    expect(plan).to_have_value("s-medium")
    expect(page.get_by_label("Image")).to_have_value("docker-ubuntu-22.04")
    expect(price).to_contain_text("$10.00 per month")

    # Create.
    page.get_by_label("Name").fill(NAME)
    plan.select_option("nano")
    page.get_by_label("Image").select_option("debian-12")
    page.get_by_label("SSH keys").fill(SSH_KEY)
    serious["create"] = axe_check(page, context="create")
    page.get_by_role("button", name="Create instance").click()

    # The operation page shows the steps, then the result, from the panel's database.
    expect(page).to_have_url(re.compile(r"/operations/\d+/$"))
    progress = page.locator("#op-progress")
    expect(progress.locator("ol.steps li")).to_have_count(3)
    expect(progress.locator(".alert-success")).to_contain_text(f"{NAME} is running.")
    expect(progress.locator("ol.steps li.done")).to_have_count(3)

    # The root password, once.
    page.get_by_role("button", name="Reveal root password").click()
    secret = page.locator("#root-password")
    expect(secret).to_be_visible()
    password = secret.inner_text().strip()
    assert len(password) >= 8
    expect(page.get_by_text("This password will not be shown again")).to_be_visible()
    # The password took the button's place: nothing left to press again.
    expect(page.get_by_role("button", name="Reveal root password")).to_have_count(0)
    expect(page.get_by_role("button", name="Copy to clipboard")).to_be_focused()
    expect(page.locator("#reveal-message")).to_be_empty()
    expect(page.get_by_role("link", name="Instance", exact=True)).to_be_visible()
    page.reload()
    expect(page.locator("#reveal-controls")).to_contain_text("will not be shown again")
    expect(page.locator("#root-password")).to_have_count(0)
    assert password not in page.content()

    # The detail page; stop and start, confirming the dialogs.
    page.get_by_role("link", name=f"Open {NAME}").click()
    status = page.locator("#instance-status")
    expect(status).to_contain_text("Running")
    expect(page.get_by_role("button", name="Start", exact=True)).to_be_disabled()
    serious["detail"] = axe_check(page, context="detail")
    dialogs = []

    def accept(dialog):
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(status).to_contain_text("Stopped")
    assert dialogs and dialogs[0].startswith(f"Stop {NAME}?")
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_disabled()
    page.get_by_role("button", name="Start", exact=True).click()
    expect(status).to_contain_text("Running")
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_enabled()

    # The list shows it, with its monthly cost.
    page.goto(base + "/instances/")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=NAME, exact=True))
    expect(row).to_contain_text("Running")
    expect(page.locator("#monthly-total")).to_have_text("$2.00")
    serious["list"] = axe_check(page, context="list")

    # Destroy by typing the name.
    row.get_by_role("link", name=NAME, exact=True).click()
    page.get_by_role("link", name="Destroy").click()
    confirm = page.get_by_label("Type the instance name to confirm")
    confirm.fill("e2e-wrong")
    page.get_by_role("button", name=f"Destroy {NAME}").click()
    expect(page.locator("#id_confirm_name_error")).to_contain_text("not this instance")
    page.get_by_label("Type the instance name to confirm").fill(NAME)
    page.get_by_role("button", name=f"Destroy {NAME}").click()
    expect(page.locator("#op-progress .alert-success")).to_contain_text(f"{NAME} was destroyed.")

    page.goto(base + "/instances/")
    expect(page.get_by_role("link", name=NAME, exact=True)).to_have_count(0)
    expect(page.get_by_text("No instances yet")).to_be_visible()

    # What it cost upstream: one create, one delete, no repeated sends.
    calls = sim_endpoints(simulator)
    print("upstream calls during the journey:", dict(sorted(calls.items())))
    assert calls.get("POST /instances") == 1, calls
    assert calls.get("DELETE /instances/{id}") == 1, calls

    assert not any(serious.values()), serious


@pytest.fixture
def running_instance(simulator, db):
    """A user with the demo token and one running instance, made without a worker."""
    from accounts.services import credential_store_unverified, dcdn_client_for
    from tests.instances.test_views import wait_until

    user = make_user("bob")
    credential_store_unverified(user=user, token="demo-token")
    client = dcdn_client_for(user)
    created = client.create_instance(
        name="scan-me", plan="nano", image="debian-12", region="sa-east", redundant=True
    )
    wait_until(lambda: client.get_instance(created.instance.id).status == "running")
    return created.instance


@pytest.mark.timeout(120)
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_serious_on_list_create_and_detail(
    live_server, new_page, running_instance, axe_check, scheme
):
    from playwright.sync_api import expect

    from .conftest import log_in

    page = new_page(color_scheme=scheme)
    log_in(page, live_server.url, "bob", PASSWORD)
    found = {}
    for label, path, ready in (
        ("list", "/instances/", "scan-me"),
        ("create", "/instances/new/", "Create instance"),
        ("detail", f"/instances/{running_instance.id}/", "Resource usage"),
        ("activity", "/operations/", "Activity"),
        ("overview", "/", "Monthly spend"),
    ):
        page.goto(live_server.url + path)
        expect(page.get_by_text(ready, exact=True).first).to_be_visible()
        found[label] = axe_check(page, context=f"{label} ({scheme})")
    assert not any(found.values()), found


@pytest.mark.timeout(60)
def test_pages_fit_a_phone_screen(live_server, new_page, running_instance):
    from playwright.sync_api import expect

    from .conftest import log_in

    page = new_page(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    log_in(page, live_server.url, "bob", PASSWORD)
    for path in (
        "/",
        "/instances/",
        "/instances/new/",
        f"/instances/{running_instance.id}/",
        "/operations/",
    ):
        page.goto(live_server.url + path)
        expect(page.locator("h1")).to_be_visible()
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, (path, overflow)


# How many lines an element's text takes (distinct tops of its text boxes).
LINES_JS = """el => {
  const range = document.createRange();
  range.selectNodeContents(el);
  const boxes = Array.from(range.getClientRects()).filter(r => r.width > 0);
  const tops = boxes.map(r => Math.round(r.top));
  return new Set(tops).size;
}"""
OVERFLOWS_JS = "el => el.scrollWidth - el.clientWidth"


def one_line(locator) -> bool:
    return locator.evaluate(LINES_JS) == 1


@pytest.mark.timeout(90)
def test_phone_layout_keeps_words_whole_and_figures_apart(live_server, new_page, running_instance):
    from playwright.sync_api import expect

    from accounts.models import DcdnCredential
    from panel.instances import services

    from .conftest import log_in

    owner = DcdnCredential.objects.get().owner
    services.operation_create_request(
        user=owner, name="phone-check-1", plan="nano", image="debian-12", region="eu-west"
    )
    page = new_page(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    base = live_server.url
    log_in(page, base, "bob", PASSWORD)

    # Overview: the earnings figures stay inside their own cells.
    page.goto(base + "/")
    values = page.locator(".earnings-card .stat .value")
    expect(values.nth(1)).to_contain_text("DCDN")
    for index in range(values.count()):
        assert values.nth(index).evaluate(OVERFLOWS_JS) <= 1, values.nth(index).inner_text()

    # List: name, region and IP on one line each; Plan and Node(s) left out.
    page.goto(base + "/instances/")
    row = page.locator(f"#row-{running_instance.id}")
    expect(row).to_contain_text("scan-me")
    for cell in (row.locator("th"), row.locator("td").nth(2), row.locator("td.mono")):
        assert one_line(cell), cell.inner_text()
    expect(page.get_by_role("columnheader", name="Plan")).to_be_hidden()
    expect(page.get_by_role("columnheader", name="Node(s)")).to_be_hidden()
    expect(page.locator("#monthly-total")).to_be_attached()

    # Detail: hostname and SSH command never break mid-word.
    page.goto(base + f"/instances/{running_instance.id}/")
    for code in (
        page.locator("#status-block code.oneline").first,
        page.locator("[id^=ssh-command-]"),
    ):
        expect(code).to_be_visible()
        assert one_line(code), code.inner_text()

    # Activity: the operation's instance name stays whole; rows are not squeezed tall.
    page.goto(base + "/operations/")
    name = page.get_by_role("row").filter(has_text="phone-check-1").locator("th")
    assert one_line(name)
    assert page.locator("td.details").first.bounding_box()["width"] >= 200

    # Create: no empty gap between the template's help and its button.
    page.goto(base + "/instances/new/")
    help_box = page.locator("#template-help").bounding_box()
    button_box = page.get_by_role("button", name="Apply template").bounding_box()
    assert button_box["y"] - (help_box["y"] + help_box["height"]) < 32


def reload_until(page, selector: str, text: str, *, timeout: float = 30.0) -> None:
    """Without JavaScript nothing polls: reload, as a person would, until ``text`` shows."""
    from tests.processes import wait_for

    url = page.url

    def shown() -> bool:
        page.goto(url)
        return text in page.locator(selector).inner_text()

    wait_for(shown, timeout=timeout, interval=0.3, message=f"{text!r} never showed")


@pytest.mark.timeout(180)
def test_every_action_works_without_javascript(live_server, new_page, worker, simulator):
    from playwright.sync_api import expect

    from accounts.services import credential_store_unverified

    from .conftest import log_in

    credential_store_unverified(user=make_user("carol"), token="demo-token")
    page = new_page(java_script_enabled=False)
    base = live_server.url
    log_in(page, base, "carol", PASSWORD)

    page.goto(base + "/instances/new/?template=dev-box")
    expect(page.get_by_label("Plan")).to_have_value("nano")
    page.get_by_label("Name").fill("plain-web")
    page.get_by_label("Region").select_option("eu-west")
    page.get_by_label("Redundant").check()
    page.get_by_role("button", name="Create instance").click()
    # The server refuses what the script would have prevented.
    expect(page.locator("#id_redundant_error")).to_contain_text("at least 2 nodes")
    page.get_by_label("Redundant").uncheck()
    page.get_by_role("button", name="Create instance").click()
    expect(page).to_have_url(re.compile(r"/operations/\d+/$"))
    reload_until(page, "#op-progress", "plain-web is running.")

    operation_url = page.url
    page.get_by_role("button", name="Reveal root password").click()
    expect(page.locator("#root-password")).not_to_be_empty()
    expect(page.get_by_role("button", name="Reveal root password")).to_have_count(0)
    page.goto(operation_url)
    expect(page.locator("#reveal-controls")).to_contain_text("will not be shown again")
    expect(page.locator("#root-password")).to_have_count(0)

    page.get_by_role("link", name="Open plain-web").click()
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.locator("#toasts")).to_contain_text("Stopping plain-web")
    reload_until(page, "#instance-status", "Stopped")
    page.get_by_role("button", name="Start", exact=True).click()
    reload_until(page, "#instance-status", "Running")
    page.get_by_role("button", name="Restart").click()
    reload_until(page, "#instance-status", "Running")

    page.get_by_label("Public key").fill("ssh-ed25519 not-base64!")
    page.get_by_role("button", name="Add SSH key").click()
    expect(page.locator("#id_public_key_error")).to_contain_text("not valid base64")
    page.get_by_label("Public key").fill(SSH_KEY)
    page.get_by_role("button", name="Add SSH key").click()
    expect(page.locator("#toasts")).to_contain_text("SSH key added")

    page.get_by_role("button", name="Reset password").click()
    expect(page).to_have_url(re.compile(r"/operations/\d+/$"))
    page.get_by_role("button", name="Reveal root password").click()
    expect(page.locator("#root-password")).not_to_be_empty()

    page.get_by_role("link", name="Instance", exact=True).click()
    page.get_by_role("link", name="Destroy").click()
    page.get_by_label("Type the instance name to confirm").fill("plain-web")
    page.get_by_role("button", name="Destroy plain-web").click()
    reload_until(page, "#op-progress", "plain-web was destroyed.")
    page.goto(base + "/instances/?q=plain")
    expect(page.get_by_role("link", name="plain-web", exact=True)).to_have_count(0)


@pytest.fixture
def slow_simulator(settings):
    """A private simulator whose transitions take seconds, so pages can be seen updating."""
    from panel.dcdn.simulator.server import SimulatorServer

    server = SimulatorServer(
        host="127.0.0.1",
        port=0,
        create_seconds=3.0,
        destroy_seconds=3.0,
        transition_seconds=3.0,
    )
    server.start()
    settings.DCDN_API_URL = server.api_url
    settings.DCDN_EARNINGS_URL = server.api_url
    yield server
    server.stop()


@pytest.mark.timeout(90)
def test_list_and_detail_update_themselves(live_server, new_page, slow_simulator, transactional_db):
    from playwright.sync_api import expect

    from accounts.services import credential_store_unverified, dcdn_client_for

    from .conftest import log_in

    user = make_user("erin")
    credential_store_unverified(user=user, token="demo-token")
    client = dcdn_client_for(user)
    created = client.create_instance(
        name="live-1", plan="nano", image="debian-12", region="eu-west"
    )
    client.create_instance(name="live-2", plan="micro", image="debian-12", region="us-east")

    page = new_page()
    log_in(page, live_server.url, "erin", PASSWORD)
    page.goto(live_server.url + "/instances/")
    row = page.locator(f"#row-{created.instance.id}")
    expect(row).to_contain_text("Creating")
    expect(row).to_have_attribute("hx-trigger", "every 2s")
    # No reload: the row polls the snapshot until it settles, then stops polling.
    expect(row).to_contain_text("Running", timeout=15_000)
    expect(row).not_to_have_attribute("hx-trigger", "every 2s")
    expect(page.locator("#toasts")).to_contain_text("live-1 is now running.")

    # Search narrows the table in place (htmx) and the address follows.
    page.get_by_label("Search").fill("live-2")
    expect(page.locator("#instances-table tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"q=live-2"))
    page.get_by_label("Search").fill("")
    expect(page.locator("#instances-table tbody tr")).to_have_count(2)
    page.get_by_role("link", name="Monthly cost").click()
    expect(page.locator("#instances-table tbody tr").first).to_contain_text("live-1")
    page.get_by_role("link", name="Monthly cost").click()
    expect(page.locator("#instances-table tbody tr").first).to_contain_text("live-2")

    # The detail page's status block follows a restart by itself.
    page.goto(live_server.url + f"/instances/{created.instance.id}/")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Restart").click()
    status = page.locator("#instance-status")
    expect(status).to_contain_text("Restarting")
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_disabled()
    expect(status).to_contain_text("Running", timeout=15_000)
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_enabled()
