"""One-time root passwords, and the synchronous instance actions."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.http import Http404
from django.utils import timezone

from accounts.crypto import encrypt_secret
from panel.dcdn.errors import Conflict, NotFound
from panel.instances import services, snapshot
from panel.instances.errors import PasswordUnavailable
from panel.instances.models import Operation
from tests.processes import wait_for

from .support import advance

pytestmark = pytest.mark.django_db


def operation_with_password(user, password="s3cret-Root!", **fields) -> Operation:
    values = {
        "kind": "create",
        "state": "succeeded",
        "step": "running",
        "instance_id": "i-1",
        "instance_name": "web-1",
        "root_password_encrypted": encrypt_secret(password),
        "password_expires_at": timezone.now() + timedelta(hours=24),
    }
    return Operation.objects.create(owner=user, owner_key=f"user:{user.pk}", **{**values, **fields})


def test_password_is_revealed_once_then_wiped(owner):
    operation = operation_with_password(owner)
    assert operation.has_password_to_reveal and not operation.password_wiped

    assert services.operation_reveal_password(user=owner, operation_id=operation.pk) == (
        "s3cret-Root!"
    )
    operation.refresh_from_db()
    assert operation.root_password_encrypted == ""
    assert operation.password_revealed_at is not None
    assert operation.password_wiped and not operation.has_password_to_reveal

    with pytest.raises(PasswordUnavailable) as caught:
        services.operation_reveal_password(user=owner, operation_id=operation.pk)
    assert caught.value.reason == "already revealed"
    assert "already revealed" in caught.value.message


def test_someone_elses_password_is_404(owner, outsider):
    operation = operation_with_password(owner)
    with pytest.raises(Http404):
        services.operation_reveal_password(user=outsider, operation_id=operation.pk)
    with pytest.raises(Http404):
        services.operation_reveal_password(user=outsider, operation_id="not-a-number")
    operation.refresh_from_db()
    assert operation.has_password_to_reveal


def test_expired_password_cannot_be_revealed_and_is_wiped(owner):
    operation = operation_with_password(owner)
    Operation.objects.filter(pk=operation.pk).update(
        password_expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(PasswordUnavailable) as caught:
        services.operation_reveal_password(user=owner, operation_id=operation.pk)
    assert caught.value.reason == "expired"
    operation.refresh_from_db()
    assert operation.root_password_encrypted == "" and operation.password_wiped


def test_operation_without_password_says_so(owner):
    operation = Operation.objects.create(
        owner=owner, owner_key=f"user:{owner.pk}", kind="destroy", instance_id="i-1"
    )
    with pytest.raises(PasswordUnavailable) as caught:
        services.operation_reveal_password(user=owner, operation_id=operation.pk)
    assert caught.value.reason == "none"


def test_unrevealed_passwords_are_wiped_after_their_expiry(owner):
    expired = operation_with_password(owner)
    kept = operation_with_password(owner, instance_id="i-2")
    Operation.objects.filter(pk=expired.pk).update(
        password_expires_at=timezone.now() - timedelta(minutes=1)
    )
    services.operations_reconcile()
    expired.refresh_from_db()
    kept.refresh_from_db()
    assert expired.root_password_encrypted == ""
    assert kept.root_password_encrypted != ""


def test_created_instance_password_expires_in_24_hours(owner, fake_dcdn):
    operation = services.operation_create_request(
        user=owner, name="web-1", plan="vps-1", image="ubuntu-24.04", region="eu-central"
    )
    advance(operation)
    left = operation.password_expires_at - timezone.now()
    assert timedelta(hours=23, minutes=59) < left <= timedelta(hours=24)
    assert (
        services.operation_reveal_password(user=owner, operation_id=operation.pk)
        == (fake_dcdn.passwords[operation.instance_id])
    )


def test_reset_password_records_a_finished_operation_holding_the_new_password(owner, fake_dcdn):
    target = fake_dcdn.add("web-1")
    snapshot.snapshot_get(user=owner)
    older = operation_with_password(owner, instance_id=target.id)

    operation = services.instance_reset_password(user=owner, instance_id=target.id)
    assert operation.kind == "reset_password" and operation.state == "succeeded"
    assert operation.step == "done" and operation.instance_name == "web-1"
    assert operation.finished_at is not None
    assert [status for _, status in operation.steps()] == ["done"]
    assert (
        services.operation_reveal_password(user=owner, operation_id=operation.pk)
        == (fake_dcdn.passwords[target.id])
    )
    # DCDN invalidated the older password: it is no longer offered.
    older.refresh_from_db()
    assert not older.has_password_to_reveal


def test_reset_password_errors_propagate_and_record_nothing(owner, fake_dcdn):
    with pytest.raises(NotFound):
        services.instance_reset_password(user=owner, instance_id="missing")
    assert not Operation.objects.exists()


# --- start / stop / restart -------------------------------------------------------------


def test_action_updates_the_snapshot_without_another_list_call(owner, fake_dcdn):
    target = fake_dcdn.add("web-1")
    snapshot.snapshot_get(user=owner)
    calls = fake_dcdn.calls["list_instances"]

    result = services.instance_action(user=owner, instance_id=target.id, action="stop")
    assert result.status == "stopping"
    assert snapshot.snapshot_peek(user=owner).find(target.id).status == "stopping"
    assert fake_dcdn.calls["list_instances"] == calls


def test_action_answer_wins_over_a_refresh_that_read_the_list_before_it(owner, fake_dcdn, settings):
    settings.DCDN_SNAPSHOT_SECONDS = 0.1
    target = fake_dcdn.add("web-1")
    # The refresh reads "running", then takes a while to store it.
    fake_dcdn.slow_after_read["list_instances"] = 0.4
    refresher = threading.Thread(target=snapshot.snapshot_get, kwargs={"user": owner})
    refresher.start()
    wait_for(lambda: fake_dcdn.calls["list_instances"] == 1, timeout=5)
    time.sleep(0.05)
    services.instance_action(user=owner, instance_id=target.id, action="stop")
    refresher.join(5)
    assert snapshot.snapshot_peek(user=owner).find(target.id).status == "stopping"


def test_action_on_the_wrong_status_is_a_conflict(owner, fake_dcdn):
    target = fake_dcdn.add("web-1", status="stopped")
    with pytest.raises(Conflict):
        services.instance_action(user=owner, instance_id=target.id, action="stop")


def test_unknown_action_is_a_value_error(owner, fake_dcdn):
    with pytest.raises(ValueError):
        services.instance_action(user=owner, instance_id="i-1", action="explode")
    assert sum(fake_dcdn.calls.values()) == 0


def test_add_ssh_key_calls_dcdn(owner, fake_dcdn):
    target = fake_dcdn.add("web-1")
    services.instance_add_ssh_key(
        user=owner, instance_id=target.id, public_key=" ssh-ed25519 AAAA me "
    )
    assert fake_dcdn.calls["add_ssh_key"] == 1
