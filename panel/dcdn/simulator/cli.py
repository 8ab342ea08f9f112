"""Command-line options and the serve-until-signalled loop, shared by
``manage.py dcdn_simulator`` and ``python -m panel.dcdn.simulator``."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable

from .server import SimulatorServer

DEFAULT_PORT = 8765


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--create-seconds", type=float, default=5.0)
    parser.add_argument("--destroy-seconds", type=float, default=3.0)
    parser.add_argument("--transition-seconds", type=float, default=2.0)
    parser.add_argument("--rate-limit", type=int, default=60, help="requests per window")
    parser.add_argument("--rate-window-seconds", type=float, default=60.0)
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--payout-seconds", type=float, default=60.0)
    parser.add_argument("--state-file", default=None, help="keep the state in this JSON file")
    parser.add_argument("--error-rate", type=float, default=0.0, help="fraction answered 500")
    parser.add_argument(
        "--malformed-rate", type=float, default=0.0, help="fraction answered with broken JSON"
    )
    parser.add_argument("--log-requests", action="store_true", help="log every request")


def server_from_options(options: dict) -> SimulatorServer:
    return SimulatorServer(
        port=options["port"],
        create_seconds=options["create_seconds"],
        destroy_seconds=options["destroy_seconds"],
        transition_seconds=options["transition_seconds"],
        rate_limit=options["rate_limit"],
        rate_window_seconds=options["rate_window_seconds"],
        latency_ms=options["latency_ms"],
        seed=options["seed"],
        payout_seconds=options["payout_seconds"],
        state_file=options["state_file"],
        error_rate=options["error_rate"],
        malformed_rate=options["malformed_rate"],
        verbose=options["log_requests"],
    )


def serve_until_signalled(server: SimulatorServer, write: Callable[[str], None]) -> None:
    """Start, announce the URL on one line, and stop cleanly on SIGINT or SIGTERM."""
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda _signum, _frame: stop.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        server.start()
        write(f"DCDN simulator listening on {server.base_url} (API {server.api_url})")
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the DCDN API simulator.")
    add_arguments(parser)
    options = vars(parser.parse_args(argv))
    serve_until_signalled(server_from_options(options), lambda line: print(line, flush=True))
