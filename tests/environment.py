"""Loaded by pytest before Django (see ``-p tests.environment`` in pyproject.toml).

The suite runs on the real services: PostgreSQL and Redis on loopback. Values already
in the environment win, so CI or a developer can point elsewhere.
"""

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent

# A database name per run, so that two runs on one machine never share a test database.
os.environ.setdefault(
    "DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/dcdn_panel_{os.getpid()}"
)
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/1")
# The broker lives in its own Redis database: the cache (db 1) is flushed between tests.
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/2")
os.environ.setdefault("CACHE_KEY_PREFIX", f"test{os.getpid()}")
# A queue of its own: a purge or a worker of another run on this machine never sees ours.
os.environ.setdefault("CELERY_QUEUE", f"test{os.getpid()}")
os.environ.setdefault("PANEL_VAR_DIR", str(ROOT / "var" / "test"))
os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault("LOGIN_FAILURE_LIMIT", "20")


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        address = (parsed.hostname or "127.0.0.1", parsed.port or default_port)
        with socket.create_connection(address, 2):
            return True
    except OSError:
        return False


def pytest_configure(config):
    problems = []
    if not _reachable(os.environ["DATABASE_URL"], 5432):
        problems.append(
            "PostgreSQL is not reachable at DATABASE_URL; start it with "
            "`bash scripts/ensure_services.sh` (or `make services`)."
        )
    if not _reachable(os.environ["REDIS_URL"], 6379):
        problems.append(
            "Redis is not reachable at REDIS_URL; start it with "
            "`bash scripts/ensure_services.sh` (or `make services`)."
        )
    if problems:
        raise SystemExit("\n".join(problems))
