"""Forecasts of spend: where a period's cost will end, how sure we are, which way it is going and
when a budget runs out at the current pace. Read from daily sums of the hourly rollups.

The method (docs/spend.md, "Forecasts"), on the daily costs of the last 56 complete days (from
the first day with any spend):

1. **Trend**: the Theil-Sen slope (the median of the slopes between pairs of days a whole
   number of weeks apart, so the weekday pattern adds nothing) of the last 28 days. A median
   ignores a few spikes.
2. **Weekday pattern** (with two weeks of history or more): the median, per weekday, of what
   the trend leaves, less the median of all of it; centred so a week adds up to the trend alone.
3. **Level shift**: if splitting those 28 days in two (three days each side at least) at their
   medians leaves under half the residual spread of the line, the series stepped: the trend is
   the one since the step (none before it has two weeks), and the level is read after it.
4. **Level**: the median of those 28 days (or the days since the step) once the pattern and
   trend are taken out, carried to the last complete day along the trend.
5. Each remaining day of the period is expected at level + slope x days ahead + its weekday's
   effect (never below zero); the rest of today counts for the part of today still to come.
   The projection is what the period has spent (exact, from the rollups) plus those days.
6. **Interval**: the residuals' robust spread (1.4826 x their median absolute deviation) times
   sqrt(days ahead), times 1.645 for a 90 % interval; never below what is spent already.
7. **Confidence score** (0-1): min(1, history days / 28) x (1 - min(1, half width / projection)).
8. **Trend label**: slope x 7 against the level: over +5 % a week `increasing`, under -5 %
   `decreasing`, else `stable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from math import sqrt
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from tenantry.kit.money import plain
from tenantry.spend import repository

LOOKBACK_DAYS = 56
TREND_DAYS = 28
FULL_HISTORY_DAYS = 28
Z_90 = 1.645
MAD_TO_SIGMA = 1.4826
MIN_STEP_DAYS = 3  # days each side of a level shift
STEP_MARGIN = 0.5  # a step must leave under half the line's residual spread
TREND_BAND = 0.05  # a week's change against the level below which the trend is stable
DAY = timedelta(days=1)
CENT = Decimal("0.01")


@dataclass(frozen=True)
class DailyModel:
    """What the history says about one day's cost."""

    first_day: date
    days: int  # days of history it was fitted on
    level: float  # expected cost of the last history day, weekday pattern aside
    slope: float  # change per day
    weekday: tuple[float, ...]  # effect of each weekday (Monday first), adding up to 0
    sigma: float  # robust spread of one day's cost around what was expected

    def expected(self, day: date) -> float:
        ahead = (day - self.first_day).days - (self.days - 1)
        return max(0.0, self.level + self.slope * ahead + self.weekday[day.weekday()])

    @property
    def trend(self) -> str:
        if self.level <= 1e-9:
            return "increasing" if self.slope > 1e-9 else "stable"
        weekly = self.slope * 7 / self.level
        if weekly > TREND_BAND:
            return "increasing"
        if weekly < -TREND_BAND:
            return "decreasing"
        return "stable"

    @property
    def weekly_change(self) -> float:
        """The trend over a week as a fraction of the level (0 when there is no level)."""
        return 0.0 if self.level <= 1e-9 else self.slope * 7 / self.level


def _theil_sen(values: np.ndarray) -> float:
    """The median slope between pairs of days; with two weeks or more, only of pairs a whole
    number of weeks apart, so the weekday pattern adds nothing to it."""
    n = len(values)
    if n < 3:
        return 0.0
    i, j = np.triu_indices(n, k=1)
    if n >= 14:
        weeks = (j - i) % 7 == 0
        i, j = i[weeks], j[weeks]
    return float(np.median((values[j] - values[i]) / (j - i)))


def _spread(residuals: np.ndarray) -> float:
    return float(np.median(np.abs(residuals - np.median(residuals))))


def _step_start(series: np.ndarray, slope: float) -> int | None:
    """Where a level shift starts in `series`, if a step explains it much better than a line:
    the split whose two medians leave a residual spread under half the line's."""
    n = len(series)
    t = np.arange(n)
    line = series - slope * t
    line_spread = _spread(line - np.median(line))
    best: tuple[float, int] | None = None
    for k in range(MIN_STEP_DAYS, n - MIN_STEP_DAYS + 1):
        before, after = series[:k], series[k:]
        spread = _spread(np.concatenate([before - np.median(before), after - np.median(after)]))
        if best is None or spread < best[0]:
            best = (spread, k)
    if best is None or best[0] >= STEP_MARGIN * line_spread:
        return None
    return best[1]


def fit(history: Sequence[float], first_day: date) -> DailyModel | None:
    """The model of a daily series starting on `first_day` (None for an empty one)."""
    y = np.asarray(history, dtype=float)
    n = len(y)
    if n == 0:
        return None
    t = np.arange(n)
    slope = _theil_sen(y[-TREND_DAYS:])
    weekdays = np.array([(first_day + timedelta(days=int(k))).weekday() for k in t])
    effect = np.zeros(7)
    if n >= 14:
        detrended = y - slope * t
        centre = float(np.median(detrended))
        for w in range(7):
            effect[w] = float(np.median(detrended[weekdays == w])) - centre
        effect -= effect.mean()
    plain_series = y - effect[weekdays]
    window = max(0, n - TREND_DAYS)
    step = _step_start(plain_series[window:], slope) if n - window >= 2 * MIN_STEP_DAYS else None
    fit_from = window
    if step is not None:
        # A level shift: the trend is the one since the shift (none yet if it is recent).
        fit_from = window + step
        after = plain_series[fit_from:]
        slope = _theil_sen(after) if len(after) >= 14 else 0.0
    recent = slice(fit_from, n)
    level = float(np.median(plain_series[recent] - slope * (t[recent] - (n - 1))))
    fitted = level + slope * (t - (n - 1)) + effect[weekdays]
    residuals = (y - fitted)[fit_from:]
    return DailyModel(
        first_day=first_day,
        days=n,
        level=level,
        slope=slope,
        weekday=tuple(float(e) for e in effect),
        sigma=MAD_TO_SIGMA * _spread(residuals),
    )


