"""Every query of metering, always scoped to one org (the worker's sweep says so in its name).

Writes on the hot paths are single set-based statements: `INSERT ... ON CONFLICT` for events,
rollups and counters (both dialects), and one conditional `UPDATE` to reserve against a limit.
Rows that several transactions may update (rollups, counters) are always written in key order,
so two concurrent batches cannot deadlock on PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import orjson
from psycopg.types.json import Jsonb
from sqlalchemy import (
    String,
    Table,
    and_,
    bindparam,
    case,
    column,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tenantry.kit.db import DriverStatement, JSONType, UTCDateTime, json_text
from tenantry.metering.meters import from_micros, to_micros
from tenantry.metering.models import (
    Quantity,
    QuotaAlert,
    QuotaLock,
    Reservation,
    UsageCounter,
    UsageEvent,
    UsageRollup,
    UsageUniqueValue,
)
from tenantry.plans.models import PlanOverride
from tenantry.tenancy.models import Organization, OrgMembership


def _insert(session: Session, model: Any) -> Any:
    """A Core `INSERT` of the session's dialect, which knows `ON CONFLICT` (SQLite and
    PostgreSQL). Core, not ORM: bulk rows skip the ORM's per-row bookkeeping."""
    return _insert_of(session.get_bind().dialect.name)(model.__table__)


def _insert_of(dialect: str) -> Callable[[Table], Any]:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


_BUILT: dict[tuple[str, str], Any] = {}


def _built(session: Session, name: str, build: Callable[[Callable[[Table], Any]], Any]) -> Any:
    """The statement `name`, built once per dialect by `build(insert)`: building an upsert
    construct and its cache key on every call cost more than running it."""
    dialect = session.get_bind().dialect.name
    statement = _BUILT.get((dialect, name))
    if statement is None:
        statement = _BUILT[(dialect, name)] = build(_insert_of(dialect))
    return statement


# ---- plans ----


def org_plan(session: Session, org_id: str) -> tuple[str, PlanOverride | None] | None:
    """The org's catalog plan key and its overrides, in one read; None if there is no such org."""
    row = session.execute(
        select(Organization.plan, PlanOverride)
        .outerjoin(PlanOverride, PlanOverride.org_id == Organization.id)
        .where(Organization.id == org_id)
    ).first()
    if row is None:
        return None
    return str(row[0]), row[1]


# The hot paths (every request's rate limits, every admission) read the plan through this: plain
# SQL, the overrides as the JSON text they are stored as, which also keys the cache of built
# plans (metering.service.effective_plan).
_PLAN_SOURCE_SQL = """
SELECT o.plan, p.org_id, p.name, TXT(p.quotas), TXT(p.rate_limits), TXT(p.overage_rates)
FROM organizations o LEFT JOIN plan_overrides p ON p.org_id = o.id
WHERE o.id = :org
"""
_PLAN_SOURCE = {
    "sqlite": text(_PLAN_SOURCE_SQL.replace("TXT(", "(")),
    "postgresql": text(re.sub(r"TXT\((.+?)\)", r"CAST(\1 AS TEXT)", _PLAN_SOURCE_SQL)),
}

# (catalog plan key, override name, quotas, rate limits, overage rates as JSON text); the
# override's parts are all None when the org has no override row.
PlanSource = tuple[str, str | None, str | None, str | None, str | None]


def org_plan_source(session: Session, org_id: str) -> PlanSource | None:
    """The org's catalog plan key and its overrides as stored; None if there is no such org."""
    row = session.execute(_PLAN_SOURCE[session.get_bind().dialect.name], {"org": org_id}).first()
    if row is None:
        return None
    plan, override_org, name, quotas, rate_limits, overage = row
    if override_org is None:
        return (str(plan), None, None, None, None)
    return (str(plan), name, quotas or "{}", rate_limits or "{}", overage or "{}")


def plan_override(session: Session, org_id: str) -> PlanOverride | None:
    return session.get(PlanOverride, org_id)


# ---- events ----


