"""The DCDN API client: one method per endpoint, typed results, typed errors.

INTERFACE CONTRACT (other packages code against exactly these signatures):

    client = DcdnClient(token="...", budget_key="user:42", on_unauthorized=callable_or_None)
    # budget_key names the token's owner; without it the budget is keyed by the token
    # optional keyword-only: api_url=None, earnings_url=None (default: settings at call
    # time), max_wait=None (default settings.DCDN_BUDGET_MAX_WAIT), budget=None
    # (default panel.dcdn.budget.get_budget())

    # catalog (the same for every user; see panel/dcdn/catalog.py for the shared cache)
    client.list_plans() -> list[Plan]
    client.list_images() -> list[Image]
    client.list_regions() -> list[Region]
    client.list_templates() -> list[Template]

    # instances
    client.list_instances() -> list[Instance]
    client.get_instance(instance_id) -> Instance
    client.create_instance(*, name, plan, image, region, cpu_type="shared",
                           ssh_keys=(), redundant=False) -> CreatedInstance
        # never retried; if the request may have left and no answer came: OutcomeUnknown
    client.start_instance(instance_id) -> Instance
    client.stop_instance(instance_id) -> Instance
    client.restart_instance(instance_id) -> Instance
    client.reset_password(instance_id) -> str            # the new root password
    client.add_ssh_key(instance_id, public_key) -> None
    client.destroy_instance(instance_id) -> DestroyResult

    # earnings
    client.earnings_summary() -> EarningsSummary
    client.node_earnings(node_id) -> NodeEarnings
    client.request_payout(*, amount: Decimal, wallet_address: str,
                          idempotency_key: str | None = None) -> Payout
        # never retried; OutcomeUnknown when the outcome cannot be known
    client.token_info() -> TokenInfo

Every method raises a ``panel.dcdn.errors.DcdnError`` subclass on failure:

- 400 BadRequest, 401 Unauthorized (``on_unauthorized()`` is called first), 402
  InsufficientCredits, 404 NotFound, 409 Conflict, 429 RateLimited, 5xx Unavailable,
  anything else DcdnError. ``.message`` is the provider's human text, ``.code`` its
  error code, ``.field`` the request field it names when it can be told.
- RateLimited also comes from the panel's own request budget (see budget.py) before
  anything is sent; ``.retry_after`` says how many seconds to wait in both cases.
- GETs are retried (``DCDN_RETRY_ATTEMPTS`` in all) on 429, 5xx, timeouts, connection
  errors and unreadable answers, with exponential backoff and jitter, honouring
  Retry-After, and never waiting past ``max_wait``.
- POST and DELETE are sent at most once. When they certainly did not leave (budget
  refused, no connection) the error is RateLimited or Unavailable; when they may have
  reached DCDN without a readable answer (read timeout, dropped connection, garbled
  2xx body) it is OutcomeUnknown: look the result up, do not send it again.

Each method acquires budget before every HTTP attempt, retries included.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from .budget import RequestBudget, get_budget
from .errors import (
    DcdnError,
    MalformedResponse,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Unauthorized,
    Unavailable,
    error_from_response,
)
from .types import (
    CreatedInstance,
    DestroyResult,
    EarningsSummary,
    Image,
    Instance,
    NodeEarnings,
    Payout,
    Plan,
    Region,
    Template,
    TokenInfo,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

_CREATE_FIELDS = ("name", "plan", "image", "region", "cpu_type", "ssh_keys", "redundant")
# Errors a parser may hit on a body of the wrong shape; all mean "unreadable answer".
_PARSE_ERRORS = (AttributeError, TypeError, KeyError, ValueError, ArithmeticError)

_local = threading.local()


def _session() -> requests.Session:
    """One Session (connection pool) per thread, renewed after a fork so a Celery child
    never shares its parent's sockets."""
    pid = os.getpid()
    cached = getattr(_local, "session", None)
    if cached is None or cached[0] != pid:
        session = requests.Session()
        # A thread sends one request at a time, to one or two hosts.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=4, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        cached = (pid, session)
        _local.session = cached
    return cached[1]


