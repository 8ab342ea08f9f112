"""Forged POSTs are refused before any view (and so any DCDN call) runs."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import DcdnCredential

from .conftest import TOKEN

pytestmark = pytest.mark.django_db
URL = "/accounts/token/"


@pytest.fixture
def strict(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _csrf_token(client: Client) -> str:
    client.get(URL)
    return client.cookies["csrftoken"].value


def test_post_with_valid_csrf_token_works(strict, fake_dcdn):
    token = _csrf_token(strict)
    response = strict.post(URL, {"action": "save", "token": TOKEN, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert len(fake_dcdn.calls) == 1


def test_post_without_csrf_token_is_refused(strict, fake_dcdn):
    _csrf_token(strict)
    response = strict.post(URL, {"action": "save", "token": TOKEN})
    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()
    assert TOKEN not in response.content.decode()
    assert fake_dcdn.calls == []
    assert not DcdnCredential.objects.exists()


def test_post_with_wrong_csrf_token_is_refused(strict, fake_dcdn):
    _csrf_token(strict)
    response = strict.post(URL, {"action": "save", "token": TOKEN, "csrfmiddlewaretoken": "x" * 64})
    assert response.status_code == 403
    assert fake_dcdn.calls == []


def test_post_from_a_foreign_origin_is_refused_even_with_a_valid_token(strict, fake_dcdn):
    token = _csrf_token(strict)
    response = strict.post(
        URL,
        {"action": "save", "token": TOKEN, "csrfmiddlewaretoken": token},
        HTTP_ORIGIN="https://evil.example",
    )
    assert response.status_code == 403
    assert fake_dcdn.calls == []
    assert not DcdnCredential.objects.exists()


def test_htmx_post_with_header_token_works(strict, fake_dcdn):
    token = _csrf_token(strict)
    response = strict.post(
        URL, {"action": "save", "token": TOKEN}, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 302
    assert len(fake_dcdn.calls) == 1


def test_htmx_csrf_failure_asks_for_a_refresh(strict, fake_dcdn):
    _csrf_token(strict)
    response = strict.post(URL, {"action": "save", "token": TOKEN}, HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert response["HX-Refresh"] == "true"
    assert fake_dcdn.calls == []


def test_login_and_logout_need_csrf_too(user, password):
    client = Client(enforce_csrf_checks=True)
    assert (
        client.post("/accounts/login/", {"username": "owner", "password": password}).status_code
        == 403
    )
    client.force_login(user)
    assert client.post("/accounts/logout/").status_code == 403
    assert "_auth_user_id" in client.session


def test_pages_carry_the_csrf_token_for_htmx(logged_in):
    html = logged_in.get("/").content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in html
