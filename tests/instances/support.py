"""Test doubles and helpers for the instances tests.

``FakeDcdn`` stands in for DCDN at the ``panel/dcdn`` boundary: it hands out clients with
the ``DcdnClient`` method signatures, keeps instances in memory, counts calls and can be
told to fail in the ways the real client does.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from django.utils import timezone

from panel.dcdn.errors import Conflict, DcdnError, NotFound, OutcomeUnknown
from panel.dcdn.types import CreatedInstance, DestroyResult, Instance
from panel.instances import services, snapshot
from panel.instances.models import Operation

TRANSITIONS = {"start": ({"stopped"}, "starting"), "stop": ({"running"}, "stopping")}
TRANSITIONS["restart"] = ({"running"}, "restarting")


class FakeDcdn:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.instances: dict[str, Instance] = {}
        self.calls: Counter[str] = Counter()
        # method name -> list of errors raised by the next calls, in order
        self.fail_next: dict[str, list[DcdnError]] = {}
        # method name -> seconds each call takes (before it reads or changes anything)
        self.slow: dict[str, float] = {}
        # list_instances: seconds it takes after reading the list (a slow answer)
        self.slow_after_read: dict[str, float] = {}
        # create: apply the order, then raise this (a lost answer)
        self.create_then_raise: DcdnError | None = None
        self.passwords: dict[str, str] = {}
        self._serial = 0
        self.clients_made: list[float | None] = []

    # --- what tests call ---

    def client_for(self, user, *, max_wait=None):
        self.clients_made.append(max_wait)
        return FakeClient(self)

    def add(self, name: str, *, status: str = "running", **fields) -> Instance:
        with self.lock:
            self._serial += 1
            instance = Instance(
                id=fields.pop("id", f"00000000-0000-4000-8000-{self._serial:012d}"),
                name=name,
                status=status,
                plan=fields.pop("plan", "vps-1"),
                image=fields.pop("image", "ubuntu-24.04"),
                region=fields.pop("region", "eu-central"),
                ip_address=fields.pop("ip_address", f"10.0.0.{self._serial}"),
                monthly_cost_usd=fields.pop("monthly_cost_usd", Decimal("5.00")),
                created_at=fields.pop("created_at", datetime.now(UTC)),
                **fields,
            )
            self.instances[instance.id] = instance
            return instance

    def set_status(self, instance_id: str, status: str) -> None:
        with self.lock:
            self.instances[instance_id] = replace(self.instances[instance_id], status=status)

    def remove(self, instance_id: str) -> None:
        with self.lock:
            self.instances.pop(instance_id, None)

    def by_name(self, name: str) -> Instance | None:
        return next((i for i in self.instances.values() if i.name == name), None)

    # --- used by FakeClient ---

    def enter(self, method: str) -> None:
        with self.lock:
            self.calls[method] += 1
            queued = self.fail_next.get(method)
            error = queued.pop(0) if queued else None
        if self.slow.get(method):
            time.sleep(self.slow[method])
        if error is not None:
            raise error


class FakeClient:
    def __init__(self, dcdn: FakeDcdn) -> None:
        self.dcdn = dcdn

    def list_instances(self) -> list[Instance]:
        self.dcdn.enter("list_instances")
        with self.dcdn.lock:
            listed = list(self.dcdn.instances.values())
        if self.dcdn.slow_after_read.get("list_instances"):
            time.sleep(self.dcdn.slow_after_read["list_instances"])
        return listed

    def get_instance(self, instance_id: str) -> Instance:
        self.dcdn.enter("get_instance")
        with self.dcdn.lock:
            if instance_id not in self.dcdn.instances:
                raise NotFound("Instance not found.")
            return self.dcdn.instances[instance_id]

    def create_instance(
        self, *, name, plan, image, region, cpu_type="shared", ssh_keys=(), redundant=False
    ):
        self.dcdn.enter("create_instance")
        if self.dcdn.by_name(name) is not None:
            raise Conflict(f"An instance named '{name}' already exists.", field="name")
        instance = self.dcdn.add(name, status="creating", plan=plan, image=image, region=region)
        password = f"pw-{instance.id[-4:]}-Secret!"
        self.dcdn.passwords[instance.id] = password
        if self.dcdn.create_then_raise is not None:
            error, self.dcdn.create_then_raise = self.dcdn.create_then_raise, None
            raise error
        return CreatedInstance(instance=instance, root_password=password, message="ok")

    def destroy_instance(self, instance_id: str) -> DestroyResult:
        self.dcdn.enter("destroy_instance")
        with self.dcdn.lock:
            instance = self.dcdn.instances.get(instance_id)
            if instance is None:
                raise NotFound("Instance not found.")
            if instance.status == "destroying":
                raise Conflict("Instance is destroying; cannot destroy.")
            self.dcdn.instances[instance_id] = replace(instance, status="destroying")
        return DestroyResult(status="destroyed")

    def _action(self, instance_id: str, action: str) -> Instance:
        self.dcdn.enter(f"{action}_instance")
        allowed, target = TRANSITIONS[action]
        with self.dcdn.lock:
            instance = self.dcdn.instances.get(instance_id)
            if instance is None:
                raise NotFound("Instance not found.")
            if instance.status not in allowed:
                raise Conflict(f"Cannot {action} an instance that is {instance.status}.")
            instance = replace(instance, status=target)
            self.dcdn.instances[instance_id] = instance
            return instance

    def start_instance(self, instance_id: str) -> Instance:
        return self._action(instance_id, "start")

    def stop_instance(self, instance_id: str) -> Instance:
        return self._action(instance_id, "stop")

    def restart_instance(self, instance_id: str) -> Instance:
        return self._action(instance_id, "restart")

    def reset_password(self, instance_id: str) -> str:
        self.dcdn.enter("reset_password")
        if instance_id not in self.dcdn.instances:
            raise NotFound("Instance not found.")
        password = f"reset-{self.dcdn.calls['reset_password']}-Secret!"
        self.dcdn.passwords[instance_id] = password
        return password

    def add_ssh_key(self, instance_id: str, public_key: str) -> None:
        self.dcdn.enter("add_ssh_key")
        if instance_id not in self.dcdn.instances:
            raise NotFound("Instance not found.")


def make_due(operation: Operation) -> None:
    """Let the next advance run now (tests do not wait for next_poll_at)."""
    Operation.objects.filter(pk=operation.pk).update(next_poll_at=None)


def expire_snapshot(user) -> None:
    """Make the owner's snapshot due for a refresh at the next read."""
    snapshot.snapshot_clear(owner=snapshot.owner_key(user))