def _never_left(exc: requests.ConnectionError) -> bool:
    """True when the connection was never made, so the request cannot have arrived."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def _path_values(path: Mapping[str, str] | None) -> dict[str, str]:
    """Path values quoted whole, so an id can never reach another endpoint; an empty or
    dot-segment id names nothing ("/instances/" would be the list)."""
    values = {}
    for key, value in (path or {}).items():
        text = str(value)
        if text in {"", ".", ".."}:
            raise NotFound()
        values[key] = quote(text, safe="")
    return values


def encode_json(payload: Any) -> bytes:
    """JSON with every Decimal written as a number carrying exactly its digits.

    The json module would need a float (and its rounding) to write a number, so each
    Decimal goes in as a unique placeholder string that is then replaced by its digits.
    """
    digits: dict[str, str] = {}
    marker = uuid.uuid4().hex

    def swap(value: Any) -> Any:
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError("A JSON number must be finite.")
            placeholder = f"__decimal_{marker}_{len(digits)}__"
            digits[placeholder] = format(value, "f")
            return placeholder
        if isinstance(value, Mapping):
            return {key: swap(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [swap(item) for item in value]
        return value

    text = json.dumps(swap(payload), separators=(",", ":"))
    for placeholder, number in digits.items():
        text = text.replace(f'"{placeholder}"', number)
    return text.encode()


def _decode_json(content: bytes) -> Any:
    """The parsed body (numbers with a fraction as Decimal), None for an empty one."""
    if not content.strip():
        return None
    try:
        return json.loads(content, parse_float=Decimal)
    except ValueError as exc:
        raise MalformedResponse("DCDN answered with something that is not JSON.") from exc


def _obj(data: Any) -> dict:
    if not isinstance(data, dict):
        raise MalformedResponse("DCDN answer is not a JSON object.")
    return data


def _items(data: Any, key: str) -> list:
    """The list under ``key``; a bare list is tolerated too."""
    if isinstance(data, list):
        return data
    value = _obj(data).get(key)
    if not isinstance(value, list):
        raise MalformedResponse(f"DCDN answer has no '{key}' list.")
    return value


def _instance(data: Any) -> Instance:
    """An instance, also when wrapped as {"instance": {...}}."""
    data = _obj(data)
    if "id" not in data and isinstance(data.get("instance"), dict):
        data = data["instance"]
    return Instance.from_api(data)


def _created(data: Any) -> CreatedInstance:
    data = _obj(data)
    # A missing password must not hide a create that happened: the owner can reset it.
    return CreatedInstance(
        instance=_instance(data),
        root_password=str(data.get("root_password") or ""),
        message=str(data.get("message") or ""),
    )


def _password(data: Any) -> str:
    password = _obj(data).get("root_password")
    if not isinstance(password, str) or not password:
        raise MalformedResponse("DCDN answer has no root password.")
    return password


def _destroyed(data: Any) -> DestroyResult:
    data = data if isinstance(data, dict) else {}
    return DestroyResult(
        status=str(data.get("status") or "destroyed"), message=str(data.get("message") or "")
    )


def token_budget_key(token: str) -> str:
    """A budget key for a token that does not reveal it (keyed hash, not the token)."""
    digest = hmac.new(settings.SECRET_KEY.encode(), token.encode(), hashlib.sha256)
    return f"token:{digest.hexdigest()[:32]}"


class DcdnClient:
    """Talks to DCDN with one account's token; see the module docstring for the contract."""

    def __init__(
        self,
        *,
        token: str,
        budget_key: str | None = None,
        on_unauthorized: Callable[[], None] | None = None,
        api_url: str | None = None,
        earnings_url: str | None = None,
        max_wait: float | None = None,
        budget: RequestBudget | None = None,
    ) -> None:
        self._token = token
        # The provider counts per token; callers name the token's owner ("user:42"). A
        # caller that names nobody shares the budget of everyone holding the same token.
        self._budget_key = budget_key or token_budget_key(token)
        self._on_unauthorized = on_unauthorized
        self._api_url = api_url
        self._earnings_url = earnings_url
        self._max_wait = max_wait
        self._budget = budget

    def __repr__(self) -> str:
        # Never the token.
        return f"<DcdnClient budget_key={self._budget_key!r}>"

    # --- catalog ----------------------------------------------------------------------

    def list_plans(self) -> list[Plan]:
        return self._get("/plans", parse=lambda d: [Plan.from_api(p) for p in _items(d, "plans")])

    def list_images(self) -> list[Image]:
        return self._get(
            "/images", parse=lambda d: [Image.from_api(i) for i in _items(d, "images")]
        )

    def list_regions(self) -> list[Region]:
        return self._get(
            "/regions", parse=lambda d: [Region.from_api(r) for r in _items(d, "regions")]
        )

    def list_templates(self) -> list[Template]:
        return self._get(
            "/templates", parse=lambda d: [Template.from_api(t) for t in _items(d, "templates")]
        )

    # --- instances --------------------------------------------------------------------

    def list_instances(self) -> list[Instance]:
        return self._get(
            "/instances", parse=lambda d: [_instance(i) for i in _items(d, "instances")]
        )

    def get_instance(self, instance_id: str) -> Instance:
        return self._get("/instances/{id}", path={"id": instance_id}, parse=_instance)

    def create_instance(
        self,
        *,
        name: str,
        plan: str,
        image: str,
        region: str,
        cpu_type: str = "shared",
        ssh_keys: Iterable[str] = (),
        redundant: bool = False,
    ) -> CreatedInstance:
        body = {
            "name": name,
            "plan": plan,
            "image": image,
            "region": region,
            "cpu_type": cpu_type,
            "ssh_keys": list(ssh_keys),
            "redundant": bool(redundant),
        }
        return self._send_once("POST", "/instances", body=body, parse=_created)

    def start_instance(self, instance_id: str) -> Instance:
        return self._action(instance_id, "start")

    def stop_instance(self, instance_id: str) -> Instance:
        return self._action(instance_id, "stop")

    def restart_instance(self, instance_id: str) -> Instance:
        return self._action(instance_id, "restart")

    def reset_password(self, instance_id: str) -> str:
        return self._send_once(
            "POST", "/instances/{id}/reset-password", path={"id": instance_id}, parse=_password
        )

    def add_ssh_key(self, instance_id: str, public_key: str) -> None:
        self._send_once(
            "POST",
            "/instances/{id}/ssh-key",
            path={"id": instance_id},
            body={"public_key": public_key},
            parse=None,
        )

    def destroy_instance(self, instance_id: str) -> DestroyResult:
        return self._send_once(
            "DELETE", "/instances/{id}", path={"id": instance_id}, parse=_destroyed
        )

    def _action(self, instance_id: str, action: str) -> Instance:
        return self._send_once(
            "POST", f"/instances/{{id}}/{action}", path={"id": instance_id}, parse=_instance
        )

    # --- earnings ---------------------------------------------------------------------

    def earnings_summary(self) -> EarningsSummary:
        return self._get(
            "/earnings/summary",
            earnings=True,
            parse=lambda d: EarningsSummary.from_api(_obj(d)),
        )

    def node_earnings(self, node_id: str) -> NodeEarnings:
        return self._get(
            "/earnings/node/{id}",
            path={"id": node_id},
            earnings=True,
            parse=lambda d: NodeEarnings.from_api(_obj(d)),
        )

    def request_payout(
        self, *, amount: Decimal, wallet_address: str, idempotency_key: str | None = None
    ) -> Payout:
        if isinstance(amount, float) or not isinstance(amount, Decimal | int):
            # A float has already lost digits; refuse it rather than pay a rounded amount.
            raise TypeError("amount must be a Decimal")
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._send_once(
            "POST",
            "/earnings/payout",
            body={"amount": Decimal(amount), "wallet_address": wallet_address},
            headers=headers,
            earnings=True,
            parse=lambda d: Payout.from_api(_obj(d)),
        )

    def token_info(self) -> TokenInfo:
        return self._get(
            "/earnings/token-info", earnings=True, parse=lambda d: TokenInfo.from_api(_obj(d))
        )

    # --- transport --------------------------------------------------------------------

    def _get(
        self,
        template: str,
        *,
        parse: Callable[[Any], T],
        path: Mapping[str, str] | None = None,
        earnings: bool = False,
    ) -> T:
        """A GET, retried on transient failures within ``max_wait``."""
        url = self._url(template, path=path, earnings=earnings)  # before spending budget
        deadline = time.monotonic() + self._wait_limit()
        attempts = max(1, int(getattr(settings, "DCDN_RETRY_ATTEMPTS", 3)))
        for attempt in range(1, attempts + 1):
            self._acquire(deadline)
            try:
                response = self._transmit("GET", url, template=template)
                return self._read(response, template=template, parse=parse, fields=())
            except (RateLimited, Unavailable) as exc:
                delay = self._retry_delay(exc, attempt=attempt)
                if attempt >= attempts or delay > deadline - time.monotonic():
                    raise
                logger.debug("DCDN GET %s: %s, retrying", template, type(exc).__name__)
                time.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _send_once(
        self,
        method: str,
        template: str,
        *,
        parse: Callable[[Any], T] | None,
        path: Mapping[str, str] | None = None,
        body: dict | None = None,
        headers: Mapping[str, str] | None = None,
        earnings: bool = False,
    ) -> T:
        """A non-GET: sent at most once, since repeating it could create or pay twice."""
        url = self._url(template, path=path, earnings=earnings)  # before spending budget
        self._acquire(time.monotonic() + self._wait_limit())
        response = self._transmit(method, url, template=template, body=body, headers=headers)
        fields = tuple(body) if body else ()
        try:
            return self._read(response, template=template, parse=parse, fields=fields)
        except MalformedResponse as exc:
            # DCDN accepted it (2xx) but we cannot tell what it did.
            raise OutcomeUnknown(
                "DCDN accepted the request but its answer could not be read; "
                "check the result before trying again.",
                status=response.status_code,
            ) from exc

    def _retry_delay(self, exc: DcdnError, *, attempt: int) -> float:
        if isinstance(exc, RateLimited):
            return exc.retry_after
        base = float(getattr(settings, "DCDN_RETRY_BACKOFF_SECONDS", 0.5))
        # Exponential, with jitter so that many callers failing together spread out.
        return base * (2 ** (attempt - 1)) * random.uniform(0.5, 1.5)

    def _wait_limit(self) -> float:
        if self._max_wait is not None:
            return max(0.0, float(self._max_wait))
        return max(0.0, float(settings.DCDN_BUDGET_MAX_WAIT))

    def _budget_backend(self) -> RequestBudget:
        return self._budget if self._budget is not None else get_budget()

    def _acquire(self, deadline: float) -> None:
        remaining = max(0.0, deadline - time.monotonic())
        self._budget_backend().acquire(self._budget_key, max_wait=remaining)

    def _url(self, template: str, *, path: Mapping[str, str] | None, earnings: bool) -> str:
        if earnings:
            base = self._earnings_url or settings.DCDN_EARNINGS_URL or settings.DCDN_API_URL
        else:
            base = self._api_url or settings.DCDN_API_URL
        return base.rstrip("/") + template.format(**_path_values(path))

    def _transmit(
        self,
        method: str,
        url: str,
        *,
        template: str,
        body: dict | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send one request; translate transport failures by whether it may have arrived."""
        all_headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
            **(headers or {}),
        }
        data = None
        if body is not None:
            all_headers["Content-Type"] = "application/json"
            data = encode_json(body)
        try:
            return _session().request(
                method,
                url,
                data=data,
                headers=all_headers,
                timeout=(float(settings.DCDN_CONNECT_TIMEOUT), float(settings.DCDN_READ_TIMEOUT)),
                allow_redirects=False,
            )
        except requests.ConnectionError as exc:
            logger.debug("DCDN %s %s: %s", method, template, type(exc).__name__)
            if _never_left(exc):
                raise Unavailable("Could not connect to DCDN.") from None
            raise self._lost(method, "DCDN dropped the connection before answering.") from None
        except requests.Timeout:
            logger.debug("DCDN %s %s: read timeout", method, template)
            raise self._lost(method, "DCDN did not answer in time.") from None
        except requests.RequestException as exc:
            logger.debug("DCDN %s %s: %s", method, template, type(exc).__name__)
            raise self._lost(method, "The request to DCDN failed.") from None

    @staticmethod
    def _lost(method: str, message: str) -> Unavailable:
        """The request may have reached DCDN: harmless for a GET, unknown for the rest."""
        if method == "GET":
            return Unavailable(message)
        return OutcomeUnknown(f"{message} It may or may not have taken effect.")

    def _read(
        self,
        response: requests.Response,
        *,
        template: str,
        parse: Callable[[Any], T] | None,
        fields: Iterable[str],
    ) -> T:
        status = response.status_code
        logger.debug("DCDN %s %s -> %s", response.request.method, template, status)
        if not 200 <= status < 300:
            raise self._failure(response, fields=fields)
        if parse is None:
            return None  # type: ignore[return-value]
        data = _decode_json(response.content)
        try:
            return parse(data)
        except MalformedResponse:
            raise
        except _PARSE_ERRORS as exc:
            raise MalformedResponse("DCDN answered in an unexpected shape.") from exc

    def _failure(self, response: requests.Response, *, fields: Iterable[str]) -> DcdnError:
        error = error_from_response(
            response.status_code,
            response.content.decode("utf-8", errors="replace"),
            response.headers,
            fields=fields,
        )
        if isinstance(error, Unauthorized):
            self._notify_unauthorized()
        elif isinstance(error, RateLimited):
            # Every process holds off this account until DCDN is ready again.
            self._budget_backend().penalize(self._budget_key, error.retry_after)
        return error

    def _notify_unauthorized(self) -> None:
        if self._on_unauthorized is None:
            return
        try:
            self._on_unauthorized()
        except Exception:
            # The caller still gets Unauthorized; a failing hook must not mask it.
            logger.exception("DCDN on_unauthorized hook failed")
