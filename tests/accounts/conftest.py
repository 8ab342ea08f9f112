"""Fixtures for the accounts tests: users, logged-in clients and a fake DCDN client
patched at the accounts.services boundary."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.reauth import SESSION_KEY
from panel.dcdn.errors import Unauthorized

PASSWORD = "correct-horse-battery-staple-7"
TOKEN = "dcdn-Secret-7f3a9c1e5b2d4f6aWXYZ"
OTHER_TOKEN = "dcdn-Other-0b1c2d3e4f5a6b7cQRST"


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    # Twenty wrong passwords must not take twenty slow PBKDF2 rounds.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("owner", "owner@example.com", PASSWORD)


@pytest.fixture
def outsider(db):
    return get_user_model().objects.create_user("outsider", "out@example.com", PASSWORD)


@pytest.fixture
def logged_in(client, user) -> Client:
    client.force_login(user)
    return client


def mark_reauth(client: Client, *, age: float = 0) -> None:
    session = client.session
    session[SESSION_KEY] = int(time.time() - age)
    session.save()


@pytest.fixture
def reauthed(logged_in) -> Client:
    mark_reauth(logged_in)
    return logged_in


@dataclass
class FakeClient:
    dcdn: FakeDcdn
    token: str
    budget_key: str
    on_unauthorized: object = None
    max_wait: float | None = None

    def list_regions(self):
        self.dcdn.calls.append(("list_regions", self.token, self.budget_key))
        if self.dcdn.error is not None:
            if isinstance(self.dcdn.error, Unauthorized) and self.on_unauthorized:
                self.on_unauthorized()
            raise self.dcdn.error
        return []


@dataclass
class FakeDcdn:
    """Stands in for panel.dcdn.client.DcdnClient; ``error`` is raised by every call."""

    error: Exception | None = None
    calls: list = field(default_factory=list)
    clients: list = field(default_factory=list)

    def __call__(self, *, token, budget_key, on_unauthorized=None, max_wait=None, **kwargs):
        client = FakeClient(self, token, budget_key, on_unauthorized, max_wait)
        self.clients.append(client)
        return client


@pytest.fixture
def fake_dcdn(monkeypatch) -> FakeDcdn:
    fake = FakeDcdn()
    monkeypatch.setattr("accounts.services.DcdnClient", fake)
    return fake
