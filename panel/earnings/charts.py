"""Server-side chart of a node's daily earnings: stacked bars per service, uptime line.

A pure function from ``NodeEarnings`` to geometry; ``templates/earnings/_chart.html``
draws it as SVG. Colours come from CSS classes (no style attributes, so the strict CSP
holds), and the SVG carries a title and a description; the table beside it is the full
text alternative.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, Decimal

from panel.dcdn.types import DailyEarning, NodeEarnings

WIDTH = 720
HEIGHT = 300
LEFT, RIGHT, TOP, BOTTOM = 64, 52, 16, 40
SERIES = (("vps", "VPS"), ("cdn", "CDN"), ("gpu", "GPU"))
_NICE_STEPS = (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10))
_TWO = Decimal("0.01")


@dataclass(frozen=True)
class Rect:
    x: str
    y: str
    width: str
    height: str
    css_class: str
    label: str


@dataclass(frozen=True)
class Tick:
    x: str
    y: str
    label: str


@dataclass(frozen=True)
class Chart:
    dom_id: str
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    bars: list[Rect]
    y_ticks: list[Tick]
    uptime_ticks: list[Tick]
    x_ticks: list[Tick]
    uptime_points: str
    title: str
    description: str
    empty: bool

    @property
    def plot_right(self) -> int:
        return self.width - self.right

    @property
    def plot_bottom(self) -> int:
        return self.height - self.bottom


def _day(value: date, *, year: bool = False, short: bool = False) -> str:
    """ "3 November 2026" without platform-specific strftime flags."""
    month = f"{value:%b}" if short else f"{value:%B}"
    return f"{value.day} {month} {value.year}" if year else f"{value.day} {month}"


def _fmt(value: Decimal) -> str:
    return str(value.quantize(_TWO))


def _amount(value: Decimal) -> str:
    """Compact amount for labels: 8 places at most, trailing zeros dropped."""
    text = format(value.quantize(Decimal("0.00000001")), "f").rstrip("0").rstrip(".")
    return text or "0"


def nice_ceiling(value: Decimal, *, ticks: int = 4) -> tuple[Decimal, Decimal]:
    """(top of the axis, step between ticks): a round step such that ``ticks`` steps
    reach at least ``value``."""
    if value <= 0:
        return Decimal(ticks), Decimal(1)
    raw = value / ticks
    magnitude = Decimal(1).scaleb(raw.adjusted())
    for factor in _NICE_STEPS:
        step = factor * magnitude
        if step >= raw:
            break
    top = (value / step).to_integral_value(rounding=ROUND_CEILING) * step
    return top, step


def _day_total(day: DailyEarning) -> Decimal:
    services = day.vps + day.cdn + day.gpu
    return services if services > 0 else day.amount


def describe(node: NodeEarnings) -> str:
    days = node.daily
    if not days:
        return f"No daily earnings are reported for node {node.node_id}."
    total = sum((d.amount for d in days), Decimal(0))
    by_service = {key: sum((getattr(d, key) for d in days), Decimal(0)) for key, _ in SERIES}
    best = max(days, key=lambda d: d.amount)
    lowest_uptime = min(days, key=lambda d: d.uptime_percent)
    mean_uptime = sum((d.uptime_percent for d in days), Decimal(0)) / len(days)
    parts = ", ".join(f"{label} {_amount(by_service[key])}" for key, label in SERIES)
    return (
        f"Stacked bars of daily earnings of node {node.node_id} from "
        f"{_day(days[0].date, year=True)} to {_day(days[-1].date, year=True)}: "
        f"{_amount(total)} {node.currency} in {len(days)} days "
        f"({parts}). The best day was {_day(best.date)} with {_amount(best.amount)} "
        f"{node.currency}. A line shows uptime: {_fmt(mean_uptime)}% on average, lowest "
        f"{_fmt(lowest_uptime.uptime_percent)}% on {_day(lowest_uptime.date)}. "
        f"The table below lists every day."
    )


def daily_chart(node: NodeEarnings, *, dom_id: str = "earnings-chart") -> Chart:
    days = node.daily
    plot_w = Decimal(WIDTH - LEFT - RIGHT)
    plot_h = Decimal(HEIGHT - TOP - BOTTOM)
    bottom = Decimal(HEIGHT - BOTTOM)
    top_value, step = nice_ceiling(max((_day_total(d) for d in days), default=Decimal(0)))
    band = plot_w / max(1, len(days))
    bar_w = band * Decimal("0.7")

    def y_of(value: Decimal) -> Decimal:
        return bottom - value / top_value * plot_h

    bars: list[Rect] = []
    points: list[str] = []
    x_ticks: list[Tick] = []
    label_every = max(1, len(days) // 6)
    for index, day in enumerate(days):
        x = Decimal(LEFT) + band * index + (band - bar_w) / 2
        base = Decimal(0)
        for key, label in SERIES:
            value: Decimal = getattr(day, key)
            if value <= 0:
                continue
            y_top = y_of(base + value)
            bars.append(
                Rect(
                    x=_fmt(x),
                    y=_fmt(y_top),
                    width=_fmt(bar_w),
                    height=_fmt(y_of(base) - y_top),
                    css_class=f"series-{key}",
                    label=f"{_day(day.date, short=True)}: {label} {_amount(value)} {node.currency}",
                )
            )
            base += value
        centre = Decimal(LEFT) + band * index + band / 2
        uptime = min(max(day.uptime_percent, Decimal(0)), Decimal(100))
        points.append(f"{_fmt(centre)},{_fmt(bottom - uptime / 100 * plot_h)}")
        if index % label_every == 0 or index == len(days) - 1:
            x_ticks.append(
                Tick(x=_fmt(centre), y=str(HEIGHT - BOTTOM + 18), label=_day(day.date, short=True))
            )
    y_ticks = []
    value = Decimal(0)
    while value <= top_value:
        y_ticks.append(Tick(x=str(LEFT - 8), y=_fmt(y_of(value)), label=_amount(value)))
        value += step
    uptime_ticks = [
        Tick(
            x=str(WIDTH - RIGHT + 8),
            y=_fmt(bottom - Decimal(p) / 100 * plot_h),
            label=f"{p}%",
        )
        for p in (0, 50, 100)
    ]
    return Chart(
        dom_id=dom_id,
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        top=TOP,
        right=RIGHT,
        bottom=BOTTOM,
        bars=bars,
        y_ticks=y_ticks,
        uptime_ticks=uptime_ticks,
        x_ticks=x_ticks,
        uptime_points=" ".join(points),
        title=f"Daily earnings of {node.node_id} by service, last {len(days)} days",
        description=describe(node),
        empty=not days,
    )
