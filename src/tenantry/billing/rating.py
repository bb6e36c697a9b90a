"""Rating: pure functions from a plan, a period and the usage in it to invoice lines.

Nothing here reads the database or the clock, so every rule can be tested with examples worked
out by hand and with properties (tests/billing/test_billing_rating.py):

- A line's amount is rounded once, half up to the cent (`kit.money`); the unrounded figure is
  kept beside it (`exact`) and the invoice's tax is computed on those.
- Base fees are charged for a period in advance; usage beyond the plan's included quotas is
  charged for a period in arrears, at the plan's overage rates.
- A part of a period is charged by *cumulative rounding*: the part [a, b) costs
  round(price x elapsed(b)) - round(price x elapsed(a)), elapsed being the fraction of the
  period gone by. However a period is cut into parts (plan changes, cancellations), the parts'
  amounts add up to exactly the full price, cent for cent.
- Included usage per period: a monthly quota times the months of the period (1 or 12); a daily
  quota (API calls) times the days of the period; a level quota (storage GB) times the months,
  in GB-months.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Final

from tenantry.kit.money import format_money, plain, round_money
from tenantry.plans.catalog import OVERAGE_RATES, Period, Plan

ZERO: Final = Decimal(0)
SECONDS_PER_DAY: Final = Decimal(86_400)


class Cycle(StrEnum):
    MONTHLY = "monthly"
    YEARLY = "yearly"

    @property
    def months(self) -> int:
        return 12 if self is Cycle.YEARLY else 1


class LineKind(StrEnum):
    BASE = "base"  # the plan's fee for a period, in advance
    OVERAGE = "overage"  # usage beyond the included quota, in arrears
    PRORATION_CREDIT = "proration_credit"  # the unused part of a plan paid in advance
    PRORATION_CHARGE = "proration_charge"  # the rest of a period on the new plan
    MANUAL = "manual"  # a line an admin wrote
    CREDIT = "credit"  # a credit note's line


# What each metered overage is called on an invoice, and its unit.
METER_LABELS: Final[dict[str, tuple[str, str]]] = {
    "compute_hours": ("Compute", "hours"),
    "storage_gb": ("Storage", "GB-months"),
    "api_calls": ("API calls", "calls"),
}


@dataclass(frozen=True)
class Line:
    kind: LineKind
    description: str
    quantity: Decimal
    unit_price: Decimal
    exact: Decimal  # the amount before rounding
    amount: Decimal  # rounded once, to the cent
    meter: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None


def line(
    kind: LineKind,
    description: str,
    *,
    quantity: Decimal,
    unit_price: Decimal,
    currency: str = "usd",
    meter: str | None = None,
    period: tuple[datetime, datetime] | None = None,
) -> Line:
    exact = quantity * unit_price
    return Line(
        kind,
        description,
        quantity,
        unit_price,
        exact,
        round_money(exact, currency),
        meter,
        period[0] if period else None,
        period[1] if period else None,
    )


# ---- periods ----


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` later, on the month's last day when it is shorter
    (Jan 31 + 1 month = Feb 28 or 29)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


@dataclass(frozen=True)
class BillingPeriod:
    """A subscription period [start, end) of `months` months."""

    start: datetime
    end: datetime
    months: int

    @classmethod
    def starting(
        cls, start: datetime, cycle: Cycle, *, anchor: datetime | None = None
    ) -> BillingPeriod:
        """The period of `cycle` from `start`; `anchor` (the first period's start) keeps the day
        of the month across short months (Jan 31, Feb 28, Mar 31)."""
        anchor = anchor or start
        k = _months_between(anchor, start)
        return cls(start, add_months(anchor, k + cycle.months), cycle.months)

    @property
    def seconds(self) -> Decimal:
        return Decimal((self.end - self.start) // timedelta(microseconds=1)) / 1_000_000

    @property
    def days(self) -> Decimal:
        return self.seconds / SECONDS_PER_DAY

    def elapsed(self, at: datetime) -> Decimal:
        """The fraction of the period gone by at `at`, clamped to [0, 1]."""
        at = min(max(at, self.start), self.end)
        return Decimal((at - self.start) // timedelta(microseconds=1)) / 1_000_000 / self.seconds


def _months_between(anchor: datetime, start: datetime) -> int:
    k = (start.year - anchor.year) * 12 + start.month - anchor.month
    while k > 0 and add_months(anchor, k) > start:
        k -= 1
    return max(k, 0)


# ---- base fees and prorations ----


def plan_price(plan: Plan, cycle: Cycle) -> Decimal:
    return plan.yearly_price if cycle is Cycle.YEARLY else plan.monthly_price


def base_fee(plan: Plan, cycle: Cycle, period: BillingPeriod) -> Line | None:
    """The plan's fee for `period`, in advance; none for a free plan."""
    price = plan_price(plan, cycle)
    if price == ZERO:
        return None
    return line(
        LineKind.BASE,
        f"{plan.name} plan, {cycle.value} ({_span(period.start, period.end)})",
        quantity=Decimal(1),
        unit_price=price,
        currency=plan.currency,
        period=(period.start, period.end),
    )


def part_of_period(
    price: Decimal, period: BillingPeriod, start: datetime, end: datetime, currency: str = "usd"
) -> tuple[Decimal, Decimal]:
    """(exact, rounded) cost of [start, end) of a period whose whole costs `price`, by
    cumulative rounding: the parts of any cutting of the period add up to round(price)."""
    a, b = period.elapsed(start), period.elapsed(end)
    exact = price * (b - a)
    rounded = round_money(price * b, currency) - round_money(price * a, currency)
    return exact, rounded


def proration(
    *,
    old: Plan,
    old_cycle: Cycle,
    new: Plan,
    new_cycle: Cycle,
    period: BillingPeriod,
    at: datetime,
) -> list[Line]:
    """Changing plans at `at` within a period paid in advance on `old`: a credit for the unused
    rest on the old plan and a charge for the rest on the new one (same period, same end).
    A line shows one unit at its rounded amount; its `exact` keeps the unrounded part of the
    price, which the invoice's tax is computed on."""
    out: list[Line] = []
    span = (at, period.end)
    old_price, new_price = plan_price(old, old_cycle), plan_price(new, new_cycle)
    if old_price:
        exact, amount = part_of_period(old_price, period, at, period.end, old.currency)
        out.append(
            Line(
                LineKind.PRORATION_CREDIT,
                f"Unused time on the {old.name} plan ({_span(*span)})",
                Decimal(-1),
                amount,
                -exact,
                -amount,
                None,
                *span,
            )
        )
    if new_price and new_cycle is old_cycle:
        exact, amount = part_of_period(new_price, period, at, period.end, new.currency)
        out.append(
            Line(
                LineKind.PRORATION_CHARGE,
                f"Remaining time on the {new.name} plan ({_span(*span)})",
                Decimal(1),
                amount,
                exact,
                amount,
                None,
                *span,
            )
        )
    return out


# ---- usage beyond the plan ----


def included(plan: Plan, meter: str, period: BillingPeriod) -> Decimal | None:
    """How much of `meter` the plan includes in `period`; None: unlimited."""
    for quota in plan.quotas.values():
        if quota.meter != meter:
            continue
        if quota.limit is None:
            return None
        if quota.period is Period.DAY:
            return quota.limit * period.days
        return quota.limit * period.months
    return ZERO


def overage(
    plan: Plan | None, usage: Mapping[str, Decimal], period: BillingPeriod | None
) -> list[Line]:
    """Lines for usage beyond what the plan includes, at its overage rates. Without a plan all
    usage is billable at the standard overage rates (what `billing usage-cost` shows)."""
    rates = OVERAGE_RATES if plan is None else plan.overage_rates
    currency = plan.currency if plan else "usd"
    out: list[Line] = []
    for meter, rate in rates.items():
        used = usage.get(meter, ZERO)
        allowance = ZERO if plan is None or period is None else included(plan, meter, period)
        if allowance is None or used <= allowance:
            continue
        beyond = used - allowance
        label, unit = METER_LABELS.get(meter, (meter, "units"))
        what = f"beyond the {plain(allowance, grouped=True)} included" if allowance else "used"
        span = (period.start, period.end) if period else None
        out.append(
            line(
                LineKind.OVERAGE,
                f"{label}: {plain(beyond, grouped=True)} {unit} {what}",
                quantity=beyond,
                unit_price=rate,
                currency=currency,
                meter=meter,
                period=span,
            )
        )
    return out


# ---- totals ----


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    tax: Decimal
    total: Decimal


def totals(lines: Iterable[Line], *, tax_rate: Decimal, currency: str = "usd") -> Totals:
    """Subtotal: the sum of the rounded lines. Tax: the unrounded lines' sum times the rate,
    rounded once. Total: subtotal + tax. So the lines always add up to the subtotal."""
    lines = list(lines)
    subtotal = sum((x.amount for x in lines), ZERO)
    tax = round_money(sum((x.exact for x in lines), ZERO) * tax_rate, currency)
    return Totals(subtotal, tax, subtotal + tax)


def negated(source: Line, description: str) -> Line:
    """A credit note's line taking back `source` in full."""
    return replace(
        source,
        kind=LineKind.CREDIT,
        description=description,
        exact=-source.exact,
        amount=-source.amount,
        quantity=-source.quantity,
    )


def describe_money(amount: Decimal, currency: str) -> str:
    return format_money(amount, currency)


def _span(start: datetime, end: datetime) -> str:
    return f"{start:%Y-%m-%d} to {end:%Y-%m-%d}"