# PostgreSQL takes a whole batch as one JSON array of objects, unpacked by json_to_recordset:
# one short statement and one parameter, which orjson writes in C. One array per column through
# `unnest` took twice as long: the driver writes text arrays element by element, and the server
# casts each of them.
_PG_NEW_EVENTS = text(
    """
    INSERT INTO usage_events
        (org_id, event_id, meter, quantity, timestamp, team_id, user_id, api_key_id, provider,
         model, dimensions)
    SELECT e.org_id, e.event_id, e.meter, e.quantity, e.timestamp, e.team_id, e.user_id,
           e.api_key_id, e.provider, e.model, e.dimensions
    FROM json_to_recordset(CAST(:events AS json)) AS e(
        org_id text, event_id text, meter text, quantity bigint, timestamp timestamptz,
        team_id text, user_id text, api_key_id text, provider text, model text, dimensions jsonb
    )
    ON CONFLICT (org_id, event_id) DO NOTHING
    RETURNING event_id
    """
)


# A new event as `insert_new_events` takes it: a tuple in this column order (a dict per event
# costs more to build than the insert costs per row).
EVENT_COLUMNS = (
    "org_id", "event_id", "meter", "quantity", "timestamp", "team_id", "user_id", "api_key_id",
    "provider", "model", "dimensions",
)  # fmt: skip
EventValues = tuple[
    str, str, str, Decimal, datetime, str | None, str | None, str | None, str | None, str | None,
    Mapping[str, str],
]  # fmt: skip


def _pg_events(rows: Sequence[EventValues]) -> str:
    return orjson.dumps(
        [
            {
                "org_id": o,
                "event_id": e,
                "meter": m,
                "quantity": to_micros(q),
                "timestamp": t if t.tzinfo is UTC else _aware(t),
                "team_id": team,
                "user_id": user,
                "api_key_id": key,
                "provider": p,
                "model": model,
                "dimensions": d,
            }
            for o, e, m, q, t, team, user, key, p, model, d in rows
        ],
        default=dict,  # dimensions given as a read-only mapping
    ).decode()


# SQLite takes a batch as an `executemany` of plain tuples through the driver, each value
# already in the form SQLAlchemy's types would store it (integer millionths, naive UTC text,
# JSON text): the driver binds them in C, where binding 11 parameters per row through the types
# cost more than the insert itself, and one JSON array unpacked by `json_each` cost twice the
# insert. `executemany` returns no rows, so the ids inserted are read back only when some were
# replays (see `insert_new_events`).
_SQLITE_NEW_EVENTS = (
    "INSERT INTO usage_events (org_id, event_id, meter, quantity, timestamp, team_id, user_id, "
    "api_key_id, provider, model, dimensions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (org_id, event_id) DO NOTHING"
)
# The rows one statement inserted into a rowid table are the last `n` rowids: SQLite gives a new
# row the largest rowid so far plus one, and this transaction is the only writer.
_SQLITE_LAST_INSERTED = "SELECT event_id FROM usage_events WHERE rowid > last_insert_rowid() - ?"
_NO_DIMENSIONS_TEXT = "{}"


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:  # as UTCDateTime refuses it: a naive time means no one knows which
        raise ValueError("naive datetime given to a UTC column")
    return at


def sqlite_stamp(at: datetime) -> str:
    """An aware time as UTCDateTime stores it on SQLite (naive UTC in SQLAlchemy's DATETIME
    text, microseconds always written), without the two type processors' cost per value."""
    utc = at if at.tzinfo is UTC else _aware(at).astimezone(UTC)
    return utc.isoformat(" ", "microseconds")[:26]


def _sqlite_rows(rows: Sequence[EventValues]) -> list[tuple[Any, ...]]:
    return [
        (o, e, m, to_micros(q), sqlite_stamp(t), team, user, key, p, model,
         json_text(d) if d else _NO_DIMENSIONS_TEXT)
        for o, e, m, q, t, team, user, key, p, model, d in rows
    ]  # fmt: skip


def insert_new_events(session: Session, rows: Sequence[EventValues]) -> set[str]:
    """Insert the events not yet recorded for their org; the ids of those inserted."""
    if not rows:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        return set(session.scalars(_PG_NEW_EVENTS, {"events": _pg_events(rows)}))
    connection = session.connection()
    inserted = connection.exec_driver_sql(_SQLITE_NEW_EVENTS, _sqlite_rows(rows)).rowcount
    if inserted == len(rows):
        return {row[1] for row in rows}
    if inserted == 0:
        return set()
    return set(connection.exec_driver_sql(_SQLITE_LAST_INSERTED, (inserted,)).scalars())


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
    stmt = _built(session, "new_unique_values", _new_unique_values)
    return {(r[0], r[1], r[2]) for r in session.execute(stmt, rows)}


