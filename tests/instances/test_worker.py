"""Operations run by a real Celery worker process against the simulator over HTTP,
including a worker killed in the middle of a create."""

from __future__ import annotations

import time

import pytest

from accounts.services import dcdn_client_for
from panel.instances import services
from panel.instances.models import Operation
from tests.processes import kill_process, log_tail, wait_for

from .support import sim_calls, sim_post, sim_reset_calls

pytestmark = pytest.mark.django_db(transaction=True)

ORDER = {"plan": "nano", "image": "ubuntu-24.04", "region": "eu-central"}


def wait_finished(operation: Operation, *, timeout: float, worker=None) -> Operation:
    def finished():
        operation.refresh_from_db()
        return operation.is_finished

    try:
        wait_for(finished, timeout=timeout, interval=0.1)
    except AssertionError:
        tail = log_tail(worker) if worker is not None else ""
        raise AssertionError(
            f"operation {operation.pk} still {operation.state}/{operation.step} "
            f"after {timeout} s; worker log:\n{tail}"
        ) from None
    return operation


def test_worker_creates_then_destroys_with_few_upstream_calls(
    demo_owner, simulator, fast_operations, celery_workers
):
    worker = celery_workers()
    sim_reset_calls(simulator)

    started = time.monotonic()
    create = services.operation_create_request(user=demo_owner, name="web-1", **ORDER)
    wait_finished(create, timeout=30, worker=worker)
    duration = time.monotonic() - started
    assert create.state == "succeeded" and create.step == "running", create.error_message
    assert create.attempts >= 2 and create.has_password_to_reveal

    calls = sim_calls(simulator)
    print(f"create via worker: {duration:.2f} s, upstream calls {dict(calls)}")
    assert calls["POST /instances"] == 1
    assert calls["GET /instances"] <= duration / fast_operations.DCDN_SNAPSHOT_SECONDS + 2
    assert calls["GET /instances/{id}"] == 0

    sim_reset_calls(simulator)
    destroy = services.operation_destroy_request(
        user=demo_owner, instance_id=create.instance_id, instance_name="web-1"
    )
    wait_finished(destroy, timeout=30, worker=worker)
    assert destroy.state == "succeeded" and destroy.step == "gone"
    print(f"destroy via worker: upstream calls {dict(sim_calls(simulator))}")
    assert sim_calls(simulator)["DELETE /instances/{id}"] == 1
    assert dcdn_client_for(demo_owner).list_instances() == []


def test_one_users_operations_share_one_list_per_interval(
    demo_owner, simulator, fast_operations, celery_workers
):
    worker = celery_workers()
    sim_reset_calls(simulator)
    started = time.monotonic()
    operations = [
        services.operation_create_request(user=demo_owner, name=f"web-{n}", **ORDER)
        for n in range(4)
    ]
    for operation in operations:
        wait_finished(operation, timeout=40, worker=worker)
    duration = time.monotonic() - started
    assert {o.state for o in operations} == {"succeeded"}
    calls = sim_calls(simulator)
    print(f"4 creates via worker: {duration:.2f} s, upstream calls {dict(calls)}")
    assert calls["POST /instances"] == 4
    # Four operations polling together still read the list once per interval at most.
    assert calls["GET /instances"] <= duration / fast_operations.DCDN_SNAPSHOT_SECONDS + 2
    assert sim_calls(simulator).total() <= 4 + duration / fast_operations.DCDN_SNAPSHOT_SECONDS + 2


# The first worker gives up on an answer after 3 s, so its claim on the submit step
# expires a few seconds after it dies; DCDN applies the create, then stalls 2.5 s.
KILL_TIMEOUTS = {"DCDN_READ_TIMEOUT": 3, "DCDN_CONNECT_TIMEOUT": 1, "DCDN_BUDGET_MAX_WAIT": 0.5}


def create_then_kill_the_worker_mid_post(*, owner, simulator, celery_workers) -> Operation:
    """A create whose POST DCDN has applied, sent by a worker killed before the answer."""
    first = celery_workers(**KILL_TIMEOUTS)
    sim_post(
        simulator, "/_sim/faults", {"hang_after_commit_ms": 2500, "hang_after_commit_count": 1}
    )
    sim_reset_calls(simulator)
    operation = services.operation_create_request(user=owner, name="web-1", **ORDER)
    wait_for(
        lambda: sim_calls(simulator)["POST /instances"] == 1,
        timeout=20,
        message="the worker never sent the create",
    )
    kill_process(first)
    operation.refresh_from_db()
    return operation


@pytest.mark.fault
def test_worker_killed_mid_create_leaves_one_instance_and_the_operation_finishes(
    demo_owner, simulator, fast_operations, celery_workers, settings
):
    operation = create_then_kill_the_worker_mid_post(
        owner=demo_owner, simulator=simulator, celery_workers=celery_workers
    )
    assert operation.state == "submitted" and operation.submitted_at and not operation.instance_id

    # A new worker with beat: its reconciler finds the operation overdue and re-enqueues it.
    second = celery_workers(
        beat=True,
        OPERATIONS_RECONCILE_SECONDS=1,
        OPERATIONS_RECONCILE_MARGIN_SECONDS=0.5,
        **KILL_TIMEOUTS,
    )
    wait_finished(operation, timeout=45, worker=second)

    assert operation.state == "succeeded", operation.error_message
    print(f"killed worker: upstream calls {dict(sim_calls(simulator))}")
    upstream = dcdn_client_for(demo_owner).list_instances()
    assert [i.name for i in upstream] == ["web-1"]
    assert operation.instance_id == upstream[0].id
    assert "Reset password" in operation.note  # the answer with the password was lost
    assert sim_calls(simulator)["POST /instances"] == 1
    assert Operation.objects.count() == 1


@pytest.mark.fault
def test_a_new_worker_without_beat_resumes_the_create_a_killed_worker_held(
    demo_owner, simulator, fast_operations, celery_workers, settings
):
    operation = create_then_kill_the_worker_mid_post(
        owner=demo_owner, simulator=simulator, celery_workers=celery_workers
    )

    # No beat, so no periodic reconciler: only the worker's own start-up resume helps.
    second = celery_workers(**KILL_TIMEOUTS)
    wait_finished(operation, timeout=45, worker=second)

    assert operation.state == "succeeded", operation.error_message
    upstream = dcdn_client_for(demo_owner).list_instances()
    assert [i.name for i in upstream] == ["web-1"]
    assert sim_calls(simulator)["POST /instances"] == 1
