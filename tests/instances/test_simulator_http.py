"""The instances back end against the simulator over real HTTP (no worker: the test
runs the operation steps itself, as a worker would)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.http import Http404

from accounts.services import dcdn_client_for
from panel.instances import selectors, services, snapshot
from panel.instances.models import Operation
from tests.processes import wait_for

from .support import make_due, sim_calls, sim_post, sim_reset_calls

ORDER = {"plan": "nano", "image": "ubuntu-24.04", "region": "eu-central"}


def run_until_finished(operation: Operation, *, timeout: float = 20.0) -> Operation:
    """Advance the operation step by step, waiting the delay each step asks for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        make_due(operation)
        delay = services.operation_advance(operation_id=operation.pk)
        operation.refresh_from_db()
        if delay is None:
            return operation
        time.sleep(min(delay, 0.5))
    raise AssertionError(f"operation still {operation.state} after {timeout} s")


def upstream_names(user) -> list[str]:
    return [i.name for i in dcdn_client_for(user).list_instances()]


def test_create_runs_to_running_with_one_post(demo_owner, simulator, fast_operations):
    sim_reset_calls(simulator)
    operation = services.operation_create_request(user=demo_owner, name="web-1", **ORDER)
    started = time.monotonic()
    run_until_finished(operation)
    duration = time.monotonic() - started

    assert operation.state == "succeeded" and operation.step == "running"
    calls = sim_calls(simulator)
    assert calls["POST /instances"] == 1
    assert calls["GET /instances"] <= duration / fast_operations.DCDN_SNAPSHOT_SECONDS + 2
    assert calls["GET /instances/{id}"] == 0
    password = services.operation_reveal_password(user=demo_owner, operation_id=operation.pk)
    assert len(password) >= 8
    assert upstream_names(demo_owner) == ["web-1"]


def test_refused_create_fails_on_the_field_dcdn_names(demo_owner, simulator, fast_operations):
    operation = services.operation_create_request(
        user=demo_owner, name="web-1", **{**ORDER, "plan": "no-such-plan"}
    )
    run_until_finished(operation)
    assert operation.state == "failed" and operation.error_code
    assert operation.error_field == "plan"


def test_create_over_the_credit_balance_fails_as_insufficient_credits(
    demo_owner, simulator, fast_operations
):
    sim_post(simulator, "/_sim/accounts", {"token": "poor-token", "credits": 0, "nodes": []})
    from accounts.services import credential_store_unverified

    credential_store_unverified(user=demo_owner, token="poor-token")
    operation = services.operation_create_request(user=demo_owner, name="web-1", **ORDER)
    run_until_finished(operation)
    assert operation.state == "failed" and operation.error_code == "insufficient_credits"


def test_lost_answer_is_adopted_without_a_second_post(
    demo_owner, simulator, fast_operations, settings
):
    # DCDN applies the create, then answers after the client gave up waiting.
    settings.DCDN_READ_TIMEOUT = 0.5
    sim_post(
        simulator, "/_sim/faults", {"hang_after_commit_ms": 1500, "hang_after_commit_count": 1}
    )
    sim_reset_calls(simulator)
    operation = services.operation_create_request(user=demo_owner, name="web-1", **ORDER)
    make_due(operation)
    services.operation_advance(operation_id=operation.pk)
    operation.refresh_from_db()
    assert operation.state == "submitted" and not operation.instance_id

    run_until_finished(operation)
    assert operation.state == "succeeded"
    assert "Reset password" in operation.note
    assert sim_calls(simulator)["POST /instances"] == 1
    instances = dcdn_client_for(demo_owner).list_instances()
    assert [i.id for i in instances] == [operation.instance_id]


def test_destroy_runs_until_gone(demo_owner, simulator, fast_operations):
    created = dcdn_client_for(demo_owner).create_instance(name="web-1", **ORDER)
    sim_reset_calls(simulator)
    operation = services.operation_destroy_request(
        user=demo_owner, instance_id=created.instance.id, instance_name="web-1"
    )
    run_until_finished(operation)
    assert operation.state == "succeeded" and operation.step == "gone"
    assert sim_calls(simulator)["DELETE /instances/{id}"] == 1
    assert upstream_names(demo_owner) == []


def test_stop_shows_stopping_in_the_list_without_another_list_call(
    demo_owner, simulator, fast_operations
):
    client = dcdn_client_for(demo_owner)
    created = client.create_instance(name="web-1", **ORDER)
    wait_for(lambda: client.get_instance(created.instance.id).status == "running", timeout=5)
    selectors.instance_list(user=demo_owner)
    sim_reset_calls(simulator)

    services.instance_action(user=demo_owner, instance_id=created.instance.id, action="stop")
    listing = selectors.instance_list(user=demo_owner)
    assert [row.status for row in listing.rows] == ["stopping"]
    assert listing.any_transitional
    assert sim_calls(simulator)["GET /instances"] == 0


def test_another_accounts_instance_is_404(demo_owner, outsider, simulator, fast_operations):
    from accounts.services import credential_store_unverified

    sim_post(simulator, "/_sim/accounts", {"token": "other-token", "credits": 100, "nodes": []})
    credential_store_unverified(user=outsider, token="other-token")
    created = dcdn_client_for(demo_owner).create_instance(name="mine", **ORDER)
    assert selectors.instance_for_user(user=demo_owner, instance_id=created.instance.id).usage
    with pytest.raises(Http404):
        selectors.instance_for_user(user=outsider, instance_id=created.instance.id)


@pytest.mark.django_db(transaction=True)
def test_many_concurrent_readers_cost_one_upstream_list(demo_owner, simulator, fast_operations):
    sim_reset_calls(simulator)
    barrier = threading.Barrier(10)
    errors = []

    def read():
        try:
            barrier.wait()
            errors.append(snapshot.snapshot_get(user=demo_owner).error)
        finally:
            connection.close()

    threads = [threading.Thread(target=read) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == [None] * 10
    assert sim_calls(simulator)["GET /instances"] == 1
