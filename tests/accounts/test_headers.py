"""Security headers and production cookie flags."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", ["/accounts/login/", "/accounts/token/", "/"])
def test_strict_csp_with_a_nonce(user, path):
    client = Client()
    if path != "/accounts/login/":
        client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    match = re.search(r"script-src [^;]*'nonce-([^']+)'", policy)
    assert match, policy
    html = response.content.decode()
    # Every script carries the nonce; there is no inline script or style attribute.
    for tag in re.findall(r"<script[^>]*>", html):
        assert f'nonce="{match.group(1)}"' in tag, tag
    assert re.search(r"<script[^>]*>\s*[^<\s]", html) is None
    assert " style=" not in html
    assert "<style" not in html


def test_nonce_differs_per_response(client):
    first = client.get("/accounts/login/")["Content-Security-Policy"]
    second = client.get("/accounts/login/")["Content-Security-Policy"]
    assert first != second


def test_nosniff_referrer_and_framing_headers(client):
    response = client.get("/accounts/login/")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_hsts_on_https(client, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    response = client.get("/accounts/login/", secure=True)
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


def test_production_settings_make_cookies_secure_httponly_samesite(tmp_path):
    env = {
        **os.environ,
        "DJANGO_HTTPS": "1",
        "PANEL_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "panel.settings",
    }
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, "
        "s.SESSION_COOKIE_SAMESITE, s.CSRF_COOKIE_SAMESITE, s.SECURE_HSTS_SECONDS > 0, "
        "s.SECURE_CONTENT_TYPE_NOSNIFF)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", "True", "True", "Lax", "Lax", "True", "True"]


def test_session_cookie_flags_on_login(client, user, password, settings):
    settings.SESSION_COOKIE_SECURE = True
    client.post("/accounts/login/", {"username": "owner", "password": password}, secure=True)
    cookie = client.cookies["sessionid"]
    assert cookie["secure"] is True
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
