"""The token page: label, last four only, re-auth for changes, banner on every page."""

from __future__ import annotations

import logging
import re
import sys

import pytest
from django.test import Client
from django.urls import reverse
from django.views.debug import ExceptionReporter

from accounts import services
from accounts.models import DcdnCredential
from panel.dcdn.errors import Unauthorized, Unavailable

from .conftest import OTHER_TOKEN, TOKEN, mark_reauth

pytestmark = pytest.mark.django_db
URL = "/accounts/token/"


def _save(client: Client, token: str):
    return client.post(URL, {"action": "save", "token": token}, follow=True)


def test_anonymous_is_sent_to_login(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_page_has_a_password_input_labelled_api_token(logged_in, fake_dcdn):
    html = logged_in.get(URL).content.decode()

    assert '<label for="id_token">API token</label>' in html
    assert 'type="password" name="token"' in html
    assert 'autocomplete="new-password"' in html
    assert 'aria-describedby="id_token_helptext"' in html


def test_token_page_is_never_cached(logged_in):
    response = logged_in.get(URL)
    assert "no-store" in response["Cache-Control"]
    assert 'hx-history="false"' in response.content.decode()
    assert reverse("accounts:token") == URL


def test_first_token_is_saved_without_reauth_and_only_last4_is_shown(logged_in, fake_dcdn):
    response = _save(logged_in, TOKEN)
    html = response.content.decode()

    assert response.status_code == 200
    assert 'Saved token ending in <span class="nowrap">••••WXYZ</span>' in html
    assert TOKEN not in html
    assert TOKEN[:-4] not in html
    assert DcdnCredential.objects.get().last4 == "WXYZ"
    # The success message carries no secret either.
    assert "verified with DCDN and saved" in html


def _status(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html.split("<dt>Status</dt>")[1].split("</dd>")[0]).strip()


def test_verified_token_reads_valid(logged_in, fake_dcdn):
    assert _status(_save(logged_in, TOKEN).content.decode()) == "Valid"


def test_token_stored_without_verification_reads_saved_not_verified(logged_in, user):
    services.credential_store_unverified(user=user, token=TOKEN)
    html = logged_in.get(URL).content.decode()
    assert _status(html) == "Saved, not yet verified"
    assert "Not checked with DCDN yet" in html
    # Still usable: no banner asking for a token.
    assert "DCDN rejected this token" not in html


def test_rejected_token_shows_form_error_and_is_not_stored(logged_in, fake_dcdn):
    fake_dcdn.error = Unauthorized()
    response = _save(logged_in, TOKEN)
    html = response.content.decode()

    assert "DCDN rejected this token" in html
    assert 'aria-describedby="id_token_helptext id_token_error"' in html
    assert 'aria-invalid="true"' in html
    assert TOKEN not in html  # render_value=False: never echoed back
    assert not DcdnCredential.objects.exists()


def test_unavailable_dcdn_stores_nothing_and_says_so(logged_in, fake_dcdn):
    fake_dcdn.error = Unavailable()
    html = _save(logged_in, TOKEN).content.decode()

    assert "could not be verified right now" in html
    assert TOKEN not in html
    assert not DcdnCredential.objects.exists()


def test_replacing_needs_a_recent_password(logged_in, user, fake_dcdn):
    services.credential_save(user=user, token=TOKEN)
    fake_dcdn.calls.clear()

    page = logged_in.get(URL).content.decode()
    assert "confirm your password first" in page
    assert 'name="token"' not in page

    response = logged_in.post(URL, {"action": "save", "token": OTHER_TOKEN})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/reauth/?next=%2Faccounts%2Ftoken%2F"
    assert fake_dcdn.calls == []
    assert DcdnCredential.objects.get().last4 == "WXYZ"


def test_removing_needs_a_recent_password(logged_in, user, fake_dcdn):
    services.credential_save(user=user, token=TOKEN)
    response = logged_in.post(URL, {"action": "remove"})

    assert response["Location"].startswith("/accounts/reauth/")
    assert DcdnCredential.objects.exists()


def test_stale_reauth_is_not_enough(logged_in, user, fake_dcdn, settings):
    services.credential_save(user=user, token=TOKEN)
    mark_reauth(logged_in, age=settings.REAUTH_SECONDS + 1)

    response = logged_in.post(URL, {"action": "remove"})
    assert response["Location"].startswith("/accounts/reauth/")


def test_reauth_page_then_replace_and_remove(logged_in, user, password, fake_dcdn):
    services.credential_save(user=user, token=TOKEN)

    wrong = logged_in.post("/accounts/reauth/", {"password": "nope", "next": URL})
    assert wrong.status_code == 200
    assert "That is not your password." in wrong.content.decode()

    right = logged_in.post("/accounts/reauth/", {"password": password, "next": URL})
    assert right["Location"] == URL

    page = logged_in.get(URL).content.decode()
    assert "Remove the token" in page
    html = _save(logged_in, OTHER_TOKEN).content.decode()
    assert "••••QRST" in html
    assert OTHER_TOKEN not in html

    logged_in.post(URL, {"action": "remove"})
    assert not DcdnCredential.objects.exists()


def test_reauth_ignores_foreign_next(logged_in):
    mark = logged_in.post(
        "/accounts/reauth/",
        {"password": "correct-horse-battery-staple-7", "next": "https://evil.example/"},
    )
    assert mark["Location"] == "/"


def test_reauth_for_htmx_answers_hx_redirect(logged_in, user, fake_dcdn):
    services.credential_save(user=user, token=TOKEN)
    response = logged_in.post(
        URL,
        {"action": "remove"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/accounts/token/",
    )
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/accounts/reauth/?next=%2Faccounts%2Ftoken%2F"


# Pages that render base.html without asking DCDN for anything; the simulator tests cover
# the instances and earnings pages with a real client.
BANNER_PAGES = ["/_probe/", "/accounts/token/", "/accounts/password/", "/accounts/reauth/"]


@pytest.mark.urls("tests.accounts.urls_probe")
@pytest.mark.parametrize("path", BANNER_PAGES)
def test_banner_on_every_page_when_token_missing(logged_in, path):
    html = logged_in.get(path).content.decode()
    assert "No DCDN API token saved yet." in html
    assert 'href="/accounts/token/">Update your API token' in html


@pytest.mark.urls("tests.accounts.urls_probe")
@pytest.mark.parametrize("path", BANNER_PAGES)
def test_banner_on_every_page_after_a_401(logged_in, user, fake_dcdn, path):
    services.credential_save(user=user, token=TOKEN)
    assert "DCDN rejected your API token." not in logged_in.get(path).content.decode()

    fake_dcdn.error = Unauthorized()
    with pytest.raises(Unauthorized):
        services.dcdn_client_for(user).list_regions()

    html = logged_in.get(path).content.decode()
    assert "DCDN rejected your API token." in html
    assert 'href="/accounts/token/">Update your API token' in html


@pytest.mark.urls("tests.accounts.urls_probe")
def test_no_banner_for_anonymous_pages(client):
    assert "Update your API token" not in client.get("/accounts/login/").content.decode()


@pytest.mark.urls("tests.accounts.urls_probe")
def test_banner_costs_one_query(logged_in, user, fake_dcdn, django_assert_num_queries):
    services.credential_save(user=user, token=TOKEN)
    # The session, the user, and one for the credential.
    with django_assert_num_queries(3):
        logged_in.get("/_probe/")


@pytest.fixture
def broken_storage(monkeypatch):
    def broken_update_or_create(**kwargs):
        raise RuntimeError("database is on fire")

    monkeypatch.setattr(DcdnCredential.objects, "update_or_create", broken_update_or_create)


def test_debug_error_page_does_not_contain_the_token(
    logged_in, fake_dcdn, settings, broken_storage
):
    """Django's own filter is off under DEBUG; the token page's filter is not."""
    settings.DEBUG = True
    logged_in.raise_request_exception = False

    response = logged_in.post(URL, {"action": "save", "token": TOKEN})
    html = response.content.decode()

    assert response.status_code == 500
    assert "database is on fire" in html  # it is the technical error page
    assert "token" in html  # the parameter and variables are listed...
    assert TOKEN not in html  # ...but never their value
    assert TOKEN[-12:] not in html


def test_emailed_error_report_does_not_contain_the_token(
    logged_in, fake_dcdn, settings, broken_storage, caplog
):
    """The report mail_admins would send is built from the logged request and exc_info."""
    settings.DEBUG = False
    logged_in.raise_request_exception = False

    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = logged_in.post(URL, {"action": "save", "token": TOKEN})

    assert response.status_code == 500
    record = next(r for r in caplog.records if r.name == "django.request")
    reporter = ExceptionReporter(record.request, *record.exc_info, is_email=True)
    report = reporter.get_traceback_text() + reporter.get_traceback_html()
    assert "database is on fire" in report
    assert TOKEN not in report
    assert TOKEN not in caplog.text


def test_report_filter_blanks_secret_looking_locals_in_any_frame(rf):
    from accounts.debug import PanelExceptionReporterFilter

    def send():
        headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
        token = TOKEN
        raise RuntimeError(f"boom {len(headers)} {len(token)}")

    try:
        send()
    except RuntimeError:
        exc_info = sys.exc_info()
    request = rf.get("/")
    request.exception_reporter_filter = PanelExceptionReporterFilter()
    report = ExceptionReporter(request, *exc_info).get_traceback_html()
    assert "application/json" in report
    assert TOKEN not in report
