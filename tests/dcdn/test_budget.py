"""The shared request budget, for both backends (Redis and file), with small windows."""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid

import pytest

from panel.dcdn.budget import FileBudget, RedisBudget, get_budget
from panel.dcdn.errors import RateLimited

LIMIT = 5
WINDOW = 1.0
MARGIN = 0.2
SPAN = WINDOW + MARGIN  # the window the panel actually enforces


@pytest.fixture(params=["redis", "file"])
def budget(request, settings, tmp_path):
    settings.DCDN_RATE_LIMIT_PER_MINUTE = LIMIT
    settings.DCDN_RATE_WINDOW_SECONDS = WINDOW
    settings.DCDN_BUDGET_MARGIN_SECONDS = MARGIN
    if request.param == "file":
        settings.REDIS_URL = ""
        settings.DCDN_BUDGET_REDIS_URL = ""
        settings.VAR_DIR = tmp_path
    backend = get_budget()
    assert type(backend) is (RedisBudget if request.param == "redis" else FileBudget)
    return backend


@pytest.fixture
def key():
    return f"test:{uuid.uuid4().hex}"


def take(budget, key, n, *, max_wait=0.0):
    for _ in range(n):
        budget.acquire(key, max_wait=max_wait)


def test_the_limit_is_free_then_the_next_is_refused_with_retry_after(budget, key):
    started = time.monotonic()
    take(budget, key, LIMIT)
    assert time.monotonic() - started < 0.3
    with pytest.raises(RateLimited) as info:
        budget.acquire(key, max_wait=0)
    assert 0 < info.value.retry_after <= SPAN
    assert re.fullmatch(
        r"DCDN request budget for this account is used up; retry in [12] s", info.value.message
    )


def test_a_refusal_comes_at_once_when_no_slot_frees_within_max_wait(budget, key):
    take(budget, key, LIMIT)
    started = time.monotonic()
    with pytest.raises(RateLimited):
        budget.acquire(key, max_wait=0.5)
    assert time.monotonic() - started < 0.2


def test_acquire_waits_for_the_oldest_request_to_leave_the_window(budget, key):
    take(budget, key, LIMIT)
    started = time.monotonic()
    budget.acquire(key, max_wait=3)
    assert SPAN - 0.3 <= time.monotonic() - started <= SPAN + 0.3


def test_no_window_ever_holds_more_than_the_limit(budget, key):
    stamps = []
    for _ in range(3 * LIMIT):
        budget.acquire(key, max_wait=5)
        stamps.append(time.monotonic())
    for first, later in zip(stamps, stamps[LIMIT:], strict=False):
        assert later - first >= SPAN - 0.05


def test_threads_share_the_budget(budget, key):
    stamps = []
    lock = threading.Lock()

    def worker():
        for _ in range(3):
            budget.acquire(key, max_wait=10)
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps.sort()
    assert len(stamps) == 12
    for first, later in zip(stamps, stamps[LIMIT:], strict=False):
        assert later - first >= SPAN - 0.05


def test_keys_have_separate_budgets(budget, key):
    take(budget, key, LIMIT)
    take(budget, key + ":other", LIMIT)


def test_penalize_holds_everyone_off(budget, key):
    budget.penalize(key, 0.5)
    with pytest.raises(RateLimited) as info:
        budget.acquire(key, max_wait=0)
    assert 0.3 < info.value.retry_after <= 0.5
    started = time.monotonic()
    budget.acquire(key, max_wait=2)
    assert 0.3 <= time.monotonic() - started <= 0.8


def test_a_shorter_penalty_never_shortens_a_longer_one(budget, key):
    budget.penalize(key, 2)
    budget.penalize(key, 0.1)
    with pytest.raises(RateLimited) as info:
        budget.acquire(key, max_wait=0)
    assert info.value.retry_after > 1.5


def test_default_max_wait_comes_from_settings(budget, key, settings):
    settings.DCDN_BUDGET_MAX_WAIT = 0
    take(budget, key, LIMIT)
    with pytest.raises(RateLimited):
        budget.acquire(key)


def test_get_budget_follows_settings(settings, tmp_path):
    assert isinstance(get_budget(), RedisBudget)
    assert get_budget() is get_budget()
    settings.REDIS_URL = ""
    settings.VAR_DIR = tmp_path
    assert isinstance(get_budget(), FileBudget)
    settings.DCDN_BUDGET_REDIS_URL = "redis://127.0.0.1:6379/14"
    assert isinstance(get_budget(), RedisBudget)


def test_file_budget_recovers_from_a_corrupt_file(settings, tmp_path, key):
    settings.DCDN_RATE_LIMIT_PER_MINUTE = LIMIT
    budget = FileBudget(directory=tmp_path)
    budget._path(key).parent.mkdir(parents=True, exist_ok=True)
    budget._path(key).write_text("{torn")
    take(budget, key, LIMIT)
    with pytest.raises(RateLimited):
        budget.acquire(key, max_wait=0)


def test_redis_budget_falls_back_to_the_file_budget_when_redis_is_down(settings, tmp_path, key):
    settings.DCDN_RATE_LIMIT_PER_MINUTE = LIMIT
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    budget = RedisBudget(
        url=f"redis://127.0.0.1:{port}/0",
        prefix="test",
        fallback=FileBudget(directory=tmp_path),
    )
    take(budget, key, LIMIT)
    with pytest.raises(RateLimited):
        budget.acquire(key, max_wait=0)
