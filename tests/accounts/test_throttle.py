"""Login throttling per (username, address) and per address."""

from __future__ import annotations

from unittest import mock

import pytest
from django.test import Client, RequestFactory

from accounts import throttle

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.7"
HOME = "198.51.100.20"


def _login(client: Client, password: str, username: str = "owner"):
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_twenty_wrong_passwords_lock_that_username_from_that_address(user, password, settings):
    settings.LOGIN_FAILURE_LIMIT = 20
    attacker = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(20):
        assert _login(attacker, "wrong-guess").status_code == 200

    locked = _login(attacker, password)
    html = locked.content.decode()
    assert locked.status_code == 429
    assert "Too many failed attempts; try again in 15 minutes." in html
    assert 'aria-describedby="locked-alert"' in html
    assert 850 < int(locked["Retry-After"]) <= 900
    assert "_auth_user_id" not in attacker.session

    # The right password from another address still works.
    owner = Client(REMOTE_ADDR=HOME)
    response = _login(owner, password)
    assert response.status_code == 302
    assert owner.session["_auth_user_id"] == str(user.pk)


def test_locked_attempt_does_not_check_the_password(user, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    attacker = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(3):
        _login(attacker, "wrong-guess")

    with (
        mock.patch("django.contrib.auth.authenticate") as authenticate,
        mock.patch("django.contrib.auth.forms.authenticate") as form_authenticate,
    ):
        response = _login(attacker, "another-guess")

    assert response.status_code == 429
    authenticate.assert_not_called()
    form_authenticate.assert_not_called()


def test_other_usernames_from_the_locked_address_still_work_until_the_address_limit(
    user, outsider, password, settings
):
    settings.LOGIN_FAILURE_LIMIT = 2
    attacker = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(2):
        _login(attacker, "wrong")
    assert _login(attacker, password).status_code == 429
    assert _login(attacker, password, username="outsider").status_code == 302


def test_an_address_is_locked_after_many_failures_across_usernames(user, password, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    attacker = Client(REMOTE_ADDR=ATTACKER)
    # Spraying: one failure each for many usernames never hits the per-username limit...
    for n in range(2 * throttle.ADDRESS_LIMIT_FACTOR):
        _login(attacker, "wrong", username=f"someone-{n}")
    # ...but the address as a whole is locked, even for a correct password.
    assert _login(attacker, password).status_code == 429
    assert _login(Client(REMOTE_ADDR=HOME), password).status_code == 302


def test_success_clears_the_username_counter(user, password, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    client = Client(REMOTE_ADDR=HOME)
    for _ in range(2):
        _login(client, "wrong")
    assert _login(client, password).status_code == 302
    client.logout()
    for _ in range(2):
        _login(client, "wrong")
    assert _login(client, password).status_code == 302


def test_username_case_and_spaces_do_not_dodge_the_lock(user, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    attacker = Client(REMOTE_ADDR=ATTACKER)
    _login(attacker, "wrong", username="Owner")
    _login(attacker, "wrong", username=" owner ")
    assert throttle.lock_remaining(username="owner", address=ATTACKER) > 0


def test_lock_expires_after_the_window(settings):
    settings.LOGIN_FAILURE_LIMIT = 1
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 60
    with mock.patch("accounts.throttle.time.time", return_value=1_000_000.0):
        throttle.record_failure(username="owner", address=ATTACKER)
        assert throttle.lock_remaining(username="owner", address=ATTACKER) == 60
    with mock.patch("accounts.throttle.time.time", return_value=1_000_061.0):
        assert throttle.lock_remaining(username="owner", address=ATTACKER) == 0


def test_reauth_page_is_throttled_too(logged_in, password, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    for _ in range(2):
        logged_in.post("/accounts/reauth/", {"password": "wrong"})
    response = logged_in.post("/accounts/reauth/", {"password": password})
    assert response.status_code == 429
    assert "Too many failed attempts" in response.content.decode()


# --- client address --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("203.0.113.7", "", "203.0.113.7"),
        # Not from a trusted proxy: X-Forwarded-For is the client's own claim, ignored.
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),
        # From the local proxy: the rightmost entry the proxy appended.
        ("127.0.0.1", "198.51.100.1", "198.51.100.1"),
        # Spoofed entries to the left are ignored.
        ("127.0.0.1", "10.9.9.9, 1.2.3.4, 198.51.100.1", "198.51.100.1"),
        # Chained trusted proxies are skipped from the right.
        ("127.0.0.1", "198.51.100.1, 127.0.0.1", "198.51.100.1"),
        ("::1", "2001:db8::5", "2001:db8::5"),
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", "garbage", "127.0.0.1"),
    ],
)
def test_client_address(remote, forwarded, expected):
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert throttle.client_address(request) == expected


def test_trusted_proxies_setting_accepts_networks(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="198.51.100.9, 10.4.4.4"
    )
    assert throttle.client_address(request) == "198.51.100.9"
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert throttle.client_address(request) == "127.0.0.1"


def test_spoofed_forwarded_for_cannot_dodge_a_lock_behind_the_proxy(user, password, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    for n in range(2):
        Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}, {ATTACKER}").post(
            "/accounts/login/", {"username": "owner", "password": "wrong"}
        )
    spoofer = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"192.0.2.99, {ATTACKER}")
    assert _login(spoofer, password).status_code == 429


def test_ipv6_clients_are_counted_per_64(settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    throttle.record_failure(username="owner", address="2001:db8:1:2::1")
    throttle.record_failure(username="owner", address="2001:db8:1:2::ffff")
    assert throttle.lock_remaining(username="owner", address="2001:db8:1:2::abcd") > 0
    assert throttle.lock_remaining(username="owner", address="2001:db8:1:3::1") == 0
