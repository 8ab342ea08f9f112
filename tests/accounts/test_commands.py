"""Management commands: user creation, key rotation, demo set-up."""

from __future__ import annotations

import io
import re

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts import services
from accounts.crypto import decrypt_secret
from accounts.models import DcdnCredential

from .conftest import OTHER_TOKEN, TOKEN

pytestmark = pytest.mark.django_db


def _run(*args, **kwargs) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **kwargs)
    return out.getvalue()


# --- create_panel_user -------------------------------------------------------------------


def test_create_panel_user_prints_a_generated_password():
    out = _run("create_panel_user", "--username", "alice", "--email", "a@example.com")
    password = re.search(r"Password: (\S+)", out).group(1)
    user = get_user_model().objects.get(username="alice")
    assert user.check_password(password)
    assert not user.is_staff


def test_create_panel_user_reads_password_from_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-chosen-passphrase-33\n"))
    out = _run("create_panel_user", "--username", "root", "--password-stdin", "--superuser")
    user = get_user_model().objects.get(username="root")
    assert user.is_superuser and user.check_password("a-long-chosen-passphrase-33")
    assert "a-long-chosen-passphrase-33" not in out


def test_create_panel_user_refuses_weak_password_and_existing_user(monkeypatch, user):
    monkeypatch.setattr("sys.stdin", io.StringIO("123\n"))
    with pytest.raises(CommandError, match="Password refused"):
        _run("create_panel_user", "--username", "bob", "--password-stdin")
    with pytest.raises(CommandError, match="already exists"):
        _run("create_panel_user", "--username", "owner")


# --- rotate_token_keys -----------------------------------------------------------------


def test_rotation_then_removal_of_the_old_key_loses_no_token(settings, user, outsider, fake_dcdn):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEYS = [old]
    services.credential_save(user=user, token=TOKEN)
    services.credential_save(user=outsider, token=OTHER_TOKEN)
    before = dict(DcdnCredential.objects.values_list("pk", "updated_at"))

    settings.TOKEN_ENCRYPTION_KEYS = [new, old]
    out = _run("rotate_token_keys")
    assert "Re-encrypted 2 tokens" in out

    settings.TOKEN_ENCRYPTION_KEYS = [new]
    tokens = {
        c.owner.username: decrypt_secret(c.token_encrypted)
        for c in DcdnCredential.objects.select_related("owner")
    }
    assert tokens == {"owner": TOKEN, "outsider": OTHER_TOKEN}
    assert services.dcdn_client_for(user).token == TOKEN
    # Rotation is not a change by the owner.
    assert dict(DcdnCredential.objects.values_list("pk", "updated_at")) == before


def test_rotation_with_an_unreadable_row_names_the_user_and_changes_nothing(
    settings, user, outsider, fake_dcdn
):
    lost, kept = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEYS = [kept]
    services.credential_save(user=user, token=TOKEN)
    settings.TOKEN_ENCRYPTION_KEYS = [lost]
    services.credential_save(user=outsider, token=OTHER_TOKEN)
    before = dict(DcdnCredential.objects.values_list("pk", "token_encrypted"))

    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), kept]
    with pytest.raises(CommandError) as excinfo:
        _run("rotate_token_keys")

    message = str(excinfo.value)
    assert "'outsider'" in message and f"id {outsider.pk}" in message
    assert "Nothing was changed" in message
    assert OTHER_TOKEN not in message
    assert before[outsider.dcdn_credential.pk] not in message  # nor its ciphertext
    assert dict(DcdnCredential.objects.values_list("pk", "token_encrypted")) == before


def test_rotation_check_only(settings, user, fake_dcdn):
    services.credential_save(user=user, token=TOKEN)
    before = DcdnCredential.objects.get().token_encrypted
    assert "All 1 stored tokens can be read." in _run("rotate_token_keys", "--check")
    assert DcdnCredential.objects.get().token_encrypted == before


# --- demo_setup --------------------------------------------------------------------------


def test_demo_setup_is_idempotent_and_prints_the_password_once(fake_dcdn):
    first = _run("demo_setup", "--token", "demo-token")
    password = re.search(r"Demo login: demo / (\S+)", first).group(1)
    demo = get_user_model().objects.get(username="demo")
    assert demo.check_password(password)
    assert "demo-token" not in first
    assert fake_dcdn.calls == []

    second = _run("demo_setup", "--token", "demo-token")
    assert "Demo login" not in second
    assert "changepassword demo" in second
    demo.refresh_from_db()
    assert demo.check_password(password)
    credential = DcdnCredential.objects.get(owner=demo)
    assert decrypt_secret(credential.token_encrypted) == "demo-token"
    assert credential.last4 == "oken"


def test_rotation_re_encrypts_waiting_root_passwords_and_wipes_unreadable_ones(
    settings, user, fake_dcdn
):
    from accounts.crypto import encrypt_secret
    from panel.instances.models import Operation

    old, lost, new = (Fernet.generate_key().decode() for _ in range(3))
    settings.TOKEN_ENCRYPTION_KEYS = [old]
    services.credential_save(user=user, token=TOKEN)
    waiting = Operation.objects.create(
        owner=user,
        owner_key=f"user:{user.pk}",
        kind="reset_password",
        state="succeeded",
        instance_id="i-1",
        instance_name="web-1",
        root_password_encrypted=encrypt_secret("root-pass-1"),
    )
    settings.TOKEN_ENCRYPTION_KEYS = [lost]
    orphan = Operation.objects.create(
        owner=user,
        owner_key=f"user:{user.pk}",
        kind="reset_password",
        state="succeeded",
        instance_id="i-2",
        instance_name="web-2",
        root_password_encrypted=encrypt_secret("root-pass-2"),
    )

    settings.TOKEN_ENCRYPTION_KEYS = [new, old]
    out = _run("rotate_token_keys")
    assert "Re-encrypted 1 one-time secrets; wiped 1" in out

    settings.TOKEN_ENCRYPTION_KEYS = [new]
    waiting.refresh_from_db()
    orphan.refresh_from_db()
    assert decrypt_secret(waiting.root_password_encrypted) == "root-pass-1"
    assert orphan.root_password_encrypted == ""
