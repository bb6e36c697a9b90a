"""Every query of metering, always scoped to one org (the worker's sweep says so in its name).

Writes on the hot paths are single set-based statements: `INSERT ... ON CONFLICT` for events,
rollups and counters (both dialects), and one conditional `UPDATE` to reserve against a limit.
Rows that several transactions may update (rollups, counters) are always written in key order,
so two concurrent batches cannot deadlock on PostgreSQL.

The hot statements of ingestion and admission are each dialect's own, in `metering.sql` behind
the `MeteringSql` protocol; this module picks the session's (`_sql`) and calls through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import String, Table, column, func, insert, select, text, update
from sqlalchemy.orm import Session

from tenantry.kit.db import JSONType, UTCDateTime
from tenantry.metering.meters import to_micros
from tenantry.metering.models import (
    QuotaAlert,
    Reservation,
    ReservationStatus,
    UsageEvent,
    UsageRollup,
)
from tenantry.metering.sql import MeteringSql, of_dialect
from tenantry.metering.sql.shared import EVENT_COLUMNS as EVENT_COLUMNS
from tenantry.metering.sql.shared import CounterKey as CounterKey
from tenantry.metering.sql.shared import CounterState as CounterState
from tenantry.metering.sql.shared import EventValues as EventValues
from tenantry.metering.sql.shared import PlanSource as PlanSource
from tenantry.metering.sql.sqlite import sqlite_stamp as sqlite_stamp
from tenantry.plans.models import PlanOverride


def _sql(session: Session) -> MeteringSql:
    """The hot statements of the session's dialect."""
    return of_dialect(session.get_bind().dialect.name)


# ---- plans ----


def org_plan_source(session: Session, org_id: str) -> PlanSource | None:
    """The org's catalog plan key and its overrides as stored; None if there is no such org.
    The hot paths (every request's rate limits, every admission) read the plan through this:
    the overrides as the JSON text they are stored as, which also keys the cache of built plans
    (metering.plans.effective_plan)."""
    return _sql(session).plan_source(session, org_id)


def plan_override(session: Session, org_id: str) -> PlanOverride | None:
    return session.get(PlanOverride, org_id)


# ---- events ----


def insert_new_events(session: Session, rows: Sequence[EventValues]) -> set[str]:
    """Insert the events not yet recorded for their org; the ids of those inserted."""
    if not rows:
        return set()
    return _sql(session).insert_new_events(session, rows)


