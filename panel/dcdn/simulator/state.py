"""Everything the simulator knows and every rule of the DCDN API contract, in one place.

The HTTP layer (``server.py``) only routes requests here and encodes the replies; it
restates no rule. All mutation happens under one lock; nothing in here sleeps, so the
server can add latency and hangs outside the lock and stay concurrent.

Statuses and payouts move on lazily: each read compares ``time.monotonic()`` with the
moment the current status began, so no background thread is needed.

Money is ``Decimal`` throughout (at most 8 decimal places); the server writes Decimals
as JSON numbers, never through floats.
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import math
import os
import random
import re
import string
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from . import catalog

DEMO_TOKEN = "demo-token"
DEMO_CREDITS = Decimal(100)
DEMO_NODES = ("node-eu-central-1", "node-sa-east-2")

CURRENCY = "DCDN"
OPERATOR_SHARE = Decimal("0.7")
MINIMUM_PAYOUT = Decimal(10)
AMOUNT_QUANTUM = Decimal("0.00000001")  # 8 decimal places
HISTORY_DAYS = 30

NAME_PATTERN = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
SSH_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
    }
)
CPU_TYPES = frozenset({"shared", "dedicated"})
EVM_WALLET = re.compile(r"0x[0-9a-fA-F]{40}")
BASE58_WALLET = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")

# status -> (timing attribute, status it settles into); "gone" means removed.
TRANSITIONS: dict[str, tuple[str, str]] = {
    "creating": ("create_seconds", "running"),
    "stopping": ("transition_seconds", "stopped"),
    "starting": ("transition_seconds", "running"),
    "restarting": ("transition_seconds", "running"),
    "destroying": ("destroy_seconds", "gone"),
}
# action -> (statuses it applies to, status it moves into)
ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({"stopped"}), "starting"),
    "stop": (frozenset({"running"}), "stopping"),
    "restart": (frozenset({"running"}), "restarting"),
}
# The contract puts no status rule on a password reset; only a vanishing instance refuses.
PASSWORD_RESET_STATUSES = frozenset(
    {"creating", "running", "stopping", "stopped", "starting", "restarting"}
)
CPU_BUSY_STATUSES = frozenset({"running", "restarting", "stopping"})
MUTATING_METHODS = frozenset({"POST", "DELETE", "PUT", "PATCH"})
MISSING_TOKEN_LABEL = "<none>"

TOKEN_INFO = {
    "symbol": "DCDN",
    "name": "DCDN Token",
    "price_usd": Decimal("0.0425"),
    "total_supply": 1_000_000_000,
    "circulating_supply": 312_500_000,
    "distribution": {
        "node_operators": Decimal("0.70"),
        "platform": Decimal("0.25"),
        "treasury": Decimal("0.05"),
    },
}


# --------------------------------------------------------------------------------------
# Values passed between the HTTP layer and the state
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """An answer: HTTP status, a JSON-able payload (``None`` for no body) and headers."""

    status: int
    payload: Any = None
    headers: tuple[tuple[str, str], ...] = ()


class ApiError(Exception):
    """A refusal, answered as ``{"error", "message"}`` plus ``field`` when one field is at fault."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers

    def reply(self) -> Reply:
        payload = {"error": self.code, "message": self.message}
        if self.field is not None:
            payload["field"] = self.field
        return Reply(self.status, payload, self.headers)


def bad_request(message: str, *, field: str | None = None, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message, field=field)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(message: str, *, field: str | None = None, code: str = "conflict") -> ApiError:
    return ApiError(409, code, message, field=field)


@dataclass(frozen=True)
class ApiRequest:
    """One API call as the state sees it; ``endpoint`` is the templated route name."""

    method: str
    endpoint: str
    token: str | None
    params: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Ticket:
    """What the fault settings decided for one API call, on arrival."""

    latency_seconds: float
    fault: Reply | None
    malformed: bool
    hang_seconds: float


@dataclass(frozen=True)
class Config:
    create_seconds: float = 0.2
    destroy_seconds: float = 0.2
    transition_seconds: float = 0.2
    rate_limit: int = 60
    rate_window_seconds: float = 60.0
    payout_seconds: float = 60.0
    seed: int = 0
    latency_ms: float = 0
    error_rate: float = 0.0
    malformed_rate: float = 0.0
    state_file: str | None = None


@dataclass
class Faults:
    latency_ms: float = 0
    error_rate: float = 0.0
    malformed_rate: float = 0.0
    down: bool = False
    hang_after_commit_ms: float = 0
    # None: every mutating request hangs while hang_after_commit_ms is set.
    hang_after_commit_count: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "malformed_rate": self.malformed_rate,
            "down": self.down,
            "hang_after_commit_ms": self.hang_after_commit_ms,
            "hang_after_commit_count": self.hang_after_commit_count,
        }


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------


@dataclass
class Instance:
    id: str
    owner: str
    name: str
    plan: str
    image: str
    region: str
    cpu_type: str
    redundant: bool
    nodes: list[str]
    ip_address: str
    ssh_port: int
    created_at: str
    root_password: str
    ssh_keys: list[str]
    status: str
    status_since: float  # time.monotonic() when the current status began


