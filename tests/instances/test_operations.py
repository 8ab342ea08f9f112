"""The operation state machine, with DCDN faked at the panel/dcdn boundary."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.utils import timezone

from panel.dcdn.errors import (
    BadRequest,
    Conflict,
    InsufficientCredits,
    OutcomeUnknown,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from panel.instances import services, snapshot
from panel.instances.errors import OperationConflict
from panel.instances.models import Operation

from .support import advance, backdate

pytestmark = pytest.mark.django_db

ORDER = {"name": "web-1", "plan": "vps-1", "image": "ubuntu-24.04", "region": "eu-central"}


def create(user, **overrides) -> Operation:
    return services.operation_create_request(user=user, **{**ORDER, **overrides})


# --- recording a request -----------------------------------------------------------------


def test_create_request_records_a_queued_operation_and_enqueues_its_id_on_commit(
    owner, fake_dcdn, sent_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        operation = create(owner, ssh_keys=["ssh-ed25519 AAAAC3Nza key", " "])
    assert operation.kind == "create" and operation.state == "queued"
    assert operation.step == "submitted" and operation.owner_key == f"user:{owner.pk}"
    assert operation.params == {
        **ORDER,
        "cpu_type": "shared",
        "ssh_keys": ["ssh-ed25519 AAAAC3Nza key"],
        "redundant": False,
    }
    assert sent_tasks == [{"args": [operation.pk], "kwargs": {}}]
    assert sum(fake_dcdn.calls.values()) == 0  # nothing upstream until the worker runs


def test_create_request_refuses_a_name_already_being_created(owner, fake_dcdn, sent_tasks):
    create(owner)
    with pytest.raises(OperationConflict) as caught:
        create(owner)
    assert caught.value.field == "name"
    assert Operation.objects.count() == 1


def test_create_request_refuses_a_name_the_snapshot_already_lists(owner, fake_dcdn, sent_tasks):
    fake_dcdn.add("web-1")
    snapshot.snapshot_get(user=owner)
    with pytest.raises(OperationConflict) as caught:
        create(owner)
    assert caught.value.field == "name"


def test_another_owner_may_create_the_same_name(owner, outsider, fake_dcdn, sent_tasks):
    create(owner)
    assert create(outsider).owner_key == f"user:{outsider.pk}"


def test_destroy_request_is_idempotent_while_active(owner, fake_dcdn, sent_tasks):
    first = services.operation_destroy_request(user=owner, instance_id="i-1", instance_name="a")
    again = services.operation_destroy_request(user=owner, instance_id="i-1", instance_name="a")
    assert again.pk == first.pk
    assert Operation.objects.filter(kind="destroy").count() == 1


# --- create --------------------------------------------------------------------------------


def test_create_submits_once_then_polls_the_snapshot_until_running(owner, fake_dcdn):
    operation = create(owner)

    assert advance(operation) is not None
    assert fake_dcdn.calls["create_instance"] == 1
    assert operation.state == "submitted" and operation.step == "creating"
    assert operation.submitted_at is not None and operation.instance_id
    assert operation.root_password_encrypted
    assert fake_dcdn.passwords[operation.instance_id] not in operation.root_password_encrypted
    assert operation.has_password_to_reveal
    # The list shows the new instance at once, without another upstream call.
    assert snapshot.snapshot_peek(user=owner).find(operation.instance_id).status == "creating"

    assert advance(operation) is not None  # still creating
    assert operation.state == "submitted"

    fake_dcdn.set_status(operation.instance_id, "running")
    assert advance(operation) is None
    assert operation.state == "succeeded" and operation.step == "running"
    assert operation.finished_at is not None and operation.next_poll_at is None
    assert fake_dcdn.calls["create_instance"] == 1
    assert fake_dcdn.calls["get_instance"] == 0  # polls read the list, not each instance
    assert [status for _, status in operation.steps()] == ["done", "done", "done"]


def test_polling_never_asks_dcdn_more_than_once_per_snapshot_interval(owner, fake_dcdn, settings):
    settings.DCDN_SNAPSHOT_SECONDS = 60
    operations = [create(owner, name=f"web-{n}") for n in range(3)]
    for operation in operations:
        advance(operation, fresh=False)
    for _ in range(3):
        for operation in operations:
            advance(operation, fresh=False)
    assert fake_dcdn.calls["create_instance"] == 3
    assert fake_dcdn.calls["list_instances"] <= 1


def test_lost_answer_is_adopted_by_name_without_a_second_post(owner, fake_dcdn):
    fake_dcdn.create_then_raise = OutcomeUnknown()
    operation = create(owner)

    assert advance(operation) is not None
    assert operation.state == "submitted" and not operation.instance_id
    assert operation.submitted_at is not None

    assert advance(operation) is not None
    upstream = fake_dcdn.by_name("web-1")
    assert operation.instance_id == upstream.id
    assert "Reset password" in operation.note
    assert not operation.root_password_encrypted  # never received

    fake_dcdn.set_status(upstream.id, "running")
    advance(operation)
    assert operation.state == "succeeded"
    assert fake_dcdn.calls["create_instance"] == 1
    assert len(fake_dcdn.instances) == 1


def test_rerun_after_a_crash_mid_post_adopts_instead_of_posting(owner, fake_dcdn):
    operation = create(owner)
    # A worker claimed the submit, the POST reached DCDN, then the worker died.
    Operation.objects.filter(pk=operation.pk).update(submitted_at=operation.created_at)
    upstream = fake_dcdn.add("web-1", status="running")

    assert advance(operation) is None
    assert operation.state == "succeeded" and operation.instance_id == upstream.id
    assert fake_dcdn.calls["create_instance"] == 0


def test_rerun_after_a_crash_before_the_post_sends_it_once_after_the_grace_period(owner, fake_dcdn):
    operation = create(owner)
    # A worker claimed the submit, then died before the request left.
    Operation.objects.filter(pk=operation.pk).update(submitted_at=operation.created_at)

    assert advance(operation) is not None  # within the grace period: keep looking
    assert fake_dcdn.calls["create_instance"] == 0

    backdate(operation, submitted_at=600)
    advance(operation)  # nothing appeared: released to be sent again
    assert operation.state == "queued" and operation.params["resends"] == 1
    advance(operation)  # sent again
    upstream = fake_dcdn.by_name("web-1")
    assert operation.instance_id == upstream.id and operation.root_password_encrypted

    fake_dcdn.set_status(upstream.id, "running")
    advance(operation)
    assert operation.state == "succeeded"
    assert fake_dcdn.calls["create_instance"] == 1
    assert len(fake_dcdn.instances) == 1


def test_a_resend_that_finds_the_name_taken_adopts_the_first_instance(owner, fake_dcdn):
    operation = create(owner)
    Operation.objects.filter(pk=operation.pk).update(submitted_at=operation.created_at)
    backdate(operation, submitted_at=600)
    advance(operation)  # released to be sent again
    # The first request did create it; it only shows up now.
    upstream = fake_dcdn.add("web-1", status="running")

    advance(operation)  # the resend is refused as a duplicate name: not a failure
    assert operation.is_active and not operation.error_code
    advance(operation)
    assert operation.state == "succeeded" and operation.instance_id == upstream.id
    assert len(fake_dcdn.instances) == 1


def test_a_5xx_on_create_is_sent_again_and_a_duplicate_name_then_adopts(owner, fake_dcdn):
    fake_dcdn.fail_next["create_instance"] = [Unavailable("Internal error", status=500)]
    operation = create(owner)
    advance(operation)  # 500: not known to be applied; queued to be sent again
    assert operation.state == "queued" and operation.params["resends"] == 1
    # A provider whose 500 came after it had created the instance.
    upstream = fake_dcdn.add("web-1", status="running")
    advance(operation)  # the resend is refused as a duplicate name: adopt, not fail
    assert operation.is_active and not operation.error_code
    advance(operation)
    assert operation.state == "succeeded" and operation.instance_id == upstream.id
    assert len(fake_dcdn.instances) == 1


def test_a_5xx_that_applied_nothing_is_simply_sent_again(owner, fake_dcdn):
    fake_dcdn.fail_next["create_instance"] = [Unavailable("Internal error", status=503)]
    operation = create(owner)
    advance(operation)
    advance(operation)
    upstream = fake_dcdn.by_name("web-1")
    assert operation.instance_id == upstream.id and operation.root_password_encrypted
    assert fake_dcdn.calls["create_instance"] == 2 and len(fake_dcdn.instances) == 1


def test_a_create_that_never_takes_effect_fails_after_the_resends(owner, fake_dcdn):
    fake_dcdn.fail_next["create_instance"] = [
        OutcomeUnknown() for _ in range(services.MAX_CREATE_RESENDS + 1)
    ]
    operation = create(owner)
    for _ in range(services.MAX_CREATE_RESENDS + 1):
        advance(operation)  # sent; the answer is lost
        backdate(operation, submitted_at=600)
        advance(operation)  # nothing appeared after the grace period
    assert operation.state == "failed" and operation.error_code == "not_created"
    assert "submit it again" in operation.error_message
    assert fake_dcdn.calls["create_instance"] == services.MAX_CREATE_RESENDS + 1
    assert not fake_dcdn.instances


def test_an_older_instance_with_the_same_name_is_not_adopted(owner, fake_dcdn):
    from datetime import UTC, datetime

    operation = create(owner)
    fake_dcdn.add("web-1", created_at=datetime(2020, 1, 1, tzinfo=UTC))
    Operation.objects.filter(pk=operation.pk).update(submitted_at=operation.created_at)
    advance(operation)
    assert not operation.instance_id and operation.is_active


@pytest.mark.parametrize(
    ("error", "code", "field"),
    [
        (BadRequest("Unknown plan 'x'.", field="plan"), "bad_request", "plan"),
        (Conflict("An instance named 'web-1' already exists."), "conflict", "name"),
        (InsufficientCredits("Insufficient credits."), "insufficient_credits", ""),
        (Unauthorized("Invalid token."), "unauthorized", ""),
    ],
)
def test_definite_refusals_fail_the_operation_with_the_field(owner, fake_dcdn, error, code, field):
    fake_dcdn.fail_next["create_instance"] = [error]
    operation = create(owner)
    assert advance(operation) is None
    assert operation.state == "failed" and operation.error_code == code
    assert operation.error_field == field and operation.error_message
    assert operation.finished_at is not None
    assert [status for _, status in operation.steps()] == ["failed", "pending", "pending"]


def test_missing_token_fails_without_claiming(owner, monkeypatch):
    from accounts.errors import TokenMissing

    def no_token(user, *, max_wait=None):
        raise TokenMissing()

    monkeypatch.setattr(snapshot, "client_for", no_token)
    operation = create(owner)
    assert advance(operation) is None
    assert operation.state == "failed" and operation.error_code == "unauthorized"
    assert operation.submitted_at is None


@pytest.mark.parametrize(
    "error", [RateLimited(retry_after=7), Unavailable("Could not connect to DCDN.")]
)
def test_a_request_that_did_not_leave_is_sent_later(owner, fake_dcdn, error):
    fake_dcdn.fail_next["create_instance"] = [error]
    operation = create(owner)
    delay = advance(operation)
    assert delay >= (7 if isinstance(error, RateLimited) else 1)
    assert operation.state == "queued" and operation.submitted_at is None
    advance(operation)
    assert operation.instance_id and fake_dcdn.calls["create_instance"] == 2
    assert len(fake_dcdn.instances) == 1


def test_attempts_are_capped_so_a_poison_message_cannot_loop(owner, fake_dcdn, settings):
    settings.OPERATIONS_MAX_ATTEMPTS = 3
    operation = create(owner)
    for _ in range(3):
        assert advance(operation) is not None  # stays "creating" upstream
    assert advance(operation) is None
    assert operation.state == "failed" and operation.error_code == "gave_up"
    assert "3 attempts" in operation.error_message and operation.attempts == 4


def test_a_run_that_is_not_due_is_a_duplicate_and_does_nothing(owner, fake_dcdn):
    operation = create(owner)
    advance(operation)
    attempts = operation.attempts
    # next_poll_at is now in the future: a second chain's message arriving now stops.
    assert services.operation_advance(operation_id=operation.pk) is None
    operation.refresh_from_db()
    assert operation.attempts == attempts


def test_finished_or_missing_operations_are_left_alone(owner, fake_dcdn):
    assert services.operation_advance(operation_id=987654) is None
    fake_dcdn.fail_next["create_instance"] = [BadRequest("no")]
    operation = create(owner)
    advance(operation)
    assert advance(operation) is None and operation.attempts == 1


def test_an_instance_destroyed_while_creating_fails_the_create(owner, fake_dcdn):
    operation = create(owner)
    advance(operation)
    fake_dcdn.set_status(operation.instance_id, "destroying")
    assert advance(operation) is None
    assert operation.state == "failed" and operation.error_code == "destroyed"


@pytest.mark.django_db(transaction=True)
def test_two_runs_racing_send_the_create_once(owner, fake_dcdn, sent_tasks):
    fake_dcdn.slow["create_instance"] = 0.3
    operation = create(owner)
    barrier = threading.Barrier(2)
    results = []

    def run():
        try:
            barrier.wait()
            results.append(services.operation_advance(operation_id=operation.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert fake_dcdn.calls["create_instance"] == 1
    assert len(fake_dcdn.instances) == 1
    operation.refresh_from_db()
    assert operation.instance_id == next(iter(fake_dcdn.instances))


# --- destroy -------------------------------------------------------------------------------


def test_destroy_deletes_once_then_polls_until_gone(owner, fake_dcdn):
    target = fake_dcdn.add("web-1")
    snapshot.snapshot_get(user=owner)
    operation = services.operation_destroy_request(
        user=owner, instance_id=target.id, instance_name="web-1"
    )
    assert advance(operation, fresh=False) is not None
    assert operation.step == "destroying" and fake_dcdn.calls["destroy_instance"] == 1
    assert snapshot.snapshot_peek(user=owner).find(target.id).status == "destroying"

    assert advance(operation) is not None  # still destroying upstream
    fake_dcdn.remove(target.id)
    assert advance(operation) is None
    assert operation.state == "succeeded" and operation.step == "gone"
    assert fake_dcdn.calls["destroy_instance"] == 1


def test_destroy_of_an_instance_already_gone_succeeds(owner, fake_dcdn):
    operation = services.operation_destroy_request(
        user=owner, instance_id="gone-id", instance_name="old"
    )
    assert advance(operation) is None
    assert operation.state == "succeeded" and operation.step == "gone"


def test_destroy_of_an_instance_already_destroying_follows_it(owner, fake_dcdn):
    target = fake_dcdn.add("web-1", status="destroying")
    operation = services.operation_destroy_request(
        user=owner, instance_id=target.id, instance_name="web-1"
    )
    advance(operation)
    assert operation.step == "destroying" and operation.is_active
    fake_dcdn.remove(target.id)
    advance(operation)
    assert operation.state == "succeeded"


def test_destroy_with_a_lost_answer_checks_the_list(owner, fake_dcdn):
    target = fake_dcdn.add("web-1")
    fake_dcdn.fail_next["destroy_instance"] = [OutcomeUnknown()]
    operation = services.operation_destroy_request(
        user=owner, instance_id=target.id, instance_name="web-1"
    )
    advance(operation)
    assert operation.step == "destroying" and operation.is_active
    fake_dcdn.remove(target.id)
    advance(operation)
    assert operation.state == "succeeded"


# --- reconciler ---------------------------------------------------------------------------


def test_reconciler_reenqueues_only_overdue_operations(
    owner, fake_dcdn, sent_tasks, settings, django_capture_on_commit_callbacks
):
    settings.OPERATIONS_RECONCILE_MARGIN_SECONDS = 30
    lost = create(owner, name="lost")
    fresh = create(owner, name="fresh")
    done = create(owner, name="done")
    backdate(lost, next_poll_at=120)
    backdate(done, next_poll_at=120)
    Operation.objects.filter(pk=done.pk).update(state="succeeded")
    sent_tasks.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert services.operations_reconcile() == 1
    assert [task["args"] for task in sent_tasks] == [[lost.pk]]
    # Re-enqueued operations are due now, so the next round does not send them again.
    with django_capture_on_commit_callbacks(execute=True):
        assert services.operations_reconcile() == 0
    assert fresh.pk not in [task["args"][0] for task in sent_tasks]


def test_reconciled_operation_runs_even_though_a_stale_message_may_follow(
    owner, fake_dcdn, sent_tasks, settings
):
    settings.OPERATIONS_RECONCILE_MARGIN_SECONDS = 0
    operation = create(owner)
    backdate(operation, next_poll_at=10)
    assert services.operations_reconcile() == 1
    assert services.operation_advance(operation_id=operation.pk) is not None
    # The original message turning up late is a duplicate: it stops at once.
    assert services.operation_advance(operation_id=operation.pk) is None
    assert fake_dcdn.calls["create_instance"] == 1


def test_a_starting_worker_resumes_every_active_operation_when_it_is_due(
    owner, fake_dcdn, sent_tasks, django_capture_on_commit_callbacks
):
    overdue = create(owner, name="overdue")
    later = create(owner, name="later")
    done = create(owner, name="done")
    backdate(overdue, next_poll_at=120)
    Operation.objects.filter(pk=later.pk).update(
        next_poll_at=later.created_at + timezone.timedelta(seconds=3600)
    )
    Operation.objects.filter(pk=done.pk).update(state="succeeded")
    sent_tasks.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert services.operations_resume() == 2
    countdowns = {task["args"][0]: task.get("countdown") for task in sent_tasks}
    assert set(countdowns) == {overdue.pk, later.pk}
    assert countdowns[overdue.pk] is None  # due now
    assert 3000 < countdowns[later.pk] <= 3600


# --- the task -----------------------------------------------------------------------------


def test_task_reschedules_itself_with_the_delay_and_stops_when_finished(
    owner, fake_dcdn, sent_tasks
):
    from panel.instances.tasks import operation_advance

    operation = create(owner)
    sent_tasks.clear()
    operation_advance(operation.pk)
    assert len(sent_tasks) == 1 and sent_tasks[0]["args"] == [operation.pk]
    assert sent_tasks[0]["countdown"] > 0
    operation.refresh_from_db()
    fake_dcdn.set_status(operation.instance_id, "running")
    advance(operation)
    sent_tasks.clear()
    operation_advance(operation.pk)
    assert sent_tasks == []


def test_task_survives_an_unexpected_error_and_tries_again(owner, sent_tasks, monkeypatch):
    from panel.instances.tasks import operation_advance

    def broken(*, operation_id):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "operation_advance", broken)
    operation_advance(5)
    assert sent_tasks and sent_tasks[0]["countdown"] > 0
