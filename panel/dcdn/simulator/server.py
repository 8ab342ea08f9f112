"""The simulator's HTTP layer: routing, body reading, JSON encoding. No rules live here.

Every request is routed to a method of ``SimulatorState``; latency and post-commit hangs
are slept here, outside the state lock, so concurrent clients are served concurrently.
"""

from __future__ import annotations

import ipaddress
import json
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .state import ApiError, ApiRequest, Config, Reply, SimulatorState

API_PREFIX = "/api/v1/compute"
CONTROL_PREFIX = "/_sim"
# What a client gets when the malformed-response fault fires: a 200 that is not JSON.
MALFORMED_BODY = b'{"instances": [{"id": "5f1c", "status": "runn'


# --------------------------------------------------------------------------------------
# JSON encoding with exact decimals
# --------------------------------------------------------------------------------------


def encode_json(value: Any) -> str:
    """JSON text in which a ``Decimal`` is written as a number with all its digits.

    The standard encoder would either refuse Decimals or pass them through float.
    """
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot encode {value} as JSON")
        return format(value, "f")
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}: {encode_json(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(encode_json(v) for v in value) + "]"
    return json.dumps(value)


# --------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # relative to the API prefix, with {id} / {node_id} placeholders
    handler: Callable[[ApiRequest], Reply]

    @property
    def endpoint(self) -> str:
        return f"{self.method} {self.pattern}"

    def match(self, path: str) -> dict[str, str] | None:
        wanted = self.pattern.strip("/").split("/")
        given = path.strip("/").split("/")
        if len(wanted) != len(given):
            return None
        params = {}
        for expected, actual in zip(wanted, given, strict=True):
            if expected.startswith("{"):
                if not actual:
                    return None
                params[expected[1:-1]] = actual
            elif expected != actual:
                return None
        return params


def api_routes(state: SimulatorState) -> tuple[Route, ...]:
    return (
        Route("GET", "/plans", state.list_plans),
        Route("GET", "/images", state.list_images),
        Route("GET", "/regions", state.list_regions),
        Route("GET", "/templates", state.list_templates),
        Route("GET", "/instances", state.list_instances),
        Route("POST", "/instances", state.create_instance),
        Route("GET", "/instances/{id}", state.get_instance),
        Route("DELETE", "/instances/{id}", state.destroy_instance),
        Route("POST", "/instances/{id}/start", state.instance_action("start")),
        Route("POST", "/instances/{id}/stop", state.instance_action("stop")),
        Route("POST", "/instances/{id}/restart", state.instance_action("restart")),
        Route("POST", "/instances/{id}/reset-password", state.reset_password),
        Route("POST", "/instances/{id}/ssh-key", state.add_ssh_key),
        Route("GET", "/earnings/summary", state.earnings_summary),
        Route("GET", "/earnings/node/{node_id}", state.node_earnings),
        Route("POST", "/earnings/payout", state.request_payout),
        Route("GET", "/earnings/token-info", state.token_info),
    )


@dataclass(frozen=True)
class Resolution:
    """Where a request goes: its counted endpoint name and the handler that answers it."""

    endpoint: str
    handler: Callable[[ApiRequest], Reply]
    params: dict[str, str]
    # A path that names no endpoint is refused before authentication, like a URL router would.
    exists: bool = True


def refusal(error: ApiError) -> Callable[[ApiRequest], Reply]:
    def handler(_request: ApiRequest) -> Reply:
        raise error

    return handler


def resolve(routes: tuple[Route, ...], method: str, path: str) -> Resolution:
    allowed = []
    for route in routes:
        params = route.match(path)
        if params is None:
            continue
        if route.method == method:
            return Resolution(route.endpoint, route.handler, params)
        allowed.append(route.method)
    if allowed:
        error = ApiError(
            405,
            "method_not_allowed",
            f"Method {method} is not allowed here.",
            headers=(("Allow", ", ".join(allowed)),),
        )
        return Resolution(f"{method} {path}", refusal(error), {})
    error = ApiError(404, "not_found", f"No such endpoint: {method} {API_PREFIX}{path}")
    return Resolution(f"{method} {path}", refusal(error), {}, exists=False)


def control_allowed(client_host: str) -> bool:
    """The /_sim/ endpoints answer loopback clients only."""
    try:
        return ipaddress.ip_address(client_host).is_loopback
    except ValueError:
        return False


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# --------------------------------------------------------------------------------------
# The request handler
# --------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "DCDNSimulator/1.0"
    timeout = 60  # an idle keep-alive connection frees its thread after this long
    server: _HTTPServer

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        try:
            if url.path == CONTROL_PREFIX or url.path.startswith(CONTROL_PREFIX + "/"):
                self._send(self._control(url.path, url.query, body))
            elif url.path == API_PREFIX or url.path.startswith(API_PREFIX + "/"):
                self._api(url.path[len(API_PREFIX) :] or "/", body)
            else:
                self._send(ApiError(404, "not_found", f"No such path: {url.path}").reply())
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. timed out during a hang): nobody to answer.
            self.close_connection = True

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            # The body's end cannot be found, so this connection cannot carry another request.
            self.close_connection = True
            return b""
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _api(self, path: str, body: bytes) -> None:
        state = self.server.state
        resolution = resolve(self.server.routes, self.command, path)
        token = bearer_token(self.headers.get("Authorization"))
        ticket = state.receive(self.command, resolution.endpoint, token)
        if ticket.latency_seconds:
            time.sleep(ticket.latency_seconds)
        if ticket.fault is not None:
            self._send(ticket.fault)
            return
        request = ApiRequest(
            method=self.command,
            endpoint=resolution.endpoint,
            token=token,
            params=resolution.params,
            body=body,
            idempotency_key=self.headers.get("Idempotency-Key"),
        )
        reply = self._run(lambda: state.serve(request, resolution.handler, admit=resolution.exists))
        if ticket.hang_seconds:
            time.sleep(ticket.hang_seconds)
        if ticket.malformed:
            self._send_raw(200, MALFORMED_BODY, ())
        else:
            self._send(reply)

    def _control(self, path: str, query: str, body: bytes) -> Reply:
        if not control_allowed(self.client_address[0]):
            return ApiError(403, "forbidden", "Control endpoints answer loopback only.").reply()
        state = self.server.state
        routes: dict[tuple[str, str], Callable[[], Reply]] = {
            ("POST", "/_sim/accounts"): lambda: state.sim_add_account(body),
            ("POST", "/_sim/reset"): state.sim_reset,
            ("POST", "/_sim/faults"): lambda: state.sim_set_faults(body),
            ("GET", "/_sim/faults"): state.sim_faults,
            ("GET", "/_sim/calls"): state.sim_calls,
            ("POST", "/_sim/calls/reset"): state.sim_reset_calls,
            ("GET", "/_sim/state"): lambda: state.sim_account_state(
                parse_qs(query).get("token", [None])[0]
            ),
        }
        path = path.rstrip("/")
        action = routes.get((self.command, path))
        if action is not None:
            return self._run(action)
        allowed = [method for method, route_path in routes if route_path == path]
        if allowed:
            return ApiError(
                405,
                "method_not_allowed",
                f"Method {self.command} is not allowed here.",
                headers=(("Allow", ", ".join(allowed)),),
            ).reply()
        return ApiError(404, "not_found", f"No such control endpoint: {path}").reply()

    def _run(self, action: Callable[[], Reply]) -> Reply:
        """Run a state call; a refusal becomes its reply, a simulator bug becomes a 500."""
        try:
            return action()
        except ApiError as error:
            return error.reply()
        except Exception as exc:
            self.log_error("simulator error: %r", exc)
            return ApiError(500, "internal_error", f"Simulator error: {exc!r}").reply()

    def _send(self, reply: Reply) -> None:
        body = b"" if reply.payload is None else encode_json(reply.payload).encode("utf-8")
        self._send_raw(reply.status, body, reply.headers)

    def _send_raw(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...]) -> None:
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: SimulatorState, verbose: bool) -> None:
        self.state = state
        self.routes = api_routes(state)
        self.verbose = verbose
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look up the host's FQDN, which can stall on DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = host, port


