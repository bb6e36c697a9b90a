"""Usage summaries of an org or a team, read from hourly rollups only (never raw events).

A summary covers whole hours: `since` is taken down and `until` up to the hour, and the answer
says which range it covers. Each row is one meter (and one member, provider or model when
grouped so), over the whole range or per hour or UTC day. Quantities follow the meter's
aggregation: sums and counts add up exactly; `max` and `latest` pick; a time-weighted meter
gives unit-months (the level integrated over time, to a millionth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

from sqlalchemy.orm import Session

from tenantry.kit.errors import Unprocessable
from tenantry.metering import repository
from tenantry.metering.meters import (
    QUANTITY_DECIMALS,
    SECONDS_PER_UNIT_MONTH,
    Aggregation,
    meter_of,
)
from tenantry.metering.models import UsageRollup
from tenantry.metering.periods import hour_of

GroupBy = Literal["meter", "member", "provider", "model"]
Granularity = Literal["hour", "day"]
MAX_RANGE = timedelta(days=400)
MAX_HOURLY_RANGE = timedelta(days=35)
_MICRO = Decimal(1).scaleb(-QUANTITY_DECIMALS)
_ZERO = Decimal(0)


@dataclass(frozen=True)
class SummaryRow:
    meter: str
    group: str | None  # the member, provider or model ("" = none); None when grouped by meter
    bucket: datetime | None  # start of the hour or day; None for the whole range
    quantity: Decimal
    events: int


@dataclass(frozen=True)
class Summary:
    org_id: str
    team_id: str | None
    since: datetime
    until: datetime
    group_by: GroupBy
    granularity: Granularity | None
    rows: list[SummaryRow]

    def totals(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for row in self.rows:
            meter = meter_of(row.meter)
            if meter is not None and meter.aggregation in (Aggregation.MAX, Aggregation.LATEST):
                continue  # picking, not adding: no total across groups and buckets
            out[row.meter] = out.get(row.meter, _ZERO) + row.quantity
        return out


def _range(
    since: datetime | None, until: datetime | None, *, now: datetime
) -> tuple[datetime, datetime]:
    # By default up to now, the current hour included.
    end = until or hour_of(now) + timedelta(hours=1)
    start = since or end - timedelta(days=30)
    if start.tzinfo is None or end.tzinfo is None:
        raise Unprocessable("since and until need a timezone (e.g. Z)", code="invalid_range")
    start = hour_of(start)
    end = hour_of(end) + (timedelta(hours=1) if hour_of(end) != end else timedelta(0))
    if start >= end:
        raise Unprocessable("since must be before until", code="invalid_range")
    if end - start > MAX_RANGE:
        raise Unprocessable("A summary covers at most 400 days", code="invalid_range")
    return start, end


def _bucket(hour: datetime, granularity: Granularity | None) -> datetime | None:
    if granularity is None:
        return None
    if granularity == "day":
        return hour.replace(hour=0)
    return hour


def summarize(
    session: Session,
    *,
    org_id: str,
    team_id: str | None,
    since: datetime | None,
    until: datetime | None,
    group_by: GroupBy,
    granularity: Granularity | None,
    now: datetime,
) -> Summary:
    start, end = _range(since, until, now=now)
    if granularity == "hour" and end - start > MAX_HOURLY_RANGE:
        raise Unprocessable("Hourly summaries cover at most 35 days", code="invalid_range")
    by_hour = granularity is not None
    rows = repository.rollup_rows(
        session,
        org_id=org_id,
        team_id=team_id,
        since=start,
        until=end,
        group_by=group_by,
        by_hour=by_hour,
    )
    acc: dict[tuple[str, str | None, datetime | None], list[Any]] = {}
    for meter_key, group, hour, quantity, events, max_quantity, _weighted in rows:
        meter = meter_of(meter_key)
        if meter is None or meter.aggregation in (
            Aggregation.LATEST,
            Aggregation.TIME_WEIGHTED_SUM,
        ):
            continue
        key = (meter_key, _group(group, group_by), _bucket(hour, granularity))
        entry = acc.setdefault(key, [_ZERO, 0])
        if meter.aggregation is Aggregation.MAX:
            entry[0] = max(entry[0], max_quantity)
        else:
            entry[0] += quantity
        entry[1] += int(events)
    out = [SummaryRow(m, g, b, q, n) for (m, g, b), (q, n) in acc.items()]
    out += _latest_rows(session, org_id, team_id, start, end, group_by, granularity)
    out += _time_weighted_rows(session, org_id, team_id, start, end, group_by, granularity)
    out.sort(key=lambda r: (r.meter, r.group or "", r.bucket or start))
    return Summary(org_id, team_id, start, end, group_by, granularity, out)


def _group(group: str | None, group_by: GroupBy) -> str | None:
    """A `rollup_rows` row's group as a summary shows it: none when grouping by meter alone
    (the group column is then the meter again)."""
    return None if group_by == "meter" else group


def _group_value(row: UsageRollup, group_by: GroupBy) -> str | None:
    column = {"meter": None, "member": "user_id", "provider": "provider", "model": "model"}
    name = column[group_by]
    return None if name is None else str(getattr(row, name))


def _latest_rows(
    session: Session,
    org_id: str,
    team_id: str | None,
    start: datetime,
    end: datetime,
    group_by: GroupBy,
    granularity: Granularity | None,
) -> list[SummaryRow]:
    meters = [k for k in _meters_with(Aggregation.LATEST)]
    if not meters:
        return []
    picked: dict[tuple[str, str | None, datetime | None], tuple[datetime, Decimal, int]] = {}
    for row in repository.latest_rollups(
        session, org_id=org_id, team_id=team_id, since=start, until=end, meters=meters
    ):
        key = (row.meter, _group_value(row, group_by), _bucket(row.hour, granularity))
        at, value, events = picked.get(key, (row.last_at, row.last_quantity, 0))
        if row.last_at >= at:
            at, value = row.last_at, row.last_quantity
        picked[key] = (at, value, events + row.events)
    return [SummaryRow(m, g, b, v, n) for (m, g, b), (_, v, n) in picked.items()]


def _meters_with(aggregation: Aggregation) -> list[str]:
    from tenantry.metering.meters import METERS

    return [k for k, m in METERS.items() if m.aggregation is aggregation]


def _time_weighted_rows(
    session: Session,
    org_id: str,
    team_id: str | None,
    start: datetime,
    end: datetime,
    group_by: GroupBy,
    granularity: Granularity | None,
) -> list[SummaryRow]:
    """Unit-months per bucket: the level at the bucket's start times its length, plus each
    change times the time it was in force within the bucket (exact, from hourly rollups)."""
    meters = _meters_with(Aggregation.TIME_WEIGHTED_SUM)
    if not meters:
        return []
    levels: dict[tuple[str, str | None], Decimal] = {}
    for meter_key, group, _hour, quantity, *_ in repository.rollup_rows(
        session,
        org_id=org_id,
        team_id=team_id,
        since=None,
        until=start,
        group_by=group_by,
        by_hour=False,
        meters=meters,
    ):
        levels[(meter_key, _group(group, group_by))] = quantity
    hours = repository.rollup_rows(
        session,
        org_id=org_id,
        team_id=team_id,
        since=start,
        until=end,
        group_by=group_by,
        by_hour=True,
        meters=meters,
    )
    changes: dict[tuple[str, str | None], list[tuple[datetime, Decimal, Decimal, int]]] = {}
    for meter_key, group, hour, quantity, events, _max, weighted in hours:
        series = (meter_key, _group(group, group_by))
        changes.setdefault(series, []).append((hour, quantity, weighted, int(events)))
        levels.setdefault(series, _ZERO)
    out: list[SummaryRow] = []
    for series, level in sorted(levels.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        out += _integrate(series, level, sorted(changes.get(series, [])), start, end, granularity)
    return out


def _buckets(start: datetime, end: datetime, granularity: Granularity | None) -> list[datetime]:
    if granularity is None:
        return [start]
    step = timedelta(hours=1) if granularity == "hour" else timedelta(days=1)
    first = _bucket(start, granularity)
    assert first is not None
    out = []
    at = first
    while at < end:
        out.append(at)
        at += step
    return out


def _integrate(
    series: tuple[str, str | None],
    level: Decimal,
    changes: Sequence[tuple[datetime, Decimal, Decimal, int]],
    start: datetime,
    end: datetime,
    granularity: Granularity | None,
) -> list[SummaryRow]:
    step = {None: end - start, "hour": timedelta(hours=1), "day": timedelta(days=1)}[granularity]
    out = []
    i = 0
    for bucket in _buckets(start, end, granularity):
        lo, hi = max(bucket, start), min(bucket + step, end)
        seconds = Decimal((hi - lo) // timedelta(seconds=1))
        integral = level * seconds
        events = 0
        while i < len(changes) and changes[i][0] < hi:
            hour, quantity, weighted, n = changes[i]
            # `weighted` runs to the end of the change's hour; carry the change to `hi`.
            tail = Decimal((hi - (hour + timedelta(hours=1))) // timedelta(seconds=1))
            integral += weighted + quantity * tail
            level += quantity
            events += n
            i += 1
        months = (integral / SECONDS_PER_UNIT_MONTH).quantize(_MICRO, rounding=ROUND_HALF_EVEN)
        if months or events or granularity is None:
            out.append(
                SummaryRow(series[0], series[1], _bucket(bucket, granularity), months, events)
            )
    return out
