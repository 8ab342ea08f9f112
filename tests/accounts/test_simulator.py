"""End to end over real HTTP: the panel's pages, the real DCDN client and the simulator.

After a token is saved through the page, it is searched for everywhere it must not be:
every table of the database, every log line (DEBUG included) and every page.
"""

from __future__ import annotations

import io
import json
import logging
import urllib.request

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import Client

from accounts import services
from accounts.models import DcdnCredential
from panel.dcdn.errors import Unauthorized

pytestmark = pytest.mark.django_db(transaction=True)

SIM_TOKEN = "sim-Tok3n-9f8e7d6c5b4a3210LMNO"
PAGES = [
    "/",
    "/instances/",
    "/operations/",
    "/earnings/",
    "/accounts/token/",
    "/accounts/password/",
    "/accounts/reauth/",
]


def _sim(simulator, method: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        simulator.base_url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        raw = response.read()
        return json.loads(raw) if raw else None


def _calls_for(simulator, token: str) -> int:
    return _sim(simulator, "GET", "/_sim/calls")["by_token"].get(token, {}).get("total", 0)


@pytest.fixture
def sim_account(simulator):
    _sim(simulator, "POST", "/_sim/accounts", {"token": SIM_TOKEN, "credits": 10, "nodes": []})
    return SIM_TOKEN


@pytest.fixture(autouse=True)
def _quick_retries(settings):
    settings.DCDN_RETRY_BACKOFF_SECONDS = 0.01


def _log_in(user, password) -> Client:
    client = Client()
    assert (
        client.post(
            "/accounts/login/", {"username": user.username, "password": password}
        ).status_code
        == 302
    )
    return client


def _all_database_text() -> str:
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            chunks.append(repr(cursor.fetchall()))
    return "\n".join(chunks)


def test_saved_token_is_nowhere_in_database_logs_or_pages(
    simulator, sim_account, user, password, caplog
):
    with caplog.at_level(logging.DEBUG):
        client = _log_in(user, password)
        response = client.post(
            "/accounts/token/", {"action": "save", "token": sim_account}, follow=True
        )
        html = response.content.decode()
        assert 'Saved token ending in <span class="nowrap">••••LMNO</span>' in html
        assert "verified with DCDN and saved" in html
        # One cheap verification call; the pages below may then use the token too.
        assert _calls_for(simulator, sim_account) == 1
        pages = {path: client.get(path, follow=True) for path in PAGES}

    credential = DcdnCredential.objects.get()
    assert credential.verified_at is not None
    assert sim_account not in _all_database_text()
    assert sim_account not in caplog.text
    for record in caplog.records:
        assert sim_account not in record.getMessage()
    assert sim_account not in html
    for path, page in pages.items():
        assert page.status_code == 200, path
        body = page.content.decode()
        assert sim_account not in body, path
        assert sim_account not in str(page.headers), path
    assert services.dcdn_client_for(user).list_regions()


def test_token_dcdn_rejects_is_not_stored(simulator, user, password):
    client = _log_in(user, password)
    html = client.post(
        "/accounts/token/", {"action": "save", "token": "not-a-known-token-1234"}
    ).content.decode()

    assert "DCDN rejected this token" in html
    assert not DcdnCredential.objects.exists()


def test_token_is_not_stored_while_dcdn_is_down(simulator, sim_account, user, password):
    _sim(simulator, "POST", "/_sim/faults", {"down": True})
    client = _log_in(user, password)
    html = client.post(
        "/accounts/token/", {"action": "save", "token": sim_account}
    ).content.decode()

    assert "could not be verified right now" in html
    assert not DcdnCredential.objects.exists()


def test_a_token_revoked_upstream_is_marked_invalid_and_every_page_says_so(
    simulator, user, password
):
    services.credential_store_unverified(user=user, token="revoked-token-5678")
    with pytest.raises(Unauthorized):
        services.dcdn_client_for(user).list_regions()

    assert DcdnCredential.objects.get().status == DcdnCredential.Status.INVALID
    client = _log_in(user, password)
    for path in PAGES:
        # A page that needs DCDN may send the user straight to the token page instead.
        page = client.get(path, follow=True)
        assert "DCDN rejected your API token." in page.content.decode(), path


def test_forged_posts_make_no_upstream_call(simulator, sim_account, user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/accounts/token/")
    good = client.cookies["csrftoken"].value
    forged = [
        ({"action": "save", "token": sim_account}, {}),
        ({"action": "save", "token": sim_account, "csrfmiddlewaretoken": "y" * 64}, {}),
        (
            {"action": "save", "token": sim_account, "csrfmiddlewaretoken": good},
            {"HTTP_ORIGIN": "https://evil.example"},
        ),
        ({"action": "save", "token": sim_account}, {"HTTP_HX_REQUEST": "true"}),
    ]
    for data, extra in forged:
        assert client.post("/accounts/token/", data, **extra).status_code == 403

    assert _calls_for(simulator, sim_account) == 0
    assert not DcdnCredential.objects.exists()


def test_demo_setup_token_works_against_the_simulator(simulator):
    call_command("demo_setup", "--token", "demo-token", stdout=io.StringIO())

    demo = get_user_model().objects.get(username="demo")
    assert services.dcdn_client_for(demo).list_regions()
