"""Services, with DCDN patched at the accounts.services boundary."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.db import connection

from accounts import services
from accounts.crypto import decrypt_secret
from accounts.errors import TokenMissing, TokenUnreadable
from accounts.models import DcdnCredential, owner_key_for
from accounts.signals import credential_changed
from panel.dcdn.errors import RateLimited, Unauthorized, Unavailable

from .conftest import OTHER_TOKEN, TOKEN

pytestmark = pytest.mark.django_db


def _raw_rows() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {DcdnCredential._meta.db_table}")
        return cursor.fetchall()


def test_saved_token_is_encrypted_at_rest(user, fake_dcdn):
    credential = services.credential_save(user=user, token=TOKEN)

    rows = _raw_rows()
    assert len(rows) == 1
    assert TOKEN not in repr(rows)
    assert decrypt_secret(credential.token_encrypted) == TOKEN
    assert credential.last4 == "WXYZ"
    assert credential.status == DcdnCredential.Status.VALID
    assert credential.verified_at is not None


def test_save_verifies_with_one_call_under_the_owners_budget(user, fake_dcdn):
    services.credential_save(user=user, token=f"  {TOKEN}\n")

    assert fake_dcdn.calls == [("list_regions", TOKEN, f"user:{user.pk}")]
    assert owner_key_for(user) == f"user:{user.pk}"


def test_rejected_token_is_not_stored(user, fake_dcdn):
    fake_dcdn.error = Unauthorized()
    with pytest.raises(ValidationError) as excinfo:
        services.credential_save(user=user, token=TOKEN)

    assert excinfo.value.code == "rejected"
    assert "DCDN rejected this token" in excinfo.value.messages[0]
    assert not DcdnCredential.objects.exists()


@pytest.mark.parametrize("error", [Unavailable(), RateLimited(retry_after=3)])
def test_unverifiable_token_is_not_stored(user, fake_dcdn, error):
    fake_dcdn.error = error
    with pytest.raises(ValidationError) as excinfo:
        services.credential_save(user=user, token=TOKEN)

    assert excinfo.value.code == "unverified"
    assert "could not be verified" in excinfo.value.messages[0]
    assert not DcdnCredential.objects.exists()


def test_unverifiable_replacement_keeps_the_old_token(user, fake_dcdn):
    services.credential_save(user=user, token=TOKEN)
    fake_dcdn.error = Unavailable()
    with pytest.raises(ValidationError):
        services.credential_save(user=user, token=OTHER_TOKEN)

    assert decrypt_secret(DcdnCredential.objects.get().token_encrypted) == TOKEN


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("", "required"),
        ("   ", "required"),
        ("short", "too_short"),
        ("x" * 600, "too_long"),
        ("has a space inside", "invalid"),
        ("tök-with-umlaut", "invalid"),
    ],
)
def test_malformed_tokens_are_refused_without_an_upstream_call(user, fake_dcdn, token, code):
    with pytest.raises(ValidationError) as excinfo:
        services.credential_save(user=user, token=token)

    assert excinfo.value.code == code
    assert fake_dcdn.calls == []


def test_unexpected_failure_while_verifying_does_not_carry_the_token(user, fake_dcdn, caplog):
    fake_dcdn.error = ValueError(f"Invalid header value 'Bearer {TOKEN}'")
    with caplog.at_level(logging.DEBUG), pytest.raises(ValidationError) as excinfo:
        services.credential_save(user=user, token=TOKEN)

    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__
    assert TOKEN not in caplog.text
    assert not DcdnCredential.objects.exists()


def test_saving_logs_nothing_of_the_token(user, fake_dcdn, caplog):
    with caplog.at_level(logging.DEBUG):
        services.credential_save(user=user, token=TOKEN)
        fake_dcdn.error = Unauthorized()
        with pytest.raises(ValidationError):
            services.credential_save(user=user, token=OTHER_TOKEN)

    assert caplog.records, "saving should log that it happened"
    assert TOKEN not in caplog.text
    assert OTHER_TOKEN not in caplog.text
    assert TOKEN[-8:] not in caplog.text


def test_store_unverified_makes_no_call(user, fake_dcdn):
    credential = services.credential_store_unverified(user=user, token=TOKEN)

    assert fake_dcdn.calls == []
    assert credential.verified_at is None
    assert decrypt_secret(credential.token_encrypted) == TOKEN


def test_mark_invalid_is_idempotent(user, fake_dcdn):
    services.credential_save(user=user, token=TOKEN)

    assert services.credential_mark_invalid(user=user) is True
    first = DcdnCredential.objects.get()
    assert services.credential_mark_invalid(user=user) is False
    second = DcdnCredential.objects.get()

    assert second.status == DcdnCredential.Status.INVALID
    assert second.invalid_since == first.invalid_since is not None


def test_saving_again_clears_invalid(user, fake_dcdn):
    services.credential_save(user=user, token=TOKEN)
    services.credential_mark_invalid(user=user)
    services.credential_save(user=user, token=OTHER_TOKEN)

    credential = DcdnCredential.objects.get()
    assert credential.status == DcdnCredential.Status.VALID
    assert credential.invalid_since is None
    assert credential.last4 == "QRST"


def test_remove_deletes_the_row(user, fake_dcdn):
    services.credential_save(user=user, token=TOKEN)
    assert services.credential_remove(user=user) is True
    assert services.credential_remove(user=user) is False
    assert _raw_rows() == []


def test_client_for_user_without_token_raises_token_missing(user):
    with pytest.raises(TokenMissing) as excinfo:
        services.dcdn_client_for(user)

    assert isinstance(excinfo.value, Unauthorized)
    assert excinfo.value.message == "No DCDN API token is saved for your account."


def test_client_for_user_carries_token_budget_key_and_max_wait(user, fake_dcdn):
    services.credential_save(user=user, token=TOKEN)
    client = services.dcdn_client_for(user, max_wait=0.5)

    assert (client.token, client.budget_key, client.max_wait) == (TOKEN, f"user:{user.pk}", 0.5)


def test_a_401_through_the_users_client_marks_the_token_invalid(user, fake_dcdn):
    services.credential_save(user=user, token=TOKEN)
    client = services.dcdn_client_for(user)
    fake_dcdn.error = Unauthorized()
    with pytest.raises(Unauthorized):
        client.list_regions()

    assert DcdnCredential.objects.get().status == DcdnCredential.Status.INVALID
    # An invalid token still yields a client: the user may have fixed it upstream.
    assert services.dcdn_client_for(user).token == TOKEN


def test_a_late_401_for_a_replaced_token_does_not_mark_the_new_one(user, fake_dcdn):
    services.credential_save(user=user, token=TOKEN)
    old_client = services.dcdn_client_for(user)
    services.credential_save(user=user, token=OTHER_TOKEN)
    old_client.on_unauthorized()

    assert DcdnCredential.objects.get().status == DcdnCredential.Status.VALID


def test_unreadable_token_is_never_sent(user, fake_dcdn, settings, caplog):
    services.credential_save(user=user, token=TOKEN)
    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    fake_dcdn.clients.clear()

    with pytest.raises(TokenUnreadable) as excinfo:
        services.dcdn_client_for(user)

    assert isinstance(excinfo.value, Unauthorized)
    assert fake_dcdn.clients == []
    assert f"user:{user.pk}" in caplog.text


def test_changes_send_a_signal_with_the_owner_key_only(user, fake_dcdn):
    seen = []

    def receiver(sender, **kwargs):
        seen.append((kwargs["owner_key"], kwargs["action"]))

    credential_changed.connect(receiver)
    try:
        services.credential_save(user=user, token=TOKEN)
        services.credential_mark_invalid(user=user)
        services.credential_remove(user=user)
    finally:
        credential_changed.disconnect(receiver)

    key = f"user:{user.pk}"
    assert seen == [(key, "saved"), (key, "invalidated"), (key, "removed")]


def test_each_user_has_their_own_credential(user, outsider, fake_dcdn):
    services.credential_save(user=user, token=TOKEN)
    with pytest.raises(TokenMissing):
        services.dcdn_client_for(outsider)
    assert user.dcdn_credential.last4 == "WXYZ"