@dataclass
class Payout:
    payout_id: str
    amount: Decimal
    requested_at: str
    due: float  # time.monotonic() when it becomes paid
    status: str = "pending"


@dataclass
class Node:
    node_id: str
    region: str
    status: str
    earned_before: Decimal  # earned before the 30-day window
    daily: list[dict[str, Any]]

    @property
    def earned_30d(self) -> Decimal:
        return sum((day["amount"] for day in self.daily), Decimal(0))

    @property
    def total_earned(self) -> Decimal:
        return self.earned_before + self.earned_30d

    @property
    def uptime_30d_percent(self) -> Decimal:
        total = sum((day["uptime_percent"] for day in self.daily), Decimal(0))
        return (total / len(self.daily)).quantize(Decimal("0.01"))


@dataclass
class Account:
    token: str
    credits: Decimal
    nodes: dict[str, Node]
    payouts: list[Payout] = field(default_factory=list)
    # Idempotency-Key -> the first reply given under it
    idempotent_replies: dict[str, Reply] = field(default_factory=dict)

    @property
    def total_earned(self) -> Decimal:
        return sum((node.total_earned for node in self.nodes.values()), Decimal(0))

    def payouts_total(self, status: str) -> Decimal:
        return sum((p.amount for p in self.payouts if p.status == status), Decimal(0))

    @property
    def available(self) -> Decimal:
        return self.total_earned - self.payouts_total("pending") - self.payouts_total("paid")


# --------------------------------------------------------------------------------------
# Deterministic generators
# --------------------------------------------------------------------------------------


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def random_amount(rng: random.Random, low: int, high: int) -> Decimal:
    """A uniformly drawn amount in [low, high] with exactly 8 decimal places."""
    return Decimal(rng.randint(low * 10**8, high * 10**8)).scaleb(-8)


def region_of_node(node_id: str, rng: random.Random) -> str:
    """``node-eu-central-1`` -> ``eu-central``; ids that name no region get a seeded one."""
    match = re.fullmatch(r"node-(.+)-\d+", node_id)
    if match and match.group(1) in catalog.REGION_NODE_COUNTS:
        return match.group(1)
    return rng.choice(sorted(catalog.REGION_NODE_COUNTS))


def daily_uptime(rng: random.Random, *, offline_tail: bool) -> Decimal:
    if offline_tail:
        return Decimal(rng.randint(0, 4000)).scaleb(-2)
    if rng.random() < 0.08:  # an occasional bad day
        return Decimal(rng.randint(7000, 9700)).scaleb(-2)
    return Decimal(rng.randint(9750, 10000)).scaleb(-2)


def scaled(amount: Decimal, uptime: Decimal) -> Decimal:
    return (amount * uptime / 100).quantize(AMOUNT_QUANTUM, rounding=ROUND_DOWN)


def generate_node(seed: int, node_id: str, today: date) -> Node:
    """A node with 30 days of history, fully determined by the seed and the node id."""
    rng = random.Random(f"{seed}:node:{node_id}")
    region = region_of_node(node_id, rng)
    runs_gpu = rng.random() < 0.4
    offline = rng.random() < 0.15
    vps_rate = random_amount(rng, 1, 4)
    cdn_rate = random_amount(rng, 0, 2)
    gpu_rate = random_amount(rng, 2, 6) if runs_gpu else Decimal(0)
    daily = []
    for days_ago in range(HISTORY_DAYS, 0, -1):
        uptime = daily_uptime(rng, offline_tail=offline and days_ago <= 2)
        services = {
            "vps": scaled(vps_rate, uptime),
            "cdn": scaled(cdn_rate * random_amount(rng, 0, 2), uptime),
            "gpu": scaled(gpu_rate, uptime),
        }
        daily.append(
            {
                "date": (today - timedelta(days=days_ago)).isoformat(),
                "amount": services["vps"] + services["cdn"] + services["gpu"],
                "uptime_percent": uptime,
                "services": services,
            }
        )
    return Node(
        node_id=node_id,
        region=region,
        status="offline" if offline else "online",
        earned_before=random_amount(rng, 50, 400),
        daily=daily,
    )


def seeded_payout_history(seed: int, token: str, nodes: list[Node], today: date) -> list[Payout]:
    """Two paid payouts covering part of what was earned before the 30-day window."""
    if not nodes:
        return []
    rng = random.Random(f"{seed}:payouts:{token}")
    earlier = sum((node.earned_before for node in nodes), Decimal(0))
    paid = (earlier * Decimal(rng.randint(40, 70)) / 100).quantize(Decimal("0.01"), ROUND_DOWN)
    first = (paid * Decimal(rng.randint(30, 60)) / 100).quantize(Decimal("0.01"), ROUND_DOWN)
    history = []
    for amount, days_ago in ((first, 75), (paid - first, 45)):
        when = datetime.combine(today - timedelta(days=days_ago), datetime.min.time(), UTC)
        history.append(
            Payout(
                payout_id=f"po_{rng.getrandbits(64):016x}",
                amount=amount,
                requested_at=when.isoformat().replace("+00:00", "Z"),
                due=0.0,
                status="paid",
            )
        )
    return history


