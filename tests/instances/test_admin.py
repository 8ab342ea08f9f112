"""The operations admin is read-only and never shows the encrypted root password."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.crypto import encrypt_secret
from panel.instances.models import Operation

pytestmark = pytest.mark.django_db


def test_admin_lists_and_shows_operations_without_the_secret(client, owner):
    admin = get_user_model().objects.create_superuser("admin", "a@example.com", "pw-admin-12345")
    ciphertext = encrypt_secret("root-Password-1")
    operation = Operation.objects.create(
        owner=owner,
        owner_key=f"user:{owner.pk}",
        kind="create",
        state="succeeded",
        step="running",
        instance_name="web-1",
        root_password_encrypted=ciphertext,
        password_expires_at=timezone.now() + timedelta(hours=1),
    )
    client.force_login(admin)
    listing = client.get("/admin/instances/operation/")
    assert listing.status_code == 200 and b"web-1" in listing.content
    page = client.get(f"/admin/instances/operation/{operation.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert ciphertext not in body and "root-Password-1" not in body
    assert 'name="state"' not in body  # read-only: no form inputs for fields
    assert client.get("/admin/instances/operation/add/").status_code == 403
