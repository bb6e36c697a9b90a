"""Money as `Decimal`, stored as integer minor units plus a currency; never float.

One rounding mode, used in one place (`round_money`): half up to the currency's minor unit, as
invoices are conventionally rounded. Amounts stay unrounded while they are computed and are
rounded once, per invoice line (and once for the tax of an invoice).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Final

ROUNDING: Final = ROUND_HALF_UP
# Currencies we bill in and the exponent of their minor unit (cents: 2).
MINOR_EXPONENT: Final[dict[str, int]] = {"usd": 2, "eur": 2, "gbp": 2, "jpy": 0}
# A unit price (a plan's overage rate, a manual invoice line's) has at most this many decimal
# places, finer than any currency's minor unit: a token can cost 0.000002.
UNIT_PRICE_PLACES: Final = 6


def _exponent(currency: str) -> int:
    try:
        return MINOR_EXPONENT[currency.lower()]
    except KeyError:
        raise ValueError(f"unsupported currency {currency!r}") from None


def round_money(amount: Decimal, currency: str = "usd") -> Decimal:
    """`amount` rounded half up to the currency's minor unit."""
    return amount.quantize(Decimal(1).scaleb(-_exponent(currency)), rounding=ROUNDING)


def to_minor(amount: Decimal, currency: str = "usd") -> int:
    """A rounded amount as an integer of minor units; ValueError if it is not rounded."""
    scaled = amount.scaleb(_exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} is not a whole number of minor units of {currency}")
    return int(scaled)


def from_minor(minor: int, currency: str = "usd") -> Decimal:
    exponent = _exponent(currency)
    return Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))


def format_money(amount: Decimal, currency: str = "usd") -> str:
    """`$1,234.50` for dollars; other currencies as `1,234.50 EUR`."""
    rounded = round_money(amount, currency)
    sign = "-" if rounded < 0 else ""
    digits = f"{abs(rounded):,.{_exponent(currency)}f}"
    if currency.lower() == "usd":
        return f"{sign}${digits}"
    return f"{sign}{digits} {currency.upper()}"


def plain(value: Decimal, *, grouped: bool = False) -> str:
    """A decimal as people write it: fixed point (never `2E+1`), no trailing zeros after the
    point, thousands separated by commas when `grouped`. The one formatter of quantities, rates
    and prices in answers, invoices and the CLI."""
    text = format(value, ",f" if grouped else "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