def advance(operation: Operation, *, fresh: bool = True) -> float | None:
    """One step, as a task would run it when due; ``fresh`` lets it read the list anew."""
    make_due(operation)
    if fresh:
        expire_snapshot(operation.owner)
    result = services.operation_advance(operation_id=operation.pk)
    operation.refresh_from_db()
    return result


def backdate(operation: Operation, **seconds: float) -> None:
    """Move time fields of an operation into the past, e.g. backdate(op, submitted_at=60)."""
    now = timezone.now()
    Operation.objects.filter(pk=operation.pk).update(
        **{name: now - timezone.timedelta(seconds=value) for name, value in seconds.items()}
    )
    operation.refresh_from_db()


# --- the simulator's control endpoints -------------------------------------------------


def sim_post(sim, path: str, body: dict) -> None:
    request = urllib.request.Request(
        sim.base_url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


def sim_calls(sim, token: str = "demo-token") -> Counter[str]:
    """Calls per endpoint ("GET /instances": n, ...) made with ``token``."""
    with urllib.request.urlopen(sim.base_url + "/_sim/calls", timeout=5) as response:
        data = json.load(response)
    entry = data.get("by_token", {}).get(token, {})
    return Counter(entry.get("endpoints", {}))


def sim_reset_calls(sim) -> None:
    sim_post(sim, "/_sim/calls/reset", {})


__all__ = [
    "FakeClient",
    "FakeDcdn",
    "OutcomeUnknown",
    "advance",
    "backdate",
    "expire_snapshot",
    "make_due",
    "sim_calls",
    "sim_post",
    "sim_reset_calls",
]
