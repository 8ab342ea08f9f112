"""Fixtures for the instances tests: users, a fake DCDN at the panel/dcdn boundary, the
real simulator with a stored token, and real Celery workers."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from panel.instances import snapshot, tasks
from tests.processes import celery_env, purge_broker, start_celery_worker, stop_process

from .support import FakeDcdn

DEMO_TOKEN = "demo-token"


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    # Users are made in almost every test: skip the deliberately slow password hash.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_user("owner", "owner@example.com", "pw-owner-12345")


@pytest.fixture
def outsider(db):
    return get_user_model().objects.create_user("outsider", "out@example.com", "pw-out-12345")


@pytest.fixture
def fake_dcdn(monkeypatch) -> FakeDcdn:
    """Every DCDN call of the instances code goes to an in-memory fake."""
    fake = FakeDcdn()
    monkeypatch.setattr(snapshot, "client_for", fake.client_for)
    return fake


@pytest.fixture
def sent_tasks(monkeypatch) -> list[dict]:
    """Task messages the code sends, recorded instead of reaching the broker."""
    sent: list[dict] = []

    def record(args=None, kwargs=None, **options):
        sent.append({"args": list(args or ()), "kwargs": dict(kwargs or {}), **options})

    monkeypatch.setattr(tasks.operation_advance, "apply_async", record)
    return sent


@pytest.fixture
def fast_operations(settings):
    """Short timings, the same in the test process and in the workers it starts."""
    settings.DCDN_SNAPSHOT_SECONDS = 0.5
    settings.OPERATIONS_POLL_SECONDS = 0.5
    settings.DCDN_BUDGET_MAX_WAIT = 2.0
    return settings


@pytest.fixture
def demo_owner(owner, simulator):
    """The owner, holding the simulator's seeded token (100 credits)."""
    from accounts.services import credential_store_unverified

    credential_store_unverified(user=owner, token=DEMO_TOKEN)
    return owner


@pytest.fixture
def celery_workers(transactional_db, simulator, tmp_path):
    """Start real workers with ``celery_workers(beat=False, **env)``; all are stopped at
    teardown by PID, also when the test fails."""
    purge_broker()
    started = []

    def start(*, beat: bool = False, **env):
        log = tmp_path / f"worker-{len(started) + 1}.log"
        proc = start_celery_worker(celery_env(**env), beat=beat, log_path=log)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop_process(proc)
    purge_broker()
