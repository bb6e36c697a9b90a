"""Rating is pure: examples worked out by hand, and properties over random periods and usage."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tenantry.billing import rating
from tenantry.billing.rating import BillingPeriod, Cycle, LineKind
from tenantry.kit.money import round_money
from tenantry.plans.catalog import PLANS

JAN = datetime(2026, 1, 1, tzinfo=UTC)
D = Decimal


def test_usage_cost_without_a_plan_bills_everything() -> None:
    # The example: $75.00 + $5.00 + $0.50 = $80.50.
    lines = rating.overage(
        None, {"compute_hours": D(150), "storage_gb": D(50), "api_calls": D(50_000)}, None
    )
    assert [(x.meter, x.amount) for x in lines] == [
        ("compute_hours", D("75.00")),
        ("storage_gb", D("5.00")),
        ("api_calls", D("0.50")),
    ]
    assert rating.totals(lines, tax_rate=D(0)).total == D("80.50")


def test_included_usage_per_period() -> None:
    starter = PLANS["starter"]
    month = BillingPeriod.starting(JAN, Cycle.MONTHLY)  # 31 days
    assert rating.included(starter, "compute_hours", month) == D(1000)
    assert rating.included(starter, "storage_gb", month) == D(100)  # GB-months
    assert rating.included(starter, "api_calls", month) == D(100_000) * 31
    year = BillingPeriod.starting(JAN, Cycle.YEARLY)
    assert rating.included(starter, "compute_hours", year) == D(12_000)
    assert rating.included(PLANS["enterprise"], "compute_hours", month) is None


def test_overage_beyond_the_starter_plan() -> None:
    # 1,200 compute hours on Starter (1,000 included): 200 x $0.50 = $100.00. Storage at 100
    # GB-months is within the 100 included: no line.
    month = BillingPeriod.starting(JAN, Cycle.MONTHLY)
    lines = rating.overage(
        PLANS["starter"], {"compute_hours": D(1200), "storage_gb": D(100)}, month
    )
    assert len(lines) == 1
    assert lines[0].quantity == D(200) and lines[0].amount == D("100.00")
    # Free bills no overage: its quotas are hard.
    assert rating.overage(PLANS["free"], {"compute_hours": D(500)}, month) == []


def test_proration_worked_by_hand() -> None:
    # Starter monthly from Jan 1; on Jan 16 at 12:00 (15.5 of 31 days, exactly half) the org
    # moves to Professional: credit half of $29 = $14.50, charge half of $99 = $49.50.
    period = BillingPeriod.starting(JAN, Cycle.MONTHLY)
    at = JAN + timedelta(days=15, hours=12)
    lines = rating.proration(
        old=PLANS["starter"],
        old_cycle=Cycle.MONTHLY,
        new=PLANS["professional"],
        new_cycle=Cycle.MONTHLY,
        period=period,
        at=at,
    )
    assert [(x.kind, x.amount) for x in lines] == [
        (LineKind.PRORATION_CREDIT, D("-14.50")),
        (LineKind.PRORATION_CHARGE, D("49.50")),
    ]
    # A third of a 30-day April (10 days left) on $29: credit $9.67 (29 x 10/30 = 9.666...).
    april = BillingPeriod.starting(datetime(2026, 4, 1, tzinfo=UTC), Cycle.MONTHLY)
    third = rating.proration(
        old=PLANS["starter"],
        old_cycle=Cycle.MONTHLY,
        new=PLANS["professional"],
        new_cycle=Cycle.MONTHLY,
        period=april,
        at=datetime(2026, 4, 21, tzinfo=UTC),
    )
    assert third[0].amount == D("-9.67")
    assert third[1].amount == D("33.00")  # 99 x 10/30


def test_tax_is_computed_on_unrounded_lines() -> None:
    # 3 x $3.333 = 9.999 -> $10.00 and 1 x $0.005 -> $0.01: subtotal $10.01; tax at 20% of the
    # unrounded 10.004 = 2.0008 -> $2.00; total $12.01.
    lines = [
        rating.line(LineKind.MANUAL, "a", quantity=D(3), unit_price=D("3.333")),
        rating.line(LineKind.MANUAL, "b", quantity=D(1), unit_price=D("0.005")),
    ]
    found = rating.totals(lines, tax_rate=D("0.2"))
    assert (found.subtotal, found.tax, found.total) == (D("10.01"), D("2.00"), D("12.01"))
    # Where it decides: ten lines of $0.014 show $0.01 each (subtotal $0.10); a 100% tax is of
    # the unrounded $0.14, not of the rounded $0.10.
    many = [
        rating.line(LineKind.MANUAL, "x", quantity=D(1), unit_price=D("0.014")) for _ in range(10)
    ]
    found = rating.totals(many, tax_rate=D("1"))
    assert (found.subtotal, found.tax) == (D("0.10"), D("0.14"))


def test_months_keep_their_day() -> None:
    jan31 = datetime(2026, 1, 31, 9, tzinfo=UTC)
    first = BillingPeriod.starting(jan31, Cycle.MONTHLY)
    assert first.end == datetime(2026, 2, 28, 9, tzinfo=UTC)
    second = BillingPeriod.starting(first.end, Cycle.MONTHLY, anchor=jan31)
    assert second.end == datetime(2026, 3, 31, 9, tzinfo=UTC)
    leap = BillingPeriod.starting(datetime(2028, 1, 31, tzinfo=UTC), Cycle.MONTHLY)
    assert leap.end == datetime(2028, 2, 29, tzinfo=UTC)


prices = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
cuts = st.lists(st.integers(min_value=1, max_value=31 * 86_400 - 1), max_size=12, unique=True)


@settings(max_examples=300, deadline=None)
@given(price=prices, seconds=cuts)
def test_splitting_a_period_never_changes_its_total(price: Decimal, seconds: list[int]) -> None:
    period = BillingPeriod.starting(JAN, Cycle.MONTHLY)
    points = [period.start, *sorted(JAN + timedelta(seconds=s) for s in seconds), period.end]
    parts = [rating.part_of_period(price, period, a, b) for a, b in itertools.pairwise(points)]
    assert sum((rounded for _, rounded in parts), D(0)) == round_money(price)
    # The unrounded parts are fractions of the price, exact to Decimal's 28 digits.
    assert abs(sum((exact for exact, _ in parts), D(0)) - price) < D("1e-20")


quantities = st.decimals(min_value=D(0), max_value=D("1000000"), places=6)
rates = st.decimals(min_value=D("-1000"), max_value=D("1000"), places=5)


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(st.tuples(quantities, rates), min_size=1, max_size=20),
    tax=st.decimals(min_value=D(0), max_value=D("0.99"), places=4),
)
def test_lines_always_sum_to_the_total(items: list[tuple[Decimal, Decimal]], tax: Decimal) -> None:
    lines = [rating.line(LineKind.MANUAL, "x", quantity=q, unit_price=p) for q, p in items]
    found = rating.totals(lines, tax_rate=tax)
    # Each line is rounded once, to the cent, from its own exact amount.
    for x in lines:
        assert x.amount == round_money(x.exact)
        assert x.amount == x.amount.quantize(D("0.01"))
    assert found.subtotal == sum((x.amount for x in lines), D(0))
    assert found.total == found.subtotal + found.tax
    assert found.tax == round_money(sum((x.exact for x in lines), D(0)) * tax)
