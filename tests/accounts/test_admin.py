from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts import services

from .conftest import TOKEN

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client, password):
    admin = get_user_model().objects.create_superuser("boss", "b@example.com", password)
    client.force_login(admin)
    return client


def test_admin_shows_last4_never_the_ciphertext_or_token(admin_client_, user, fake_dcdn):
    credential = services.credential_save(user=user, token=TOKEN)

    listing = admin_client_.get("/admin/accounts/dcdncredential/").content.decode()
    detail = admin_client_.get(
        f"/admin/accounts/dcdncredential/{credential.pk}/change/"
    ).content.decode()

    assert "••••WXYZ" in listing
    for html in (listing, detail):
        assert TOKEN not in html
        assert credential.token_encrypted not in html
    assert 'name="token_encrypted"' not in detail
    assert admin_client_.get("/admin/accounts/dcdncredential/add/").status_code == 403


def test_admin_can_create_users(admin_client_):
    assert admin_client_.get("/admin/auth/user/add/").status_code == 200
