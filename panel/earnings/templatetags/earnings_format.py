"""Amount formatting for the earnings pages: exact decimals, never floats."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation

from django import template

from panel.earnings.services import format_amount, usd_value

register = template.Library()


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


@register.filter
def dcdn(value) -> str:
    """12.5 -> "12.50", 0.000123 -> "0.000123" (up to 8 decimals)."""
    number = _decimal(value)
    return "" if number is None else format_amount(number)


@register.filter
def dcdn_column(value) -> str:
    """Always 8 decimals, for table columns whose decimal points should line up."""
    number = _decimal(value)
    return "" if number is None else f"{number.quantize(Decimal('0.00000001')):,f}"


@register.filter
def dcdn_short(value) -> str:
    """Two decimals for a glance (the home card): 405.61511804 -> "405.61". Rounded down,
    so a balance never reads as more than it is; pages with the details keep ``dcdn``."""
    number = _decimal(value)
    if number is None:
        return ""
    return f"{number.quantize(Decimal('0.01'), rounding=ROUND_DOWN):,f}"


@register.filter
def usd(value) -> str:
    """A USD amount with two decimals and thousands separators: "$1,234.50"."""
    number = _decimal(value)
    if number is None:
        return ""
    return f"${number.quantize(Decimal('0.01')):,f}"


@register.filter
def usd_of(amount, price) -> str:
    """The USD value of a DCDN amount at ``price``."""
    value = usd_value(amount=_decimal(amount), price_usd=_decimal(price))
    return "" if value is None else usd(value)


def _percent_text(number: Decimal) -> str:
    """At most two decimals, no trailing zeros: 99.50 -> "99.5%"."""
    text = format(number.quantize(Decimal("0.01")), "f").rstrip("0").rstrip(".")
    return f"{text}%"


@register.filter
def percent(value) -> str:
    """A fraction as a percentage: 0.7 -> "70%"."""
    number = _decimal(value)
    return "" if number is None else _percent_text(number * 100)


@register.filter
def uptime(value) -> str:
    """An uptime percentage with at most two decimals: 99.5 -> "99.5%"."""
    number = _decimal(value)
    return "" if number is None else _percent_text(number)


@register.filter
def whole(value) -> str:
    """A large count with thousands separators and no decimals (token supply)."""
    number = _decimal(value)
    if number is None:
        return ""
    return f"{number.quantize(Decimal(1)):,f}"


@register.simple_tag
def freshness(age_seconds) -> str:
    """How old the figures are, in words a page can show."""
    try:
        age = int(age_seconds)
    except (TypeError, ValueError):
        return ""
    if age < 2:
        return "Figures just fetched from DCDN"
    if age < 120:
        return f"Figures from {age} s ago"
    return f"Figures from {age // 60} min ago"
