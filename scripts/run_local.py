"""`make run`: the whole panel on one machine with embedded defaults.

Migrates, makes sure the demo login exists (printing its password on first run), then
starts the DCDN simulator, a Celery worker with its periodic scheduler, and the web
server on http://127.0.0.1:8000. Ctrl-C stops all of them, by PID.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
WEB_PORT = int(os.environ.get("PANEL_PORT", "8000"))
SIM_PORT = int(os.environ.get("SIMULATOR_PORT", "8765"))


def manage(*args: str) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=True)


def start(name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    print(f"starting {name}: {' '.join(argv[1:4])} ...", flush=True)
    # Own process group, so Ctrl-C in the terminal reaches us first and we stop children.
    return subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True)


def wait_for(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback only
                return True
        except OSError:
            time.sleep(0.3)
    return False


def stop_group(proc: subprocess.Popen) -> None:
    """Whatever is left of a child's process group (e.g. the beat of a killed worker)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def stop_all(processes: list[tuple[str, subprocess.Popen]]) -> None:
    for _name, proc in reversed(processes):
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for name, proc in reversed(processes):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in time; killing it", flush=True)
            stop_group(proc)


def simulator_state_file() -> Path:
    checkout = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"dcdn-simulator-{checkout}-{SIM_PORT}.json"


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    # Also when started in the background (where SIGINT starts out ignored) or stopped by
    # a service manager's SIGTERM: stop the children rather than orphan them.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")
    env.setdefault("DCDN_API_URL", f"http://127.0.0.1:{SIM_PORT}/api/v1/compute")
    os.environ.update(env)

    manage("migrate", "--noinput", "-v", "0")
    manage("demo_setup", "--token", "demo-token")

    var_dir = Path(env.get("PANEL_VAR_DIR", ROOT / "var"))
    commands = {
        # The state file keeps the simulator's instances across restarts of `make run`.
        # It plays DCDN's side and holds its accounts' tokens in clear, so it lives
        # outside the panel's own folder, where no panel secret is ever in clear.
        "simulator": [
            PY, "manage.py", "dcdn_simulator", "--port", str(SIM_PORT),
            "--state-file", str(simulator_state_file()),
        ],
        "worker": [
            PY, "-m", "celery", "-A", "panel", "worker", "--beat",
            "--pool", "solo", "--loglevel", "INFO",
            "--schedule", str(var_dir / "celerybeat-schedule"),
        ],
        "web": [
            PY, "-m", "gunicorn", "panel.wsgi", "--bind", f"127.0.0.1:{WEB_PORT}",
            "--workers", "2", "--threads", "4", "--no-control-socket",
            "--access-logfile", "-",
        ],
    }  # fmt: skip
    processes: dict[str, subprocess.Popen] = {}
    restarts: dict[str, list[float]] = {name: [] for name in commands}
    try:
        for name, argv in commands.items():
            processes[name] = start(name, argv, env)
        login_url = f"http://127.0.0.1:{WEB_PORT}/accounts/login/"
        if wait_for(login_url, 60):
            print(f"\nDCDN Panel is up: {login_url}  (Ctrl-C stops everything)\n", flush=True)
        while True:
            time.sleep(0.5)
            for name, proc in processes.items():
                if proc.poll() is None:
                    continue
                # Like a process supervisor: a crashed (or killed) part comes back, and
                # the worker's start-up resume picks up the operations it held.
                recent = [t for t in restarts[name] if t > time.monotonic() - 60]
                if len(recent) >= 5:
                    print(f"{name} keeps exiting (code {proc.returncode}); stopping", flush=True)
                    return 1
                restarts[name] = [*recent, time.monotonic()]
                print(f"{name} exited with code {proc.returncode}; restarting it", flush=True)
                stop_group(proc)
                processes[name] = start(name, commands[name], env)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        stop_all(list(processes.items()))


if __name__ == "__main__":
    sys.exit(main())
