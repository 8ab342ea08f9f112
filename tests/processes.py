"""Real processes for tests: free ports, Celery workers (optionally with beat), stopping.

Generic helpers, shared by every app's tests. A worker started here talks to the same
database (the test database, when called inside a test using ``transactional_db`` or
``live_server``), cache, broker, DCDN URL and encryption keys as the test process, so a
task the test enqueues is run by it against what the test sees.

Typical fixture::

    @pytest.fixture
    def celery_worker(transactional_db, simulator, tmp_path):
        purge_broker()
        proc = start_celery_worker(celery_env(), log_path=tmp_path / "worker.log")
        yield proc
        stop_process(proc)

Every process is stopped by its PID (terminate, then kill after a timeout).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent

__all__ = [
    "ProcessFailed",
    "celery_env",
    "database_url",
    "free_port",
    "kill_process",
    "log_tail",
    "purge_broker",
    "start_celery_worker",
    "stop_process",
    "wait_for",
]


class ProcessFailed(RuntimeError):
    """A process did not start (its log tail is in the message)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, *, timeout: float, interval: float = 0.05, message: str = ""):
    """Poll ``predicate`` until it returns something truthy; that value, or AssertionError
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"condition not met within {timeout} s")
        time.sleep(interval)


def database_url() -> str:
    """A DATABASE_URL for the database this process uses now (the test database inside
    a test), for dj-database-url in a child process."""
    from django.conf import settings
    from django.db import connection

    db = settings.DATABASES["default"]
    name = connection.settings_dict.get("NAME") or db["NAME"]
    engine = db["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{name}"
    if "postgresql" not in engine:
        raise ValueError(f"no URL scheme known for database engine {engine}")
    user = quote(str(db.get("USER") or ""), safe="")
    password = quote(str(db.get("PASSWORD") or ""), safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(str(name), safe='')}"


def celery_env(**overrides: str | float | int) -> dict[str, str]:
    """The environment for a worker that shares this test process's world.

    ``overrides`` are extra variables (e.g. ``DCDN_READ_TIMEOUT=2``); values become strings.
    """
    from django.conf import settings

    cache = settings.CACHES["default"]
    env = {
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "panel.settings"),
        "DATABASE_URL": database_url(),
        "DATABASE_CONN_MAX_AGE": "0",
        "REDIS_URL": getattr(settings, "REDIS_URL", ""),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        "CACHE_KEY_PREFIX": cache.get("KEY_PREFIX", "") or os.environ.get("CACHE_KEY_PREFIX", ""),
        "DCDN_API_URL": settings.DCDN_API_URL,
        "DCDN_EARNINGS_URL": settings.DCDN_EARNINGS_URL,
        "TOKEN_ENCRYPTION_KEYS": ",".join(
            k.decode() if isinstance(k, bytes) else str(k) for k in settings.TOKEN_ENCRYPTION_KEYS
        ),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "PANEL_VAR_DIR": str(settings.VAR_DIR),
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "PYTHONUNBUFFERED": "1",
    }
    # Timings the test process may have overridden: the worker follows the same ones.
    for name in (
        "DCDN_SNAPSHOT_SECONDS",
        "DCDN_CONNECT_TIMEOUT",
        "DCDN_READ_TIMEOUT",
        "DCDN_BUDGET_MAX_WAIT",
        "DCDN_RATE_LIMIT_PER_MINUTE",
        "OPERATIONS_POLL_SECONDS",
        "OPERATIONS_RECONCILE_SECONDS",
        "OPERATIONS_RECONCILE_MARGIN_SECONDS",
        "OPERATIONS_ADOPT_GRACE_SECONDS",
        "OPERATIONS_MAX_ATTEMPTS",
    ):
        if hasattr(settings, name):
            env[name] = str(getattr(settings, name))
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def purge_broker(*, unacked: bool = True) -> int:
    """Drop every waiting task message on the test broker (a leftover from an earlier
    test must not run against this one's database). Returns how many were dropped.

    ``unacked`` also forgets messages a killed worker had taken, so they are not
    restored into a later test.
    """
    from panel.celery import app

    dropped = app.control.purge()
    if unacked and app.conf.broker_url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(app.conf.broker_url)
        try:
            client.delete("unacked", "unacked_index", "unacked_mutex")
        finally:
            client.close()
    return dropped


def start_celery_worker(
    env: dict[str, str],
    *,
    beat: bool = False,
    queues: str | None = None,
    log_path: Path | str | None = None,
    ready_timeout: float = 30.0,
    extra_args: tuple[str, ...] = (),
) -> subprocess.Popen:
    """Start ``celery -A panel worker`` (solo pool, one process) and wait until it is ready.

    ``env`` is laid over this process's environment (see ``celery_env``). ``beat`` runs
    the beat scheduler inside the worker, its schedule file in a private temporary
    folder. Output goes to ``log_path`` (a temporary file if None); ``proc.log_path`` names
    it. Raises ProcessFailed, after stopping it, if it is not ready in time.
    """
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="celery-worker-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    log_path = Path(log_path)
    if queues is None:
        from django.conf import settings

        queues = settings.CELERY_TASK_DEFAULT_QUEUE
    node = f"test-{os.getpid()}-{free_port()}@%h"
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "panel",
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "-Q",
        queues,
        "-n",
        node,
        "--without-heartbeat",
        "--without-mingle",
        "--without-gossip",
        "-l",
        "INFO",
    ]
    if beat:
        schedule_dir = Path(tempfile.mkdtemp(prefix="celery-beat-"))
        args += ["--beat", "--schedule", str(schedule_dir / "celerybeat-schedule")]
    args += list(extra_args)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: a Ctrl-C in the terminal does not reach it half-way.
            start_new_session=True,
        )
    proc.log_path = log_path  # type: ignore[attr-defined]
    proc.own_group = True  # type: ignore[attr-defined]
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if " ready." in text:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    stop_process(proc)
    tail = log_path.read_text(errors="replace")[-3000:]
    raise ProcessFailed(f"Celery worker did not become ready; its log ends with:\n{tail}")


def stop_process(proc: subprocess.Popen | None, *, timeout: float = 10.0) -> None:
    """Stop a process we started: SIGTERM, then SIGKILL if it is still there.

    Processes from ``start_celery_worker`` lead their own process group (an embedded
    beat runs as a child): whatever of that group outlives its leader is killed too.
    """
    if proc is None:
        return
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
    kill_process(proc)


def kill_process(proc: subprocess.Popen) -> None:
    """SIGKILL the process and its group (no cleanup, like a crash) and reap it."""
    if _leads_group(proc):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    proc.wait(timeout=10)


def _leads_group(proc: subprocess.Popen) -> bool:
    """Whether ``proc`` was started as the leader of its own process group (and so the
    group id is ours, not the test runner's)."""
    return bool(getattr(proc, "own_group", False))


def log_tail(proc: subprocess.Popen, chars: int = 4000) -> str:
    """The end of a process's log, for assertion messages."""
    path = getattr(proc, "log_path", None)
    if not path or not Path(path).exists():
        return ""
    return Path(path).read_text(errors="replace")[-chars:]