def _money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_EVEN)


def _ahead(model: DailyModel | None, start: datetime, end: datetime) -> tuple[float, float]:
    """(expected cost, days) of [start, end), each day weighted by the part of it inside."""
    if model is None or end <= start:
        return 0.0, 0.0
    total = days = 0.0
    day = start.date()
    while datetime.combine(day, datetime.min.time(), UTC) < end:
        lo = max(start, datetime.combine(day, datetime.min.time(), UTC))
        hi = min(end, datetime.combine(day + DAY, datetime.min.time(), UTC))
        part = (hi - lo) / DAY
        total += model.expected(day) * part
        days += part
        day += DAY
    return total, days


def runs_out_on(
    model: DailyModel | None, *, now: datetime, remaining: Decimal, until: datetime
) -> date | None:
    """The day `remaining` dollars are spent at the expected pace, if before `until`."""
    if remaining <= 0:
        return now.date()
    if model is None:
        return None
    left = float(remaining)
    moment = now
    while moment < until:
        day_end = min(until, datetime.combine(moment.date() + DAY, datetime.min.time(), UTC))
        left -= model.expected(moment.date()) * ((day_end - moment) / DAY)
        if left <= 0:
            return moment.date()
        moment = day_end
    return None


@dataclass(frozen=True)
class BudgetPace:
    amount: Decimal
    spent: Decimal
    period_end: datetime


def project(
    model: DailyModel | None,
    *,
    spent: Decimal,
    now: datetime,
    since: datetime,
    until: datetime,
    budget: BudgetPace | None = None,
) -> dict[str, Any]:
    """The forecast of the period [since, until) that has spent `spent` by `now`."""
    if now >= until:
        return {
            "method": "actual",
            "projected_total_cost": plain(_money(spent)),
            "as_of": until,
            "confidence_interval": {
                "level": 0.9,
                "lower": plain(_money(spent)),
                "upper": plain(_money(spent)),
            },
            "confidence_score": 1.0,
            "trend": model.trend if model else "stable",
            "weekly_change": round(model.weekly_change, 4) if model else 0.0,
            "history_days": model.days if model else 0,
            "budget_runs_out_on": None,
        }
    expected, days = _ahead(model, max(now, since), until)
    sigma = model.sigma if model else 0.0
    half = Z_90 * sigma * sqrt(days)
    projected = spent + _money(expected)
    lower = max(spent, projected - _money(half))
    upper = projected + _money(half)
    coverage = min(1.0, (model.days if model else 0) / FULL_HISTORY_DAYS)
    fuzz = min(1.0, half / float(projected)) if projected > 0 else 0.0
    runs_out = None
    if budget is not None:
        runs_out = runs_out_on(
            model, now=now, remaining=budget.amount - budget.spent, until=budget.period_end
        )
    return {
        "method": "robust_trend_weekday",
        "projected_total_cost": plain(_money(projected)),
        "as_of": now,
        "confidence_interval": {
            "level": 0.9,
            "lower": plain(_money(lower)),
            "upper": plain(_money(upper)),
        },
        "confidence_score": round(coverage * (1.0 - fuzz), 2),
        "trend": model.trend if model else "stable",
        "weekly_change": round(model.weekly_change, 4) if model else 0.0,
        "history_days": model.days if model else 0,
        "budget_runs_out_on": runs_out,
    }


def daily_costs(
    session: Session, *, org_id: str, team_ids: Sequence[str] | None, now: datetime
) -> tuple[list[float], date | None]:
    """Daily costs of the complete days before `now` (up to 56), from the first with spend."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=LOOKBACK_DAYS)
    rows = repository.rollup_series(
        session, org_id=org_id, team_ids=team_ids, since=start, until=today
    )
    by_day: dict[date, Decimal] = {}
    for row in rows:
        by_day[row.hour.date()] = by_day.get(row.hour.date(), Decimal(0)) + row.cost
    spending = sorted(d for d, cost in by_day.items() if cost > 0)
    if not spending:
        return [], None
    first = spending[0]
    count = (today.date() - first).days
    return [float(by_day.get(first + timedelta(days=k), 0)) for k in range(count)], first


def forecast(
    session: Session,
    *,
    org_id: str,
    team_ids: Sequence[str] | None,
    spent: Decimal,
    now: datetime,
    since: datetime,
    until: datetime,
    budget: BudgetPace | None = None,
) -> dict[str, Any]:
    """The forecast of a team's (its subtree's) or an org's cost for [since, until)."""
    history, first = daily_costs(session, org_id=org_id, team_ids=team_ids, now=now)
    model = fit(history, first) if first is not None else None
    return project(model, spent=spent, now=now, since=since, until=until, budget=budget)