def _new_unique_values(insert: Callable[[Table], Any]) -> Any:
    t = UsageUniqueValue
    return (
        insert(cast(Table, t.__table__))
        .on_conflict_do_nothing()
        .returning(t.meter, t.period_start, t.value)
    )


# ---- rollups ----


def upsert_rollups(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.execute(_built(session, "upsert_rollups", _upsert_rollups), list(rows))


def _upsert_rollups(insert: Callable[[Table], Any]) -> Any:
    t = UsageRollup
    stmt = insert(cast(Table, t.__table__))
    new = stmt.excluded
    later = new.last_at >= t.last_at
    return stmt.on_conflict_do_update(
        index_elements=["org_id", "hour", "meter", "team_id", "user_id", "provider", "model"],
        set_={
            "quantity": t.quantity + new.quantity,
            "events": t.events + new.events,
            "max_quantity": case(
                (new.max_quantity > t.max_quantity, new.max_quantity), else_=t.max_quantity
            ),
            "last_quantity": case((later, new.last_quantity), else_=t.last_quantity),
            "last_at": case((later, new.last_at), else_=t.last_at),
            "weighted": t.weighted + new.weighted,
        },
    )


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


CounterKey = tuple[str, str, datetime]  # (meter, period, period start)


@dataclass(frozen=True)
class CounterState:
    used: Decimal
    reserved: Decimal


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
    session.execute(_built(session, "change_counters", _change_counters), rows)


def _change_counters(insert: Callable[[Table], Any]) -> Any:
    stmt = insert(cast(Table, UsageCounter.__table__))
    return stmt.on_conflict_do_update(
        index_elements=["org_id", "meter", "period", "period_start"],
        set_={
            "used": UsageCounter.used + stmt.excluded.used,
            "reserved": UsageCounter.reserved + stmt.excluded.reserved,
        },
    )


def ensure_counters(session: Session, *, org_id: str, keys: Iterable[CounterKey]) -> None:
    rows = [
        {"org_id": org_id, "meter": m, "period": p, "period_start": s, "used": 0, "reserved": 0}
        for m, p, s in sorted(set(keys))
    ]
    if rows:
        session.execute(_insert(session, UsageCounter).on_conflict_do_nothing(), rows)


def _counters_statement(n: int) -> Any:
    """The read of `n` counters by key (plain SQL, made once per `n`)."""
    found = _COUNTERS_BY_SIZE.get(n)
    if found is None:
        matches = " OR ".join(
            f"(meter = :m{i} AND period = :p{i} AND period_start = :s{i})" for i in range(n)
        )
        found = (
            text(
                # Only placeholders are put together here, never a value.
                "SELECT meter, period, period_start, used, reserved FROM usage_counters "  # noqa: S608
                f"WHERE org_id = :org AND ({matches})"
            )
            .bindparams(*(bindparam(f"s{i}", type_=UTCDateTime()) for i in range(n)))
            .columns(
                column("meter", String),
                column("period", String),
                column("period_start", UTCDateTime()),
                *_COUNTER_COLUMNS,
            )
        )
        _COUNTERS_BY_SIZE[n] = found
    return found


_COUNTERS_BY_SIZE: dict[int, Any] = {}


def counters(
    session: Session, *, org_id: str, keys: Iterable[CounterKey]
) -> dict[CounterKey, CounterState]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    params: dict[str, Any] = {"org": org_id}
    for i, (meter, period, start) in enumerate(wanted):
        params.update({f"m{i}": meter, f"p{i}": period, f"s{i}": start})
    rows = session.execute(_counters_statement(len(wanted)), params)
    return {(m, p, s): CounterState(u, r) for m, p, s, u, r in rows}


def _quantity(value: Decimal) -> Any:
    """A bound quantity in millionths: arithmetic on columns does not carry their type to
    plain Python values, so quantities in expressions are bound explicitly."""
    return literal(value, type_=Quantity())


def _counter_is(org_id: str, key: CounterKey) -> Any:
    meter, period, start = key
    return and_(
        UsageCounter.org_id == org_id,
        UsageCounter.meter == meter,
        UsageCounter.period == period,
        UsageCounter.period_start == start,
    )


def reserve_within(
    session: Session, *, org_id: str, key: CounterKey, quantity: Decimal, limit: Decimal
) -> bool:
    """Hold `quantity` if used + reserved + quantity stays within `limit`, in one statement:
    concurrent callers are serialized by the row lock and each sees the others' holds."""
    c = UsageCounter
    q = _quantity(quantity)
    result = session.execute(
        update(c)
        .where(_counter_is(org_id, key), c.used + c.reserved + q <= _quantity(limit))
        .values(reserved=c.reserved + q)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# Admission's statements, as plain SQL with typed parameters and result columns: each runs once or
# twice per admission, where building ORM statements would cost more than the database work.
_COUNTER_PARAMS = (bindparam("start", type_=UTCDateTime()),)
_COUNTER_COLUMNS = (column("used", Quantity()), column("reserved", Quantity()))
_HOLD_WITHIN_SQL = """
    UPDATE usage_counters SET reserved = reserved + :q
    WHERE org_id = :org AND meter = :meter AND period = :period AND period_start = :start
      AND used + reserved + :q <= :limit
    RETURNING used, reserved
"""
_HOLD_WITHIN = text(_HOLD_WITHIN_SQL).bindparams(*_COUNTER_PARAMS).columns(*_COUNTER_COLUMNS)
_ADD_RESERVED = (
    text(
        """
        UPDATE usage_counters SET reserved = reserved + :q
        WHERE org_id = :org AND meter = :meter AND period = :period AND period_start = :start
        RETURNING used, reserved
        """
    )
    .bindparams(*_COUNTER_PARAMS)
    .columns(*_COUNTER_COLUMNS)
)


def _counter_params(org_id: str, key: CounterKey) -> dict[str, Any]:
    meter, period, start = key
    return {"org": org_id, "meter": meter, "period": period, "start": start}


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
    params = _counter_params(org_id, key)
    params.update(q=to_micros(quantity), limit=to_micros(limit))
    if session.get_bind().dialect.name == "postgresql":
        if then_reserve is None:
            row = _PG_HOLD.first(session, params)
        else:
            reservation = {**then_reserve, "estimate": Jsonb(then_reserve["estimate"])}
            reservation["holds"] = Jsonb(then_reserve["holds"])
            row = _PG_HOLD_AND_RESERVE.first(session, {**params, **reservation})
        if row is None:
            return False, None
        used, reserved, taken = row
        return taken, CounterState(from_micros(used), from_micros(reserved))
    row = session.execute(_HOLD_WITHIN, params).first()
    if row is None:
        return False, counters(session, org_id=org_id, keys=[key]).get(key)
    if then_reserve is not None:
        insert_held_reservation(session, then_reserve)
    return True, CounterState(row[0], row[1])


def add_reserved(
    session: Session, *, org_id: str, key: CounterKey, delta: Decimal
) -> CounterState | None:
    """Add `delta` (negative: release) to a counter's `reserved`; the counter afterwards (None
    if there is no such counter)."""
    params = _counter_params(org_id, key)
    params["q"] = to_micros(delta)
    row = session.execute(_ADD_RESERVED, params).first()
    return None if row is None else CounterState(row[0], row[1])


def adjust_reserved(session: Session, *, org_id: str, key: CounterKey, delta: Decimal) -> None:
    add_reserved(session, org_id=org_id, key=key, delta=delta)


# ---- alerts ----


def insert_alerts(session: Session, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Insert the alerts not raised yet (once per quota, period and threshold); their ids."""
    if not rows:
        return []
    stmt = _built(session, "insert_alerts", _insert_alerts)
    return list(session.scalars(stmt, list(rows)))


def _insert_alerts(insert: Callable[[Table], Any]) -> Any:
    alerts = cast(Table, QuotaAlert.__table__)
    return insert(alerts).on_conflict_do_nothing().returning(QuotaAlert.id)


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
    from_status: str,
    to_status: str,
    at: datetime,
    usage: dict[str, str] | None = None,
) -> bool:
    """Change a reservation's status if it still has `from_status`: the one transition that
    releases its holds happens exactly once, however many settles and sweeps race for it."""
    values: dict[str, Any] = {"status": to_status}
    if to_status == "settled":
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


_RESERVATION_COLUMNS = """
    INSERT INTO usage_reservations
        (id, org_id, team_id, user_id, api_key_id, action, provider, model, status, estimate,
         holds, created_at, expires_at)
"""
_RESERVATION_VALUES = """
    :id, :org_id, :team_id, :user_id, :api_key_id, :action, :provider, :model, 'held',
    :estimate, :holds, :created_at, :expires_at
"""
_RESERVATION_PARAMS = (
    bindparam("estimate", type_=JSONType),
    bindparam("holds", type_=JSONType),
    bindparam("created_at", type_=UTCDateTime()),
    bindparam("expires_at", type_=UTCDateTime()),
)
_INSERT_RESERVATION = text(f"{_RESERVATION_COLUMNS} VALUES ({_RESERVATION_VALUES})").bindparams(
    *_RESERVATION_PARAMS
)
# A hold on PostgreSQL, with the counter as it stands when the hold does not fit (for the reason
# and what remains), in one statement: the counter's row is read only when the UPDATE took
# nothing. That read sees the statement's snapshot, this transaction's own changes included.
_PG_COUNTER_IF_NOT_HELD = """
    SELECT used, reserved, TRUE AS taken FROM held
    UNION ALL
    SELECT used, reserved, FALSE FROM usage_counters
    WHERE org_id = :org AND meter = :meter AND period = :period AND period_start = :start
      AND NOT EXISTS (SELECT 1 FROM held)
"""
_PG_HOLD = DriverStatement(f"WITH held AS ({_HOLD_WITHIN_SQL}) {_PG_COUNTER_IF_NOT_HELD}")
# The last hold of an admission and its reservation in one statement: the INSERT selects from
# the UPDATE's returned row, so the reservation exists exactly when the hold was taken.
_PG_HOLD_AND_RESERVE = DriverStatement(
    f"""
    WITH held AS ({_HOLD_WITHIN_SQL}),
    made AS ({_RESERVATION_COLUMNS} SELECT {_RESERVATION_VALUES} FROM held)
    {_PG_COUNTER_IF_NOT_HELD}
    """  # noqa: S608 (put together from this module's constants only)
)


def insert_held_reservation(session: Session, row: Mapping[str, Any]) -> None:
    """A new reservation in status `held` (one Core statement: the answer is built from `row`)."""
    session.execute(_INSERT_RESERVATION, dict(row))


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
        .where(Reservation.status == "held", Reservation.expires_at <= now)
        .order_by(Reservation.expires_at)
        .limit(limit)
    )
    return [(r[0], r[1], r[2]) for r in session.execute(query)]


# ---- count quotas ----


def lock_quota(session: Session, *, org_id: str, quota_key: str) -> None:
    """Take the org's lock row for `quota_key` until the transaction ends (made on first use)."""
    session.execute(
        _insert(session, QuotaLock).on_conflict_do_nothing(),
        [{"org_id": org_id, "quota_key": quota_key}],
    )
    query = select(QuotaLock.org_id).where(
        QuotaLock.org_id == org_id, QuotaLock.quota_key == quota_key
    )
    # SQLite has no row locks; its writers hold the database lock from BEGIN IMMEDIATE instead.
    session.execute(query.with_for_update())


def count_org_members(session: Session, *, org_id: str) -> int:
    query = select(func.count()).select_from(OrgMembership).where(OrgMembership.org_id == org_id)
    return int(session.execute(query).scalar_one())


# ---- references named in events ----


# Which of the ids a batch names are the org's: built once (a batch names a few, every time).
_TEAMS_IN_ORG = text("SELECT id FROM teams WHERE org_id = :org AND id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)
_MEMBERS_IN_ORG = text(
    "SELECT user_id FROM org_memberships WHERE org_id = :org AND user_id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_API_KEYS_IN_ORG = text("SELECT id FROM api_keys WHERE org_id = :org AND id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)


def _ids_in_org(session: Session, statement: Any, org_id: str, ids: Iterable[str]) -> set[str]:
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    return set(session.scalars(statement, {"org": org_id, "ids": wanted}))


def teams_in_org(session: Session, *, org_id: str, team_ids: Iterable[str]) -> set[str]:
    return _ids_in_org(session, _TEAMS_IN_ORG, org_id, team_ids)


def members_in_org(session: Session, *, org_id: str, user_ids: Iterable[str]) -> set[str]:
    return _ids_in_org(session, _MEMBERS_IN_ORG, org_id, user_ids)


def api_keys_in_org(session: Session, *, org_id: str, key_ids: Iterable[str]) -> set[str]:
    return _ids_in_org(session, _API_KEYS_IN_ORG, org_id, key_ids)
