"""Real Chromium (the shared browser of tests/e2e): log in, save a token, see only its
last four characters, and no CSP violation on the way."""

from __future__ import annotations

import json
import urllib.request

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIM_TOKEN = "brw-Tok3n-0a1b2c3d4e5f6789HJKL"
PASSWORD = "correct-horse-battery-staple-7"


@pytest.fixture
def user(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return get_user_model().objects.create_user("owner", "owner@example.com", PASSWORD)


@pytest.fixture
def password() -> str:
    return PASSWORD


def test_login_save_token_and_see_only_last4(page, live_server, simulator, user, password):
    request = urllib.request.Request(
        simulator.base_url + "/_sim/accounts",
        data=json.dumps({"token": SIM_TOKEN, "credits": 5, "nodes": []}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=5).close()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    page.goto(f"{live_server.url}/accounts/token/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/accounts/token/")
    assert page.get_by_role("alert").filter(has_text="No DCDN API token saved yet.").is_visible()

    field = page.get_by_label("API token", exact=True)
    assert field.get_attribute("type") == "password"
    field.fill(SIM_TOKEN)
    page.get_by_role("button", name="Verify and save").click()
    page.get_by_text("Saved token ending in ••••HJKL").wait_for()

    assert SIM_TOKEN not in page.content()
    assert page.get_by_label("API token", exact=True).count() == 0  # replacing needs re-auth
    assert "No DCDN API token saved yet." not in page.content()
    with connection.cursor() as cursor:
        cursor.execute("SELECT token_encrypted, last4 FROM accounts_dcdncredential")
        rows = cursor.fetchall()
    assert len(rows) == 1 and rows[0][1] == "HJKL" and SIM_TOKEN not in rows[0][0]
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