# --------------------------------------------------------------------------------------
# The public interface
# --------------------------------------------------------------------------------------


class SimulatorServer:
    """A DCDN API simulator on a loopback port, served from a background daemon thread."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        create_seconds: float = 0.2,
        destroy_seconds: float = 0.2,
        transition_seconds: float = 0.2,
        rate_limit: int = 60,
        rate_window_seconds: float = 60.0,
        latency_ms: float = 0,
        seed: int = 0,
        payout_seconds: float = 60.0,
        state_file: str | None = None,
        error_rate: float = 0.0,
        malformed_rate: float = 0.0,
        verbose: bool = False,
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the simulator listens on loopback only, not {host}")
        self.host = host
        self._requested_port = port
        self._verbose = verbose
        self.state = SimulatorState(
            Config(
                create_seconds=create_seconds,
                destroy_seconds=destroy_seconds,
                transition_seconds=transition_seconds,
                rate_limit=rate_limit,
                rate_window_seconds=rate_window_seconds,
                payout_seconds=payout_seconds,
                seed=seed,
                latency_ms=latency_ms,
                error_rate=error_rate,
                malformed_rate=malformed_rate,
                state_file=state_file,
            )
        )
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SimulatorServer:
        if self._httpd is not None:
            raise RuntimeError("the simulator is already running")
        self._httpd = _HTTPServer((self.host, self._requested_port), self.state, self._verbose)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"dcdn-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = None
        self._thread = None

    def reset(self) -> None:
        self.state.reset()

    @property
    def port(self) -> int:
        if self._httpd is None:
            return self._requested_port
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
