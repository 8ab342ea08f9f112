"""Login, logout, password change, sign-up and the htmx expired-session redirect."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_login_page_is_accessible_form(client):
    html = client.get("/accounts/login/").content.decode()
    assert '<label for="id_username">Username</label>' in html
    assert 'autocomplete="username"' in html
    assert 'autocomplete="current-password"' in html
    assert "<script>" not in html and "style=" not in html


def test_login_rotates_the_session(client, user, password):
    client.get("/accounts/login/")
    session = client.session
    session["before_login"] = True
    session.save()
    before = session.session_key

    response = client.post("/accounts/login/", {"username": "owner", "password": password})

    assert response.status_code == 302
    after = client.cookies["sessionid"].value
    assert after != before
    assert not Session.objects.filter(session_key=before).exists()


def test_login_redirects_to_safe_next_only(client, user, password):
    ok = client.post(
        "/accounts/login/?next=/instances/", {"username": "owner", "password": password}
    )
    assert ok["Location"] == "/instances/"
    client.logout()
    evil = client.post(
        "/accounts/login/",
        {"username": "owner", "password": password, "next": "https://evil.example/"},
    )
    assert evil["Location"] == "/"


def test_wrong_password_shows_an_error(client, user):
    response = client.post("/accounts/login/", {"username": "owner", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_logout_is_post_only(logged_in):
    assert logged_in.get("/accounts/logout/").status_code == 405
    assert logged_in.get("/").status_code == 200


def test_logout_invalidates_the_session(logged_in):
    old_key = logged_in.session.session_key
    response = logged_in.post("/accounts/logout/")

    assert response["Location"] == "/accounts/login/"
    assert not Session.objects.filter(session_key=old_key).exists()
    # Replaying the old cookie does not log anyone in.
    replay = Client()
    replay.cookies["sessionid"] = old_key
    assert replay.get("/")["Location"].startswith("/accounts/login/")


def test_password_change(logged_in, user, password):
    page = logged_in.get(reverse("accounts:password_change")).content.decode()
    assert 'autocomplete="current-password"' in page
    response = logged_in.post(
        "/accounts/password/",
        {
            "old_password": password,
            "new_password1": "a-brand-new-passphrase-42",
            "new_password2": "a-brand-new-passphrase-42",
        },
    )
    assert response["Location"] == reverse("accounts:password_change_done")
    user.refresh_from_db()
    assert user.check_password("a-brand-new-passphrase-42")
    # The session survives its own password change.
    assert logged_in.get("/accounts/password/done/").status_code == 200


def test_signup_is_off_by_default(client, settings):
    settings.ACCOUNTS_ALLOW_SIGNUP = False
    assert client.get("/accounts/signup/").status_code == 404
    assert client.post("/accounts/signup/", {"username": "x"}).status_code == 404
    assert "Create one" not in client.get("/accounts/login/").content.decode()


def test_signup_when_enabled(client, settings):
    settings.ACCOUNTS_ALLOW_SIGNUP = True
    assert "Create one" in client.get("/accounts/login/").content.decode()
    response = client.post(
        "/accounts/signup/",
        {
            "username": "newbie",
            "password1": "a-long-passphrase-91",
            "password2": "a-long-passphrase-91",
        },
    )
    assert response["Location"] == "/accounts/token/"
    assert get_user_model().objects.filter(username="newbie").exists()
    assert client.get("/accounts/token/").status_code == 200


def test_htmx_request_with_expired_session_gets_hx_redirect(client):
    response = client.get(
        "/instances/",
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/instances/?page=2",
    )
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/accounts/login/?next=%2Finstances%2F%3Fpage%3D2"
    assert "Location" not in response


def test_htmx_post_with_expired_session_gets_hx_redirect(client):
    response = client.post("/accounts/token/", {"action": "remove"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/accounts/login/"


def test_plain_request_with_expired_session_gets_a_normal_redirect(client):
    response = client.get("/instances/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/instances/"


def test_login_error_is_tied_to_the_inputs(client, user):
    html = client.post("/accounts/login/", {"username": "owner", "password": "wrong"}).content
    html = html.decode()
    assert 'id="form-errors"' in html
    assert html.count('aria-describedby="form-errors"') == 2
