"""Declared types for what the DCDN API returns.

Each ``from_api`` keeps the fields the panel uses, tolerates unknown extra fields and
missing optional ones, and raises ``MalformedResponse`` when a required field is absent
or of the wrong kind. Money and token amounts are ``Decimal``, never floats.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import MalformedResponse

TRANSITIONAL_STATUSES = frozenset({"creating", "starting", "stopping", "restarting", "destroying"})
HOURS_PER_MONTH = Decimal(730)


def _req(data: Any, key: str) -> Any:
    if not isinstance(data, dict) or key not in data or data[key] is None:
        raise MalformedResponse(f"DCDN answer is missing '{key}'.")
    return data[key]


def _str(data: dict, key: str, default: str | None = None) -> str:
    value = data.get(key, default) if default is not None else _req(data, key)
    if value is None:
        return ""
    return str(value)


def _int(data: dict, key: str, default: int | None = None) -> int | None:
    value = data.get(key, default)
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise MalformedResponse(f"DCDN answer has a non-integer '{key}'.") from exc


def _dec(data: dict, key: str, default: Decimal | None = None) -> Decimal:
    value = data.get(key) if isinstance(data, dict) else None
    if value is None:
        if default is None:
            raise MalformedResponse(f"DCDN answer is missing '{key}'.")
        return default
    if isinstance(value, bool):
        raise MalformedResponse(f"DCDN answer has a non-numeric '{key}'.")
    try:
        # str() first so that a float parsed by json keeps its shortest repr, not binary noise.
        return Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise MalformedResponse(f"DCDN answer has a non-numeric '{key}'.") from exc


def _datetime(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _json_safe(raw: dict) -> dict:
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in raw.items()}


def _list(data: Any, key: str) -> list:
    value = _req(data, key)
    if not isinstance(value, list):
        raise MalformedResponse(f"DCDN answer's '{key}' is not a list.")
    return value


@dataclass(frozen=True)
class Plan:
    id: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    bandwidth_tb: Decimal
    price_usd: Decimal
    cpu_type: str
    dedicated_ip: bool = False

    @property
    def price_hourly_usd(self) -> Decimal:
        return self.price_usd / HOURS_PER_MONTH

    @classmethod
    def from_api(cls, data: dict) -> Plan:
        return cls(
            id=_str(data, "id"),
            vcpus=_int(data, "vcpus", 0),
            ram_mb=_int(data, "ram_mb", 0),
            disk_gb=_int(data, "disk_gb", 0),
            bandwidth_tb=_dec(data, "bandwidth_tb", Decimal(0)),
            price_usd=_dec(data, "price_usd"),
            cpu_type=_str(data, "cpu_type", "shared"),
            dedicated_ip=bool(data.get("dedicated_ip", False)),
        )


@dataclass(frozen=True)
class Image:
    id: str
    name: str

    @classmethod
    def from_api(cls, data: dict) -> Image:
        ident = _str(data, "id")
        return cls(id=ident, name=_str(data, "name", ident) or ident)


@dataclass(frozen=True)
class Region:
    id: str
    nodes: int

    @property
    def supports_redundant(self) -> bool:
        return self.nodes >= 2

    @classmethod
    def from_api(cls, data: dict) -> Region:
        return cls(id=_str(data, "id"), nodes=_int(data, "nodes", 0))


@dataclass(frozen=True)
class Template:
    id: str
    name: str
    description: str
    image: str
    plan: str
    cpu_type: str

    @classmethod
    def from_api(cls, data: dict) -> Template:
        ident = _str(data, "id")
        return cls(
            id=ident,
            name=_str(data, "name", ident) or ident,
            description=_str(data, "description", ""),
            image=_str(data, "image", ""),
            plan=_str(data, "plan", ""),
            cpu_type=_str(data, "cpu_type", "shared"),
        )


@dataclass(frozen=True)
class Catalog:
    plans: list[Plan]
    images: list[Image]
    regions: list[Region]
    templates: list[Template]

    def plan(self, plan_id: str) -> Plan | None:
        return next((p for p in self.plans if p.id == plan_id), None)

    def region(self, region_id: str) -> Region | None:
        return next((r for r in self.regions if r.id == region_id), None)

    def image(self, image_id: str) -> Image | None:
        return next((i for i in self.images if i.id == image_id), None)

    def to_cache(self) -> dict:
        """A JSON-safe dict (decimals as strings) for the shared cache."""
        return {
            "plans": [_json_safe(asdict(p)) for p in self.plans],
            "images": [asdict(i) for i in self.images],
            "regions": [asdict(r) for r in self.regions],
            "templates": [asdict(t) for t in self.templates],
        }

    @classmethod
    def from_cache(cls, raw: dict) -> Catalog:
        return cls(
            plans=[Plan.from_api(p) for p in _list(raw, "plans")],
            images=[Image.from_api(i) for i in _list(raw, "images")],
            regions=[Region.from_api(r) for r in _list(raw, "regions")],
            templates=[Template.from_api(t) for t in _list(raw, "templates")],
        )


@dataclass(frozen=True)
class Usage:
    cpu_percent: Decimal
    ram_used_mb: int
    disk_used_gb: Decimal
    bandwidth_used_gb: Decimal

    @classmethod
    def from_api(cls, data: Any) -> Usage | None:
        if not isinstance(data, dict):
            return None
        return cls(
            cpu_percent=_dec(data, "cpu_percent", Decimal(0)),
            ram_used_mb=_int(data, "ram_used_mb", 0),
            disk_used_gb=_dec(data, "disk_used_gb", Decimal(0)),
            bandwidth_used_gb=_dec(data, "bandwidth_used_gb", Decimal(0)),
        )


@dataclass(frozen=True)
class Instance:
    id: str
    name: str
    status: str
    plan: str = ""
    image: str = ""
    region: str = ""
    cpu_type: str = "shared"
    redundant: bool = False
    node: str = ""
    nodes: list[str] = field(default_factory=list)
    ip_address: str = ""
    ssh_port: int | None = None
    ssh_command: str = ""
    hostname: str = ""
    monthly_cost_usd: Decimal = Decimal(0)
    created_at: datetime | None = None
    usage: Usage | None = None

    @property
    def is_transitional(self) -> bool:
        return self.status in TRANSITIONAL_STATUSES

    @property
    def all_nodes(self) -> list[str]:
        return self.nodes or ([self.node] if self.node else [])

    @classmethod
    def from_api(cls, data: dict) -> Instance:
        if not isinstance(data, dict):
            raise MalformedResponse("DCDN answer is not an instance object.")
        nodes = data.get("nodes") or []
        return cls(
            id=_str(data, "id"),
            name=_str(data, "name"),
            status=_str(data, "status"),
            plan=_str(data, "plan", ""),
            image=_str(data, "image", ""),
            region=_str(data, "region", ""),
            cpu_type=_str(data, "cpu_type", "shared"),
            redundant=bool(data.get("redundant", False)),
            node=_str(data, "node", ""),
            nodes=[str(n) for n in nodes] if isinstance(nodes, list) else [],
            ip_address=_str(data, "ip_address", ""),
            ssh_port=_int(data, "ssh_port", None),
            ssh_command=_str(data, "ssh_command", ""),
            hostname=_str(data, "hostname", ""),
            monthly_cost_usd=_dec(data, "monthly_cost_usd", Decimal(0)),
            created_at=_datetime(data.get("created_at")),
            usage=Usage.from_api(data.get("usage")),
        )

    def to_cache(self) -> dict:
        """A JSON-safe dict for snapshots kept in the cache or database."""
        raw = asdict(self)
        raw["monthly_cost_usd"] = str(self.monthly_cost_usd)
        raw["created_at"] = self.created_at.isoformat() if self.created_at else None
        if self.usage:
            raw["usage"] = {k: str(v) for k, v in raw["usage"].items()}
        return raw

    @classmethod
    def from_cache(cls, raw: dict) -> Instance:
        return cls.from_api(raw)


@dataclass(frozen=True)
class CreatedInstance:
    """The answer to a create: the instance plus its one-time root password."""

    instance: Instance
    root_password: str
    message: str = ""


@dataclass(frozen=True)
class DestroyResult:
    status: str
    message: str = ""


@dataclass(frozen=True)
class NodeSummary:
    node_id: str
    region: str
    status: str
    earned_30d: Decimal
    uptime_30d_percent: Decimal

    @classmethod
    def from_api(cls, data: dict) -> NodeSummary:
        return cls(
            node_id=_str(data, "node_id"),
            region=_str(data, "region", ""),
            status=_str(data, "status", "offline"),
            earned_30d=_dec(data, "earned_30d", Decimal(0)),
            uptime_30d_percent=_dec(data, "uptime_30d_percent", Decimal(0)),
        )


@dataclass(frozen=True)
class EarningsSummary:
    currency: str
    total_earned: Decimal
    available: Decimal
    pending: Decimal
    paid_out: Decimal
    operator_share: Decimal
    nodes: list[NodeSummary]

    @classmethod
    def from_api(cls, data: dict) -> EarningsSummary:
        return cls(
            currency=_str(data, "currency", "DCDN"),
            total_earned=_dec(data, "total_earned"),
            available=_dec(data, "available"),
            pending=_dec(data, "pending", Decimal(0)),
            paid_out=_dec(data, "paid_out", Decimal(0)),
            operator_share=_dec(data, "operator_share", Decimal("0.7")),
            nodes=[NodeSummary.from_api(n) for n in (data.get("nodes") or [])],
        )


@dataclass(frozen=True)
class DailyEarning:
    date: date
    amount: Decimal
    uptime_percent: Decimal
    vps: Decimal
    cdn: Decimal
    gpu: Decimal

    @classmethod
    def from_api(cls, data: dict) -> DailyEarning:
        services = data.get("services") if isinstance(data.get("services"), dict) else {}
        try:
            day = date.fromisoformat(_str(data, "date"))
        except ValueError as exc:
            raise MalformedResponse("DCDN answer has a malformed date.") from exc
        return cls(
            date=day,
            amount=_dec(data, "amount"),
            uptime_percent=_dec(data, "uptime_percent", Decimal(0)),
            vps=_dec(services, "vps", Decimal(0)),
            cdn=_dec(services, "cdn", Decimal(0)),
            gpu=_dec(services, "gpu", Decimal(0)),
        )


@dataclass(frozen=True)
class NodeEarnings:
    node_id: str
    region: str
    status: str
    currency: str
    total_earned: Decimal
    daily: list[DailyEarning]

    @classmethod
    def from_api(cls, data: dict) -> NodeEarnings:
        return cls(
            node_id=_str(data, "node_id"),
            region=_str(data, "region", ""),
            status=_str(data, "status", "offline"),
            currency=_str(data, "currency", "DCDN"),
            total_earned=_dec(data, "total_earned", Decimal(0)),
            daily=sorted(
                (DailyEarning.from_api(d) for d in (data.get("daily") or [])),
                key=lambda d: d.date,
            ),
        )


@dataclass(frozen=True)
class Payout:
    payout_id: str
    amount: Decimal
    status: str
    requested_at: datetime | None

    @classmethod
    def from_api(cls, data: dict) -> Payout:
        return cls(
            payout_id=_str(data, "payout_id"),
            amount=_dec(data, "amount"),
            status=_str(data, "status", "pending"),
            requested_at=_datetime(data.get("requested_at")),
        )


@dataclass(frozen=True)
class TokenInfo:
    symbol: str
    name: str
    price_usd: Decimal
    total_supply: Decimal
    circulating_supply: Decimal
    distribution: dict[str, Decimal]

    @classmethod
    def from_api(cls, data: dict) -> TokenInfo:
        dist = data.get("distribution") if isinstance(data.get("distribution"), dict) else {}
        return cls(
            symbol=_str(data, "symbol", "DCDN"),
            name=_str(data, "name", "DCDN"),
            price_usd=_dec(data, "price_usd"),
            total_supply=_dec(data, "total_supply", Decimal(0)),
            circulating_supply=_dec(data, "circulating_supply", Decimal(0)),
            distribution={k: _dec(dist, k, Decimal(0)) for k in dist},
        )