def insert_events_raw(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """A plain bulk insert, the physical limit the ingestion benchmark compares against."""
    session.execute(insert(cast(Table, UsageEvent.__table__)), list(rows))


def new_unique_values(
    session: Session, *, org_id: str, values: Iterable[tuple[str, datetime, str]]
) -> set[tuple[str, datetime, str]]:
    """Record (meter, period start, value) triples; those not seen before."""
    rows = [
        {"org_id": org_id, "meter": m, "period_start": start, "value": v}
        for m, start, v in sorted(set(values))
    ]
    if not rows:
        return set()
    return _sql(session).new_unique_values(session, rows)


# ---- rollups ----


def upsert_rollups(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        _sql(session).upsert_rollups(session, list(rows))


_GROUP_COLUMNS = {
    "meter": None,
    "member": UsageRollup.user_id,
    "provider": UsageRollup.provider,
    "model": UsageRollup.model,
    "team": UsageRollup.team_id,
}


def rollup_rows(
    session: Session,
    *,
    org_id: str,
    team_id: str | None,
    since: datetime | None,
    until: datetime,
    group_by: str,
    by_hour: bool,
    meters: Sequence[str] | None = None,
) -> list[tuple[Any, ...]]:
    """Rollups of [since, until) grouped by meter, the `group_by` column and (if `by_hour`) hour:
    (meter, group, hour | None, quantity, events, max, last_at_max)."""
    t = UsageRollup
    group = _GROUP_COLUMNS[group_by]
    group_col = group if group is not None else t.meter
    hour_col = t.hour if by_hour else func.min(t.hour)
    query = select(
        t.meter,
        group_col,
        hour_col,
        func.sum(t.quantity),
        func.sum(t.events),
        func.max(t.max_quantity),
        func.sum(t.weighted),
    ).where(t.org_id == org_id, t.hour < until)
    if since is not None:
        query = query.where(t.hour >= since)
    if team_id is not None:
        query = query.where(t.team_id == team_id)
    if meters is not None:
        query = query.where(t.meter.in_(meters))
    keys: list[Any] = [t.meter, group_col] if group is not None else [t.meter]
    if by_hour:
        keys.append(t.hour)
    return [tuple(row) for row in session.execute(query.group_by(*keys))]


def team_total(
    session: Session, *, org_id: str, team_id: str, meter: str, since: datetime | None
) -> Decimal:
    """What one team contributed to a meter since `since` (all time if None), from rollups."""
    query = select(func.coalesce(func.sum(UsageRollup.quantity), 0)).where(
        UsageRollup.org_id == org_id, UsageRollup.team_id == team_id, UsageRollup.meter == meter
    )
    if since is not None:
        query = query.where(UsageRollup.hour >= since)
    return Decimal(session.execute(query).scalar_one())


def latest_rollups(
    session: Session,
    *,
    org_id: str,
    team_id: str | None,
    since: datetime,
    until: datetime,
    meters: Sequence[str],
) -> Sequence[UsageRollup]:
    """Rollup rows of `latest` meters, whose totals are picked, not added."""
    query = select(UsageRollup).where(
        UsageRollup.org_id == org_id,
        UsageRollup.meter.in_(meters),
        UsageRollup.hour >= since,
        UsageRollup.hour < until,
    )
    if team_id is not None:
        query = query.where(UsageRollup.team_id == team_id)
    return session.scalars(query).all()


# ---- counters ----


def change_counters(
    session: Session,
    *,
    org_id: str,
    used: Mapping[CounterKey, Decimal],
    reserved_release: Mapping[CounterKey, Decimal],
) -> None:
    """Add to counters' `used` and take from their `reserved`, creating counters as needed:
    one upsert, rows in key order."""
    keys = sorted(set(used) | set(reserved_release))
    if not keys:
        return
    rows = [
        {
            "org_id": org_id,
            "meter": m,
            "period": p,
            "period_start": s,
            "used": used.get((m, p, s), Decimal(0)),
            "reserved": -reserved_release.get((m, p, s), Decimal(0)),
        }
        for m, p, s in keys
    ]
    _sql(session).change_counters(session, rows)


def ensure_counters(session: Session, *, org_id: str, keys: Iterable[CounterKey]) -> None:
    rows = [
        {"org_id": org_id, "meter": m, "period": p, "period_start": s, "used": 0, "reserved": 0}
        for m, p, s in sorted(set(keys))
    ]
    if rows:
        _sql(session).ensure_counters(session, rows)


def counters(
    session: Session, *, org_id: str, keys: Iterable[CounterKey]
) -> dict[CounterKey, CounterState]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    return _sql(session).counters(session, org_id=org_id, keys=wanted)


def hold_within(
    session: Session,
    *,
    org_id: str,
    key: CounterKey,
    quantity: Decimal,
    limit: Decimal,
    then_reserve: Mapping[str, Any] | None = None,
) -> tuple[bool, CounterState | None]:
    """Hold `quantity` if used + reserved + quantity stays within `limit`, in one conditional
    UPDATE: concurrent callers are serialized by the row lock (PostgreSQL) or the database
    lock (SQLite), and each re-checks the condition against the others' holds. Returns whether
    it was held, and the counter (after the hold; as it stands when not held; None when this
    period has no counter yet). With `then_reserve`, that reservation (see
    `insert_held_reservation`) is inserted if, and only if, the hold was taken. On PostgreSQL
    all of it is one statement, one round trip, held or not."""
    return _sql(session).hold_within(
        session,
        org_id=org_id,
        key=key,
        quantity_micros=to_micros(quantity),
        limit_micros=to_micros(limit),
        then_reserve=then_reserve,
    )


def add_reserved(
    session: Session, *, org_id: str, key: CounterKey, delta: Decimal
) -> CounterState | None:
    """Add `delta` (negative: release) to a counter's `reserved`; the counter afterwards (None
    if there is no such counter)."""
    return _sql(session).add_reserved(
        session, org_id=org_id, key=key, delta_micros=to_micros(delta)
    )


def adjust_reserved(session: Session, *, org_id: str, key: CounterKey, delta: Decimal) -> None:
    add_reserved(session, org_id=org_id, key=key, delta=delta)


# ---- alerts ----


def insert_alerts(session: Session, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Insert the alerts not raised yet (once per quota, period and threshold); their ids."""
    if not rows:
        return []
    return _sql(session).insert_alerts(session, list(rows))


def alerts_of(session: Session, *, org_id: str, since: datetime | None = None) -> list[QuotaAlert]:
    query = select(QuotaAlert).where(QuotaAlert.org_id == org_id)
    if since is not None:
        query = query.where(QuotaAlert.created_at >= since)
    return list(session.scalars(query.order_by(QuotaAlert.id)))


# ---- reservations ----


def reservation(session: Session, reservation_id: str) -> Reservation | None:
    """Unscoped by design: the caller checks the principal's standing in its org (404 if none)."""
    return session.get(Reservation, reservation_id)


def move_reservation(
    session: Session,
    *,
    org_id: str,
    reservation_id: str,
    from_status: ReservationStatus,
    to_status: ReservationStatus,
    at: datetime,
    usage: dict[str, str] | None = None,
) -> bool:
    """Change a reservation's status if it still has `from_status`: the one transition that
    releases its holds happens exactly once, however many settles and sweeps race for it."""
    values: dict[str, Any] = {"status": to_status}
    if to_status == ReservationStatus.SETTLED:
        values.update(settled_at=at, usage=usage)
    result = session.execute(
        update(Reservation)
        .where(
            Reservation.org_id == org_id,
            Reservation.id == reservation_id,
            Reservation.status == from_status,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def insert_held_reservation(session: Session, row: Mapping[str, Any]) -> None:
    """A new reservation in status `held` (one Core statement: the answer is built from `row`)."""
    _sql(session).insert_held_reservation(session, row)


# Served by the index (org_id, status, expires_at); asked at every admission.
_FIRST_TO_EXPIRE = text(
    """
        SELECT id, holds, expires_at FROM usage_reservations
        WHERE org_id = :org AND status = 'held'
        ORDER BY expires_at LIMIT :limit
        """
).columns(column("id", String), column("holds", JSONType), column("expires_at", UTCDateTime()))


def first_to_expire(
    session: Session, *, org_id: str, limit: int
) -> list[tuple[str, list[dict[str, Any]], datetime]]:
    """The org's held reservations that expire first (id, holds, expiry), overdue or not."""
    rows = session.execute(_FIRST_TO_EXPIRE, {"org": org_id, "limit": limit})
    return [(r[0], r[1], r[2]) for r in rows]


def unscoped_overdue_reservations(
    session: Session, *, now: datetime, limit: int
) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """Held reservations past their expiry in every org: the worker's sweep is cross-tenant by
    nature, and each one found is then released within its own org."""
    query = (
        select(Reservation.org_id, Reservation.id, Reservation.holds)
        .where(Reservation.status == ReservationStatus.HELD, Reservation.expires_at <= now)
        .order_by(Reservation.expires_at)
        .limit(limit)
    )
    return [(r[0], r[1], r[2]) for r in session.execute(query)]


# ---- count quotas ----


def lock_quota(session: Session, *, org_id: str, quota_key: str) -> None:
    """Take the org's lock row for `quota_key` until the transaction ends (made on first use)."""
    _sql(session).lock_quota(session, org_id=org_id, quota_key=quota_key)
