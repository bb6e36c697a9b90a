"""Recording usage: the one write path for usage events.

`record_events` (and `record_usage`, `record_usage_batch`) is used by the ingestion endpoint
(`metering.ingest`), by admission's settle and by throttling (the API's own requests as
`api_calls`). In one transaction it inserts the new events (replays are skipped by id),
aggregates the batch in memory, and upserts the hourly rollups and the per-period counters the
batch touched: a batch of 1,000 events is a handful of statements, and no reader ever scans raw
events. The counters it moves may raise quota alerts (`metering.alerts`). Domains above that
count usage in their own terms (spend's budgets) listen through `on_usage_recorded`, in the same
transaction, after metering's own rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from types import MappingProxyType
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from tenantry.kit.clock import SystemClock
from tenantry.metering import repository
from tenantry.metering.alerts import raise_alerts
from tenantry.metering.meters import QUANTITY_DECIMALS, Aggregation, Meter, meter_of
from tenantry.metering.periods import EPOCH, counter_key, period_start
from tenantry.metering.repository import CounterKey

_HOUR = timedelta(hours=1)

_MICRO = Decimal(1).scaleb(-QUANTITY_DECIMALS)

NO_DIMENSIONS: Mapping[str, str] = MappingProxyType({})


class UsageEvent(NamedTuple):
    """One usage event to record (validated by the caller: a known meter, a quantity with at
    most six decimal places). A tuple: batches make a thousand at a time."""

    event_id: str
    meter: str
    quantity: Decimal
    timestamp: datetime
    team_id: str | None = None
    user_id: str | None = None
    api_key_id: str | None = None
    dimensions: Mapping[str, str] = NO_DIMENSIONS


RollupKey = tuple[datetime, str, str, str, str, str]  # hour, meter, team, user, provider, model


@dataclass
class _Rollup:
    quantity: Decimal = Decimal(0)
    events: int = 0
    max_quantity: Decimal | None = None
    last_quantity: Decimal = Decimal(0)
    last_at: datetime = EPOCH
    weighted: Decimal = Decimal(0)

    def add(self, event: UsageEvent, contribution: Decimal, weighted: Decimal) -> None:
        self.quantity += contribution
        self.events += 1
        if self.max_quantity is None or event.quantity > self.max_quantity:
            self.max_quantity = event.quantity
        if event.timestamp >= self.last_at:
            self.last_quantity, self.last_at = event.quantity, event.timestamp
        self.weighted += weighted


def _weighted(event: UsageEvent, hour: datetime) -> Decimal:
    """change x seconds from the change to the end of its hour (to a millionth)."""
    seconds = Decimal((hour + timedelta(hours=1) - event.timestamp) / timedelta(microseconds=1))
    return (event.quantity * seconds / 1_000_000).quantize(_MICRO, rounding=ROUND_HALF_EVEN)


def _dimension(event: UsageEvent, name: str) -> str:
    return str(event.dimensions.get(name) or "")


def _fresh_unique(
    session: Session, org_id: str, events: Sequence[UsageEvent]
) -> set[tuple[str, datetime, str]]:
    """The (meter, period start, value) of unique-count events seen for the first time."""
    wanted: set[tuple[str, datetime, str]] = set()
    for event in events:
        meter = meter_of(event.meter)
        if meter is not None and meter.aggregation is Aggregation.UNIQUE_COUNT:
            wanted.add(_unique_value(meter, event))
    if not wanted:
        return set()
    return repository.new_unique_values(session, org_id=org_id, values=wanted)


def _unique_value(meter: Meter, event: UsageEvent) -> tuple[str, datetime, str]:
    value = _dimension(event, meter.unique_by or "") or f"event:{event.event_id}"
    return (meter.key, period_start(meter.reset, event.timestamp), value)


@dataclass
class _Tally:
    rollups: dict[RollupKey, _Rollup] = field(default_factory=dict)
    used: dict[CounterKey, Decimal] = field(default_factory=dict)


def _tally(session: Session, org_id: str, events: Sequence[UsageEvent]) -> _Tally:
    fresh = _fresh_unique(session, org_id, events)
    tally = _Tally()
    # Events of a batch mostly share a few hours: each hour's start and counter keys are worked
    # out once, keyed by the hour's number since the epoch (cheaper to find than to build).
    hours: dict[int, datetime] = {}
    counter_keys: dict[tuple[str, int], CounterKey] = {}
    zero, one = Decimal(0), Decimal(1)
    for event in events:
        meter = meter_of(event.meter)
        if meter is None:
            raise ValueError(f"unknown meter {event.meter!r}")
        if meter.aggregation is Aggregation.COUNT:
            contribution = one
        elif meter.aggregation is Aggregation.UNIQUE_COUNT:
            value = _unique_value(meter, event)
            contribution = one if value in fresh else zero
            fresh.discard(value)  # a value repeated within the batch counts once
        else:
            contribution = event.quantity
        number = (event.timestamp - EPOCH) // _HOUR
        hour = hours.get(number)
        if hour is None:
            hour = hours[number] = EPOCH + number * _HOUR
        dims = event.dimensions
        key: RollupKey = (
            hour,
            meter.key,
            event.team_id or "",
            event.user_id or "",
            str(dims.get("provider") or ""),
            str(dims.get("model") or ""),
        )
        weighted = (
            _weighted(event, hour) if meter.aggregation is Aggregation.TIME_WEIGHTED_SUM else zero
        )
        rollup = tally.rollups.get(key)
        if rollup is None:
            rollup = tally.rollups[key] = _Rollup()
        rollup.add(event, contribution, weighted)
        ckey = counter_keys.get((meter.key, number))
        if ckey is None:
            ckey = counter_keys[(meter.key, number)] = counter_key(meter, hour)
        tally.used[ckey] = tally.used.get(ckey, zero) + contribution
    return tally


def _event_values(org_id: str, event: UsageEvent) -> repository.EventValues:
    dims = event.dimensions
    return (
        org_id, event.event_id, event.meter, event.quantity, event.timestamp, event.team_id,
        event.user_id, event.api_key_id, dims.get("provider"), dims.get("model"),
        dims if type(dims) is dict else dict(dims),
    )  # fmt: skip


def _event_row(org_id: str, event: UsageEvent) -> dict[str, Any]:
    """The same values as a row dict (what a plain insert takes)."""
    return dict(zip(repository.EVENT_COLUMNS, _event_values(org_id, event), strict=True))


def _rollup_rows(org_id: str, rollups: dict[RollupKey, _Rollup]) -> list[dict[str, Any]]:
    rows = []
    for (hour, meter, team, user, provider, model), r in sorted(rollups.items()):
        rows.append(
            {
                "org_id": org_id,
                "hour": hour,
                "meter": meter,
                "team_id": team,
                "user_id": user,
                "provider": provider,
                "model": model,
                "quantity": r.quantity,
                "events": r.events,
                "max_quantity": r.max_quantity or Decimal(0),
                "last_quantity": r.last_quantity,
                "last_at": r.last_at,
                "weighted": r.weighted,
            }
        )
    return rows


# (session, org, the events recorded now (replays left out), holds of admission holders that the
# settle of their reservation releases, now). Called once per recording, after metering's rows
# are written, so the rows listeners lock come after the counters on every path.
UsageListener = Callable[
    [Session, str, Sequence[UsageEvent], Sequence[Mapping[str, Any]], datetime], None
]
USAGE_LISTENERS: list[UsageListener] = []


def on_usage_recorded(listener: UsageListener) -> None:
    if listener not in USAGE_LISTENERS:
        USAGE_LISTENERS.append(listener)


@dataclass(frozen=True)
class Recorded:
    inserted: set[str]  # ids of the events recorded now (the others were replays)
    over_limit: list[str]  # metered quotas past their limit after this batch


def record_events(
    session: Session,
    org_id: str,
    events: Sequence[UsageEvent],
    *,
    now: datetime | None = None,
    release: Mapping[CounterKey, Decimal] | None = None,
    held: Sequence[Mapping[str, Any]] = (),
) -> Recorded:
    """Record events idempotently in the caller's transaction.

    `release` lowers counters' `reserved` in the same statements that raise `used` (settle), so
    every counter row is locked once, in key order, and concurrent writers cannot deadlock.
    `held` are the admission holders' holds that settle releases; the usage listeners get them.
    """
    first: dict[str, UsageEvent] = {}
    for event in events:
        first.setdefault(event.event_id, event)
    inserted = repository.insert_new_events(
        session, [_event_values(org_id, e) for e in first.values()]
    )
    new = [e for e in first.values() if e.event_id in inserted]
    tally = _tally(session, org_id, new)
    repository.upsert_rollups(session, _rollup_rows(org_id, tally.rollups))
    repository.change_counters(
        session, org_id=org_id, used=tally.used, reserved_release=release or {}
    )
    over_limit: list[str] = []
    now = now or SystemClock().now()
    if tally.used:
        over_limit = raise_alerts(session, org_id, tally.used.keys(), now=now)
    if new or held:
        for listener in USAGE_LISTENERS:
            listener(session, org_id, new, held, now)
    return Recorded(inserted, over_limit)


def record_usage_batch(session: Session, org_id: str, events: Sequence[UsageEvent]) -> int:
    """Record events idempotently in the caller's transaction; how many were new."""
    return len(record_events(session, org_id, events).inserted)


def record_usage(
    session: Session,
    *,
    org_id: str,
    meter: str,
    quantity: Decimal,
    timestamp: datetime,
    event_id: str,
    team_id: str | None = None,
    user_id: str | None = None,
    api_key_id: str | None = None,
    dimensions: dict[str, str] | None = None,
) -> bool:
    """Record one usage event idempotently; False if `event_id` was already recorded."""
    event = UsageEvent(
        event_id=event_id,
        meter=meter,
        quantity=quantity,
        timestamp=timestamp,
        team_id=team_id,
        user_id=user_id,
        api_key_id=api_key_id,
        dimensions=dict(dimensions or {}),
    )
    return record_usage_batch(session, org_id, [event]) == 1