def usage_for(instance: Instance, plan: dict[str, Any], seed: int) -> dict[str, Any]:
    """Plausible resource usage, fixed per instance; no CPU or RAM unless it is up."""
    rng = random.Random(f"{seed}:usage:{instance.id}")
    busy = instance.status in CPU_BUSY_STATUSES
    cpu = Decimal(rng.randint(20, 650)).scaleb(-1) if busy else Decimal("0.0")
    ram = int(plan["ram_mb"] * rng.uniform(0.25, 0.8)) if busy else 0
    disk = (Decimal(plan["disk_gb"]) * Decimal(rng.randint(8, 45)) / 100).quantize(Decimal("0.01"))
    bandwidth = Decimal(rng.randint(0, 50_000)).scaleb(-2)
    return {
        "cpu_percent": cpu,
        "ram_used_mb": ram,
        "disk_used_gb": disk,
        "bandwidth_used_gb": bandwidth,
    }


# --------------------------------------------------------------------------------------
# Request-body validation
# --------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def decode_json_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, numbers as exact Decimals; else 400."""
    try:
        value = json.loads(
            body.decode("utf-8") or "null",
            parse_float=Decimal,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad_request(f"Request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(value, dict):
        raise bad_request("Request body must be a JSON object.", code="invalid_json")
    return value


def required_string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        raise bad_request(f"'{key}' is required.", field=key)
    if not isinstance(value, str):
        raise bad_request(f"'{key}' must be a string.", field=key)
    return value


def optional_value(body: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    """An optional field; absent means the default, any other type (null too) is a 400."""
    if key not in body:
        return default
    value = body[key]
    if not isinstance(value, kind):
        raise bad_request(f"'{key}' must be a {kind.__name__}.", field=key)
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def validate_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise bad_request(
            "Name must be 1-63 lowercase letters, digits or '-', "
            "and may not start or end with '-'.",
            field="name",
        )


def validate_ssh_key(key: Any, *, field_name: str) -> str:
    """``<type> <base64> [comment]`` on one line, type among the accepted ones."""
    if not isinstance(key, str):
        raise bad_request("An SSH key must be a string.", field=field_name)
    stripped = key.strip()
    parts = stripped.split()
    if "\n" in stripped or "\r" in stripped or len(parts) < 2 or parts[0] not in SSH_KEY_TYPES:
        raise bad_request(
            "SSH key must be one line: ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp256/384/521 "
            "followed by the base64 key.",
            field=field_name,
        )
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request("SSH key data is not valid base64.", field=field_name) from exc
    if not blob:
        raise bad_request("SSH key data is empty.", field=field_name)
    return stripped


def validate_wallet(wallet: Any) -> str:
    if not isinstance(wallet, str):
        raise bad_request("'wallet_address' must be a string.", field="wallet_address")
    if not (EVM_WALLET.fullmatch(wallet) or BASE58_WALLET.fullmatch(wallet)):
        raise bad_request(
            "Wallet address is malformed: expected 0x and 40 hex digits, "
            "or a base58 address of 32-44 characters.",
            field="wallet_address",
        )
    return wallet


def validate_payout_amount(amount: Any, available: Decimal) -> Decimal:
    if not is_number(amount):
        raise bad_request("'amount' must be a number.", field="amount")
    amount = Decimal(amount)
    if not amount.is_finite() or amount <= 0:
        raise bad_request("Amount must be greater than zero.", field="amount")
    if decimal_places(amount) > 8:
        raise bad_request("Amount may have at most 8 decimal places.", field="amount")
    # 10.0000000000 is 10: keep amounts at 8 places so answers never carry more.
    amount = amount.quantize(AMOUNT_QUANTUM)
    if amount < MINIMUM_PAYOUT:
        raise bad_request(f"The minimum payout is {MINIMUM_PAYOUT} {CURRENCY}.", field="amount")
    if amount > available:
        raise bad_request(
            f"Amount exceeds the available balance of {available} {CURRENCY}.", field="amount"
        )
    return amount


def decimal_places(value: Decimal) -> int:
    """Places after the point, not counting trailing zeros (``10.50`` has 1)."""
    _sign, digits, exponent = value.as_tuple()
    places = max(0, -exponent)
    coefficient = list(digits)
    while places and coefficient and coefficient[-1] == 0:
        coefficient.pop()
        places -= 1
    return places


def fraction(body: dict[str, Any], key: str, current: float) -> float:
    value = body.get(key, current)
    if not is_number(value) or not 0 <= value <= 1:
        raise bad_request(f"'{key}' must be a number between 0 and 1.", field=key)
    return float(value)


def non_negative(body: dict[str, Any], key: str, current: float) -> float:
    value = body.get(key, current)
    if not is_number(value) or value < 0:
        raise bad_request(f"'{key}' must be a number of at least 0.", field=key)
    return float(value)


# --------------------------------------------------------------------------------------
# The state
# --------------------------------------------------------------------------------------


class SimulatorState:
    """Accounts, instances, payouts, faults, rate windows and call counts, behind one lock."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.lock = threading.RLock()
        self._seed_everything()
        self._load_state_file()

    # ---- seeding and reset ----------------------------------------------------------

    def _seed_everything(self) -> None:
        self.ids = random.Random(f"{self.config.seed}:ids")
        self.fault_dice = random.Random(f"{self.config.seed}:faults")
        # Root passwords too come from the seed, so runs with one seed answer alike.
        self.passwords = random.Random(f"{self.config.seed}:passwords")
        self.today = datetime.now(UTC).date()
        self.accounts: dict[str, Account] = {}
        self.instances: dict[str, Instance] = {}
        self.faults = Faults(
            latency_ms=self.config.latency_ms,
            error_rate=self.config.error_rate,
            malformed_rate=self.config.malformed_rate,
        )
        self.rate_windows: dict[str, collections.deque[float]] = {}
        self._reset_call_counts()
        self._add_account(DEMO_TOKEN, DEMO_CREDITS, list(DEMO_NODES))

    def _reset_call_counts(self) -> None:
        self.calls_total = 0
        self.calls_rate_limited = 0
        self.calls_by_token: dict[str, dict[str, Any]] = {}

    def _add_account(self, token: str, credits: Decimal, node_ids: list[str]) -> Account:
        nodes = [generate_node(self.config.seed, node_id, self.today) for node_id in node_ids]
        account = Account(
            token=token,
            credits=credits,
            nodes={node.node_id: node for node in nodes},
            payouts=seeded_payout_history(self.config.seed, token, nodes, self.today),
        )
        self.accounts[token] = account
        return account

    def reset(self) -> None:
        """Back to the seeded state: accounts, instances, faults, counters, rate windows."""
        with self.lock:
            self._seed_everything()
            self._save_state_file()

    # ---- arrival: call counting and faults -----------------------------------------

    def receive(self, method: str, endpoint: str, token: str | None) -> Ticket:
        """Count an API call and decide, from the fault settings, how it will be answered."""
        with self.lock:
            self._count_call(endpoint, token)
            faults = self.faults
            fault = None
            if faults.down:
                fault = ApiError(503, "unavailable", "DCDN is temporarily unavailable.").reply()
            elif faults.error_rate and self.fault_dice.random() < faults.error_rate:
                fault = ApiError(500, "internal_error", "Internal server error.").reply()
            malformed = bool(
                fault is None
                and faults.malformed_rate
                and self.fault_dice.random() < faults.malformed_rate
            )
            hang = 0.0 if fault is not None else self._take_hang(method)
            return Ticket(faults.latency_ms / 1000, fault, malformed, hang)

    def _count_call(self, endpoint: str, token: str | None) -> None:
        self.calls_total += 1
        entry = self.calls_by_token.setdefault(
            token if token is not None else MISSING_TOKEN_LABEL,
            {"total": 0, "rate_limited": 0, "endpoints": {}},
        )
        entry["total"] += 1
        entry["endpoints"][endpoint] = entry["endpoints"].get(endpoint, 0) + 1

    def _take_hang(self, method: str) -> float:
        faults = self.faults
        if method not in MUTATING_METHODS or not faults.hang_after_commit_ms:
            return 0.0
        if faults.hang_after_commit_count is not None:
            if faults.hang_after_commit_count <= 0:
                return 0.0
            faults.hang_after_commit_count -= 1
        return faults.hang_after_commit_ms / 1000

    # ---- admission: auth and rate limit ---------------------------------------------

    def serve(
        self, request: ApiRequest, handler: Callable[[ApiRequest], Reply], *, admit: bool = True
    ) -> Reply:
        """Authenticate, apply the rate limit, run the handler; refusals become replies.

        ``admit=False`` skips authentication and the rate limit (for a path with no endpoint).
        """
        try:
            if admit:
                self._admit(request)
            return handler(request)
        except ApiError as error:
            return error.reply()

    def _admit(self, request: ApiRequest) -> None:
        with self.lock:
            if request.token is None:
                raise ApiError(401, "unauthorized", "Missing bearer token.")
            if request.token not in self.accounts:
                raise ApiError(401, "unauthorized", "Invalid token.")
            retry_after = self._take_rate_slot(request.token)
            if retry_after is not None:
                self.calls_rate_limited += 1
                self.calls_by_token[request.token]["rate_limited"] += 1
                raise ApiError(
                    429,
                    "rate_limited",
                    f"Rate limit of {self.config.rate_limit} requests per "
                    f"{self.config.rate_window_seconds:g} seconds exceeded.",
                    headers=(("Retry-After", str(retry_after)),),
                )

    def _take_rate_slot(self, token: str) -> int | None:
        """Record an accepted request; when the window is full, the whole seconds to wait."""
        now = self.clock()
        window = self.rate_windows.setdefault(token, collections.deque())
        while window and window[0] <= now - self.config.rate_window_seconds:
            window.popleft()
        if len(window) >= self.config.rate_limit:
            wait = window[0] + self.config.rate_window_seconds - now
            return max(1, math.ceil(wait))
        window.append(now)
        return None

    # ---- catalog ------------------------------------------------------------------------

    def list_plans(self, request: ApiRequest) -> Reply:
        return Reply(200, {"plans": [dict(plan) for plan in catalog.PLANS]})

    def list_images(self, request: ApiRequest) -> Reply:
        return Reply(200, {"images": [dict(image) for image in catalog.IMAGES]})

    def list_regions(self, request: ApiRequest) -> Reply:
        regions = [{"id": r, "nodes": n} for r, n in catalog.REGION_NODE_COUNTS.items()]
        return Reply(200, {"regions": regions})

    def list_templates(self, request: ApiRequest) -> Reply:
        return Reply(200, {"templates": [dict(t) for t in catalog.TEMPLATES]})

    # ---- instances: status machine ----------------------------------------------------

    def _settle(self, instance: Instance, now: float) -> None:
        """Advance a transitional status whose time is up; a finished destroy removes it."""
        while instance.status in TRANSITIONS:
            timing, target = TRANSITIONS[instance.status]
            ends = instance.status_since + getattr(self.config, timing)
            if now < ends:
                return
            if target == "gone":
                del self.instances[instance.id]
                return
            instance.status, instance.status_since = target, ends

    def _visible_instances(self, token: str) -> list[Instance]:
        now = self.clock()
        for instance in [i for i in self.instances.values() if i.owner == token]:
            self._settle(instance, now)
        return [i for i in self.instances.values() if i.owner == token]

    def _own_instance(self, request: ApiRequest) -> Instance:
        """The caller's instance, settled; someone else's is as missing as a missing one."""
        instance = self.instances.get(request.params["id"])
        if instance is None or instance.owner != request.token:
            raise not_found("Instance not found.")
        self._settle(instance, self.clock())
        if instance.id not in self.instances:
            raise not_found("Instance not found.")
        return instance

    def _move(self, instance: Instance, status: str) -> None:
        instance.status, instance.status_since = status, self.clock()

    def _instance_payload(self, instance: Instance, *, with_usage: bool = False) -> dict:
        plan = catalog.PLANS_BY_ID[instance.plan]
        payload = {
            "id": instance.id,
            "name": instance.name,
            "status": instance.status,
            "plan": instance.plan,
            "image": instance.image,
            "region": instance.region,
            "cpu_type": instance.cpu_type,
            "redundant": instance.redundant,
            "node": instance.nodes[0],
            "ip_address": instance.ip_address,
            "ssh_port": instance.ssh_port,
            "ssh_command": f"ssh root@{instance.ip_address} -p {instance.ssh_port}",
            "hostname": f"{instance.name}.compute.dcdncloud.com",
            "monthly_cost_usd": monthly_cost(plan, instance.redundant),
            "created_at": instance.created_at,
        }
        if instance.redundant:
            payload["nodes"] = list(instance.nodes)
        if with_usage:
            payload["usage"] = usage_for(instance, plan, self.config.seed)
        return payload

    # ---- instances: endpoints -----------------------------------------------------------

    def list_instances(self, request: ApiRequest) -> Reply:
        with self.lock:
            instances = self._visible_instances(request.token)
            return Reply(200, {"instances": [self._instance_payload(i) for i in instances]})

    def get_instance(self, request: ApiRequest) -> Reply:
        with self.lock:
            return Reply(200, self._instance_payload(self._own_instance(request), with_usage=True))

    def create_instance(self, request: ApiRequest) -> Reply:
        body = decode_json_object(request.body)
        order = validate_instance_order(body)
        plan = catalog.PLANS_BY_ID[order["plan"]]
        with self.lock:
            taken = {i.name for i in self._visible_instances(request.token)}
            if order["name"] in taken:
                raise conflict(
                    f"An instance named '{order['name']}' already exists.",
                    field="name",
                    code="name_in_use",
                )
            cost = monthly_cost(plan, order["redundant"])
            credits = self.accounts[request.token].credits
            if credits < cost:
                raise ApiError(
                    402,
                    "insufficient_credits",
                    f"Insufficient credits: {cost} needed, {credits} available.",
                )
            instance = self._new_instance(request.token, order)
            self.instances[instance.id] = instance
            payload = self._instance_payload(instance)
            self._save_state_file()
        payload["root_password"] = instance.root_password
        seconds = max(1, math.ceil(self.config.create_seconds))
        payload["message"] = (
            "Instance is being created. SSH will be available in "
            f"~{seconds} second{'' if seconds == 1 else 's'}."
        )
        return Reply(201, payload)

    def _new_instance(self, token: str, order: dict[str, Any]) -> Instance:
        region_nodes = catalog.region_node_ids(order["region"])
        nodes = self.ids.sample(region_nodes, 2 if order["redundant"] else 1)
        return Instance(
            id=str(uuid.UUID(int=self.ids.getrandbits(128), version=4)),
            owner=token,
            name=order["name"],
            plan=order["plan"],
            image=order["image"],
            region=order["region"],
            cpu_type=order["cpu_type"],
            redundant=order["redundant"],
            nodes=nodes,
            ip_address=self._new_ip_address(),
            ssh_port=self.ids.randint(22001, 22999),
            created_at=utc_now_iso(),
            root_password=new_password(self.passwords),
            ssh_keys=list(order["ssh_keys"]),
            status="creating",
            status_since=self.clock(),
        )

    def _new_ip_address(self) -> str:
        first = self.ids.choice((31, 45, 62, 77, 91, 103, 154, 185, 193))
        return ".".join(str(n) for n in (first, *(self.ids.randint(1, 254) for _ in range(3))))

    def instance_action(self, action: str) -> Callable[[ApiRequest], Reply]:
        """The handler for start, stop or restart."""

        def handle(request: ApiRequest) -> Reply:
            allowed_from, moves_to = ACTIONS[action]
            with self.lock:
                instance = self._own_instance(request)
                require_status(instance, allowed_from, action)
                self._move(instance, moves_to)
                self._save_state_file()
                return Reply(200, self._instance_payload(instance))

        return handle

    def reset_password(self, request: ApiRequest) -> Reply:
        with self.lock:
            instance = self._own_instance(request)
            require_status(instance, PASSWORD_RESET_STATUSES, "reset the password")
            instance.root_password = new_password(self.passwords)
            self._save_state_file()
            return Reply(200, {"root_password": instance.root_password})

    def add_ssh_key(self, request: ApiRequest) -> Reply:
        with self.lock:
            # Someone else's or a missing instance is a 404 whatever the body says.
            instance = self._own_instance(request)
            body = decode_json_object(request.body)
            if body.get("public_key") is None:
                raise bad_request("'public_key' is required.", field="public_key")
            key = validate_ssh_key(body["public_key"], field_name="public_key")
            if instance.status == "destroying":
                raise conflict("Instance is destroying; cannot add an SSH key.")
            instance.ssh_keys.append(key)
            self._save_state_file()
        return Reply(200, {"status": "ok", "message": "SSH key added to the instance."})

    def destroy_instance(self, request: ApiRequest) -> Reply:
        with self.lock:
            instance = self._own_instance(request)
            if instance.status == "destroying":
                raise conflict("Instance is destroying; cannot destroy.")
            self._move(instance, "destroying")
            self._save_state_file()
        return Reply(
            200, {"status": "destroyed", "message": "Instance has been permanently destroyed"}
        )

    # ---- earnings -----------------------------------------------------------------------

    def _settle_payouts(self, account: Account) -> None:
        now = self.clock()
        for payout in account.payouts:
            if payout.status == "pending" and now >= payout.due:
                payout.status = "paid"

    def _account(self, request: ApiRequest) -> Account:
        account = self.accounts[request.token]
        self._settle_payouts(account)
        return account

    def earnings_summary(self, request: ApiRequest) -> Reply:
        with self.lock:
            account = self._account(request)
            nodes = [
                {
                    "node_id": node.node_id,
                    "region": node.region,
                    "status": node.status,
                    "earned_30d": node.earned_30d,
                    "uptime_30d_percent": node.uptime_30d_percent,
                }
                for node in account.nodes.values()
            ]
            return Reply(
                200,
                {
                    "currency": CURRENCY,
                    "total_earned": account.total_earned,
                    "available": account.available,
                    "pending": account.payouts_total("pending"),
                    "paid_out": account.payouts_total("paid"),
                    "operator_share": OPERATOR_SHARE,
                    "nodes": nodes,
                },
            )

    def node_earnings(self, request: ApiRequest) -> Reply:
        with self.lock:
            node = self.accounts[request.token].nodes.get(request.params["node_id"])
            if node is None:
                raise not_found("Node not found.")
            return Reply(
                200,
                {
                    "node_id": node.node_id,
                    "region": node.region,
                    "status": node.status,
                    "currency": CURRENCY,
                    "total_earned": node.total_earned,
                    "daily": [{**day, "services": dict(day["services"])} for day in node.daily],
                },
            )

    def request_payout(self, request: ApiRequest) -> Reply:
        with self.lock:
            account = self._account(request)
            key = request.idempotency_key
            if key is not None and key in account.idempotent_replies:
                return account.idempotent_replies[key]
            try:
                reply = self._payout(account, request)
            except ApiError as error:
                reply = error.reply()
            if key is not None:
                account.idempotent_replies[key] = reply
                self._save_state_file()
            return reply

    def _payout(self, account: Account, request: ApiRequest) -> Reply:
        body = decode_json_object(request.body)
        if "amount" not in body:
            raise bad_request("'amount' is required.", field="amount")
        if "wallet_address" not in body:
            raise bad_request("'wallet_address' is required.", field="wallet_address")
        validate_wallet(body["wallet_address"])
        amount = validate_payout_amount(body["amount"], account.available)
        payout = Payout(
            payout_id=f"po_{self.ids.getrandbits(64):016x}",
            amount=amount,
            requested_at=utc_now_iso(),
            due=self.clock() + self.config.payout_seconds,
        )
        account.payouts.append(payout)
        self._save_state_file()
        return Reply(201, payout_payload(payout))

    def token_info(self, request: ApiRequest) -> Reply:
        return Reply(200, {**TOKEN_INFO, "distribution": dict(TOKEN_INFO["distribution"])})

    # ---- control endpoints (/_sim/) -------------------------------------------------

    def sim_add_account(self, body_bytes: bytes) -> Reply:
        body = decode_json_object(body_bytes)
        token = body.get("token")
        if not isinstance(token, str) or not token or token != token.strip() or " " in token:
            raise bad_request("'token' must be a non-empty string without spaces.", field="token")
        credits = body.get("credits", 0)
        if not is_number(credits) or credits < 0:
            raise bad_request("'credits' must be a number of at least 0.", field="credits")
        nodes = body.get("nodes", [])
        if (
            not isinstance(nodes, list)
            or not all(isinstance(n, str) and n for n in nodes)
            or len(set(nodes)) != len(nodes)
        ):
            raise bad_request("'nodes' must be a list of distinct node ids.", field="nodes")
        with self.lock:
            if token in self.accounts:
                raise conflict("An account with this token already exists.", field="token")
            account = self._add_account(token, Decimal(credits), nodes)
            self._save_state_file()
            return Reply(201, self._account_payload(account))

    def sim_reset(self) -> Reply:
        self.reset()
        return Reply(204)

    def sim_set_faults(self, body_bytes: bytes) -> Reply:
        body = decode_json_object(body_bytes)
        with self.lock:
            current = self.faults
            down = body.get("down", current.down)
            if not isinstance(down, bool):
                raise bad_request("'down' must be a boolean.", field="down")
            count = self._hang_count(body, current)
            self.faults = Faults(
                latency_ms=non_negative(body, "latency_ms", current.latency_ms),
                error_rate=fraction(body, "error_rate", current.error_rate),
                malformed_rate=fraction(body, "malformed_rate", current.malformed_rate),
                down=down,
                hang_after_commit_ms=non_negative(
                    body, "hang_after_commit_ms", current.hang_after_commit_ms
                ),
                hang_after_commit_count=count,
            )
        return Reply(204)

    @staticmethod
    def _hang_count(body: dict[str, Any], current: Faults) -> int | None:
        """A new hang duration without a count hangs every mutating request until changed."""
        if "hang_after_commit_count" not in body:
            if "hang_after_commit_ms" in body:
                return None
            return current.hang_after_commit_count
        count = body["hang_after_commit_count"]
        whole = isinstance(count, int) and not isinstance(count, bool)
        if count is not None and (not whole or count < 0):
            raise bad_request(
                "'hang_after_commit_count' must be a whole number of at least 0, or null.",
                field="hang_after_commit_count",
            )
        return count

    def sim_faults(self) -> Reply:
        with self.lock:
            return Reply(200, self.faults.as_dict())

    def sim_calls(self) -> Reply:
        with self.lock:
            return Reply(
                200,
                {
                    "total": self.calls_total,
                    "rate_limited": self.calls_rate_limited,
                    "by_token": json.loads(json.dumps(self.calls_by_token)),
                },
            )

    def sim_reset_calls(self) -> Reply:
        with self.lock:
            self._reset_call_counts()
        return Reply(204)

    def sim_account_state(self, token: str | None) -> Reply:
        if not token:
            raise bad_request("Query parameter 'token' is required.", field="token")
        with self.lock:
            account = self.accounts.get(token)
            if account is None:
                raise not_found("No account with this token.")
            self._settle_payouts(account)
            return Reply(200, self._account_payload(account))

    def _account_payload(self, account: Account) -> dict[str, Any]:
        instances = self._visible_instances(account.token)
        return {
            "token": account.token,
            "credits": account.credits,
            "instances": len(instances),
            "instance_statuses": {i.id: i.status for i in instances},
            "nodes": list(account.nodes),
            "total_earned": account.total_earned,
            "available": account.available,
            "pending": account.payouts_total("pending"),
            "paid_out": account.payouts_total("paid"),
            "payouts": [payout_payload(p) for p in account.payouts],
        }

    # ---- the optional state file --------------------------------------------------------

    def _save_state_file(self) -> None:
        """Write the whole state atomically; called under the lock after every mutation."""
        path = self.config.state_file
        if not path:
            return
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=directory, delete=False, suffix=".tmp", encoding="utf-8"
        ) as handle:
            json.dump(self._snapshot(), handle, default=str)
        os.replace(handle.name, path)

    def _load_state_file(self) -> None:
        path = self.config.state_file
        if not path or not os.path.exists(path):
            return
        with open(path, encoding="utf-8") as handle:
            self._restore(json.load(handle))

    def _snapshot(self) -> dict[str, Any]:
        """Monotonic instants are stored as wall-clock seconds so they survive a restart."""
        offset = time.time() - self.clock()
        return {
            "version": 1,
            "today": self.today.isoformat(),
            "ids_rng": self.ids.getstate(),
            "accounts": [account_record(a, offset) for a in self.accounts.values()],
            "instances": [instance_record(i, offset) for i in self.instances.values()],
        }

    def _restore(self, data: dict[str, Any]) -> None:
        offset = time.time() - self.clock()
        version, internal, gauss = data["ids_rng"]
        self.ids.setstate((version, tuple(internal), gauss))
        self.today = date.fromisoformat(data["today"])
        self.accounts = {a["token"]: account_from_record(a, offset) for a in data["accounts"]}
        self.instances = {i["id"]: instance_from_record(i, offset) for i in data["instances"]}


# --------------------------------------------------------------------------------------
# Small rules used above
# --------------------------------------------------------------------------------------


def monthly_cost(plan: dict[str, Any], redundant: bool) -> Decimal:
    return plan["price_usd"] * (2 if redundant else 1)


def new_password(rng: random.Random) -> str:
    # A fake server's fake password: seeded for determinism, shaped like the provider's.
    alphabet = string.ascii_letters + string.digits + "-_"
    return "".join(rng.choice(alphabet) for _ in range(22))


def require_status(instance: Instance, allowed: frozenset[str], action: str) -> None:
    if instance.status not in allowed:
        raise conflict(f"Instance is {instance.status}; cannot {action}.", code="invalid_state")


def payout_payload(payout: Payout) -> dict[str, Any]:
    return {
        "payout_id": payout.payout_id,
        "amount": payout.amount,
        "status": payout.status,
        "requested_at": payout.requested_at,
    }


def validate_instance_order(body: dict[str, Any]) -> dict[str, Any]:
    """Check a create request field by field; the first problem found is the 400."""
    name = required_string(body, "name")
    validate_name(name)
    plan_id = required_string(body, "plan")
    image = required_string(body, "image")
    region = required_string(body, "region")
    cpu_type = optional_value(body, "cpu_type", str, "shared")
    redundant = optional_value(body, "redundant", bool, False)
    ssh_keys = optional_value(body, "ssh_keys", list, [])
    plan = catalog.PLANS_BY_ID.get(plan_id)
    if plan is None:
        raise bad_request(f"Unknown plan '{plan_id}'.", field="plan", code="invalid_plan")
    if image not in catalog.IMAGE_IDS:
        raise bad_request(f"Unknown image '{image}'.", field="image", code="invalid_image")
    if region not in catalog.REGION_NODE_COUNTS:
        raise bad_request(f"Unknown region '{region}'.", field="region", code="invalid_region")
    if cpu_type not in CPU_TYPES:
        raise bad_request("cpu_type must be 'shared' or 'dedicated'.", field="cpu_type")
    if cpu_type != plan["cpu_type"]:
        raise bad_request(
            f"Plan '{plan_id}' is {plan['cpu_type']}; cpu_type '{cpu_type}' does not match.",
            field="cpu_type",
        )
    if redundant and catalog.REGION_NODE_COUNTS[region] < 2:
        raise bad_request(
            f"Region '{region}' has a single node; a redundant instance needs two.",
            field="redundant",
        )
    keys = [validate_ssh_key(key, field_name="ssh_keys") for key in ssh_keys]
    return {
        "name": name,
        "plan": plan_id,
        "image": image,
        "region": region,
        "cpu_type": cpu_type,
        "redundant": redundant,
        "ssh_keys": keys,
    }


def instance_record(instance: Instance, offset: float) -> dict[str, Any]:
    record = asdict(instance)
    record["status_since"] = instance.status_since + offset
    return record


def instance_from_record(record: dict[str, Any], offset: float) -> Instance:
    fields = dict(record)
    fields["status_since"] = float(record["status_since"]) - offset
    return Instance(**fields)


def account_record(account: Account, offset: float) -> dict[str, Any]:
    return {
        "token": account.token,
        "credits": str(account.credits),
        "nodes": [
            {
                "node_id": node.node_id,
                "region": node.region,
                "status": node.status,
                "earned_before": str(node.earned_before),
                "daily": node.daily,
            }
            for node in account.nodes.values()
        ],
        "payouts": [
            {**payout_payload(p), "amount": str(p.amount), "due": p.due + offset}
            for p in account.payouts
        ],
        "idempotent_replies": {
            key: {"status": reply.status, "payload": reply.payload}
            for key, reply in account.idempotent_replies.items()
        },
    }


def account_from_record(record: dict[str, Any], offset: float) -> Account:
    nodes = [
        Node(
            node_id=n["node_id"],
            region=n["region"],
            status=n["status"],
            earned_before=Decimal(n["earned_before"]),
            daily=[decimal_day(day) for day in n["daily"]],
        )
        for n in record["nodes"]
    ]
    return Account(
        token=record["token"],
        credits=Decimal(record["credits"]),
        nodes={node.node_id: node for node in nodes},
        payouts=[
            Payout(
                payout_id=p["payout_id"],
                amount=Decimal(p["amount"]),
                requested_at=p["requested_at"],
                due=float(p["due"]) - offset,
                status=p["status"],
            )
            for p in record["payouts"]
        ],
        idempotent_replies={
            key: Reply(r["status"], decimal_payload(r["payload"]))
            for key, r in record["idempotent_replies"].items()
        },
    )


def decimal_day(day: dict[str, Any]) -> dict[str, Any]:
    return {
        "date": day["date"],
        "amount": Decimal(day["amount"]),
        "uptime_percent": Decimal(day["uptime_percent"]),
        "services": {k: Decimal(v) for k, v in day["services"].items()},
    }


def decimal_payload(payload: Any) -> Any:
    """Stored replies keep their amounts as strings on disk; give them back as Decimals."""
    if isinstance(payload, dict) and isinstance(payload.get("amount"), str):
        return {**payload, "amount": Decimal(payload["amount"])}
    return payload
