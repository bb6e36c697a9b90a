"""Jinja2 templates shipped in the package, rendered whole or one block at a time.

An htmx request (`HX-Request`) that names a block gets only that block's HTML: the same
template serves the full page and its partial updates, so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from tenantry import __version__
from tenantry.kit.clock import as_utc

ENV = Environment(
    loader=PackageLoader("tenantry.web", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(moment: datetime | None, empty: str = "—") -> str:
    if moment is None:
        return empty
    return as_utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def _day(moment: datetime | None, empty: str = "—") -> str:
    return empty if moment is None else as_utc(moment).strftime("%Y-%m-%d")


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else as_utc(moment).isoformat()


def _ms(value: int | None, empty: str = "—") -> str:
    """An MLflow-style time (int64 milliseconds since the epoch) as the pages show times."""
    if value is None:
        return empty
    return _when(datetime.fromtimestamp(value / 1000, UTC))


def _number(value: int | float | Decimal | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, Decimal) and value != value.to_integral_value():
        return f"{value:,.2f}"
    return f"{int(value):,}" if value == int(value) else f"{value:,.2f}"


def _money(value: Decimal | int | None, currency: str = "usd") -> str:
    if value is None:
        return "—"
    symbol = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}.get(currency.lower(), "")
    amount = Decimal(value)
    text = f"{amount:,.0f}" if currency.lower() == "jpy" else f"{amount:,.2f}"
    return f"{symbol}{text}" if symbol else f"{text} {currency.upper()}"


def _percent(part: float | int | Decimal | None, whole: float | int | Decimal | None) -> int:
    """A gauge's filled share, 0-100 (0 when there is no limit)."""
    if not whole or part is None:
        return 0
    return max(0, min(100, round(float(part) * 100 / float(whole))))


ENV.filters.update(ms=_ms, when=_when, day=_day, iso=_iso, number=_number, money=_money)
ENV.globals.update(version=__version__, percent=_percent)
# The form macros, for every template and for each block rendered on its own (a block does not
# run its template's top-level imports).
ENV.globals["m"] = ENV.get_template("macros.html").module


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    block: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The template `name` as a response; only its `block` when htmx asked for a part."""
    template = ENV.get_template(name)
    values = {"request": request, **context}
    if block is not None and is_htmx(request):
        html = "".join(template.blocks[block](template.new_context(values)))
    else:
        html = template.render(values)
    return HTMLResponse(html, status_code=status, headers=headers)
