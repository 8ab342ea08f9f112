"""DCDN failures on the instances pages: 401 goes to the token page, 429 says when it
retries, 5xx and unreadable answers become a message on a page that still renders."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.services import credential_store_unverified
from panel.dcdn.catalog import catalog_get
from panel.dcdn.errors import RateLimited
from panel.instances import snapshot
from panel.instances.models import Operation

from . import test_views as base
from .test_views import HTMX, PASSWORD, make_instance, sim_faults, text_of

# Shared fixtures (the owner with the demo token, logged in).
_fast_hashing = base._fast_hashing
owner = base.owner
owner_client = base.owner_client

PAGES = ("home", "instances:list", "instances:create", "instances:operations")


def assert_clean_page(response, *words):
    html = text_of(response)
    assert response.status_code == 200
    assert "Traceback" not in html and "Server Error" not in html
    for word in words:
        assert word in html, word
    # The rest of the page is there: navigation and the page heading.
    assert 'aria-label="Main"' in html and "<h1>" in html


@pytest.fixture
def rejected_client(client, db, simulator):
    user = get_user_model().objects.create_user("rejected", "r@example.com", PASSWORD)
    credential_store_unverified(user=user, token="revoked-token-0000")
    client.force_login(user)
    return client


# --- 401 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url_name", ["instances:list", "instances:create"])
def test_a_rejected_token_sends_the_user_to_the_token_page(rejected_client, url_name):
    response = rejected_client.get(reverse(url_name))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:token")
    page = rejected_client.get(response["Location"])
    assert "Update your API token" in text_of(page) or "rejected" in text_of(page)


def test_a_rejected_token_on_an_htmx_poll_answers_hx_redirect(rejected_client):
    response = rejected_client.get(reverse("instances:list"), **HTMX)
    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("accounts:token")


def test_a_rejected_token_on_an_action_goes_to_the_token_page(rejected_client):
    response = rejected_client.post(reverse("instances:stop", args=["abc"]))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:token")
    response = rejected_client.post(reverse("instances:stop", args=["abc"]), **HTMX)
    assert response["HX-Redirect"] == reverse("accounts:token")


def test_a_rejected_token_on_the_detail_page_goes_to_the_token_page(rejected_client):
    response = rejected_client.get(reverse("instances:detail", args=["abc"]))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:token")


def test_create_without_a_token_goes_to_the_token_page(client, db, simulator):
    user = get_user_model().objects.create_user("new", "new@example.com", PASSWORD)
    client.force_login(user)
    response = client.get(reverse("instances:create"))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:token")
    assert "No DCDN API token" in text_of(client.get(response["Location"]))


def test_home_with_a_rejected_token_explains_and_links(rejected_client):
    response = rejected_client.get(reverse("home"))
    assert_clean_page(response, "Update your API token")


# --- 5xx, timeouts, unreadable answers ----------------------------------------------------


@pytest.mark.parametrize("fault", [{"down": True}, {"malformed_rate": 1.0}])
def test_pages_render_with_a_message_when_dcdn_fails(owner_client, simulator, fault):
    sim_faults(simulator, **fault)
    for name in PAGES:
        response = owner_client.get(reverse(name))
        assert_clean_page(response)
    list_html = text_of(owner_client.get(reverse("instances:list")))
    assert "alert" in list_html
    assert re.search(r"DCDN (is not answering|answered with something)", list_html)
    create_html = text_of(owner_client.get(reverse("instances:create")))
    assert "could not be loaded" in create_html


def test_detail_keeps_what_it_knows_when_dcdn_fails(owner_client, owner, simulator):
    instance = make_instance(owner, "web-1")
    snapshot.snapshot_get(user=owner)
    sim_faults(simulator, down=True)
    response = owner_client.get(reverse("instances:detail", args=[instance.id]))
    assert_clean_page(response, "DCDN is not answering properly", "web-1", instance.ip_address)
    # It retries by itself, through htmx.
    assert 'hx-trigger="load delay:5s"' in text_of(response)


def test_an_action_during_an_outage_shows_a_message(owner_client, owner, simulator):
    instance = make_instance(owner, "web-1")
    snapshot.snapshot_get(user=owner)
    sim_faults(simulator, down=True)
    response = owner_client.post(reverse("instances:stop", args=[instance.id]), follow=True)
    assert_clean_page(response, "DCDN is not answering properly")
    response = owner_client.post(reverse("instances:stop", args=[instance.id]), **HTMX)
    assert response.status_code == 200
    assert "DCDN is not answering properly" in text_of(response)


def test_create_page_uses_the_cached_catalog_during_an_outage(owner_client, owner, simulator):
    from accounts.services import dcdn_client_for

    catalog_get(client=dcdn_client_for(owner))
    sim_faults(simulator, down=True)
    response = owner_client.get(reverse("instances:create"))
    assert_clean_page(response, "Create instance")
    response = owner_client.post(
        reverse("instances:create"),
        {
            "name": "web-1",
            "cpu_type": "shared",
            "plan": "nano",
            "image": "debian-12",
            "region": "eu-west",
        },
    )
    # Recorded for the worker, which retries until DCDN answers.
    assert response.status_code == 302
    assert Operation.objects.count() == 1


# --- 429 ---------------------------------------------------------------------------------


class BusyClient:
    def __getattr__(self, name):
        def busy(*args, **kwargs):
            raise RateLimited("Too many requests.", retry_after=7)

        return busy


@pytest.fixture
def busy(monkeypatch):
    monkeypatch.setattr(snapshot, "client_for", lambda user, max_wait=None: BusyClient())


def test_list_when_rate_limited_says_busy_and_retries(owner_client, busy):
    response = owner_client.get(reverse("instances:list"))
    assert_clean_page(response, "DCDN is busy, retrying in 7 s")
    assert "load delay:7s" in text_of(response)
    response = owner_client.get(reverse("instances:list"), **HTMX)
    assert "DCDN is busy, retrying in 7 s" in text_of(response)
    assert "load delay:7s" in text_of(response)


def test_detail_when_rate_limited_says_busy_and_retries(owner_client, busy):
    response = owner_client.get(reverse("instances:detail", args=["abc"]))
    assert_clean_page(response, "DCDN is busy, retrying in 7 s")
    assert 'hx-trigger="load delay:7s"' in text_of(response)


def test_home_when_rate_limited_says_busy(owner_client, busy):
    response = owner_client.get(reverse("home"))
    assert_clean_page(response, "DCDN is busy, retrying in 7 s")


# --- strict CSP: no inline scripts or styles ------------------------------------------------


def test_pages_have_no_inline_styles_or_unnonced_scripts(owner_client, owner):
    instance = make_instance(owner, "web-1")
    urls = [reverse(name) for name in PAGES] + [
        reverse("instances:detail", args=[instance.id]),
        reverse("instances:destroy", args=[instance.id]),
    ]
    for url in urls:
        response = owner_client.get(url)
        html = text_of(response)
        assert " style=" not in html, url
        assert "<style" not in html, url
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "nonce=" in tag or 'type="application/json"' in tag, (url, tag)
        assert not re.search(r"<[^>]+\son(click|change|submit|load)=", html), url
