"""What both dialects' hot statements share: the shapes they take and give, the SQL text that is
the same on both, and the statements that run the same way on both (`CommonSql`, which each
dialect's class extends). Upserts are written once here, for the `INSERT` construct of a dialect
(`postgresql.insert`, `sqlite.insert`), and built once by each dialect's module."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import String, Table, bindparam, case, column, select, text
from sqlalchemy.orm import Session

from tenantry.kit.db import JSONType, UTCDateTime
from tenantry.metering.models import (
    Quantity,
    QuotaAlert,
    QuotaLock,
    UsageCounter,
    UsageRollup,
    UsageUniqueValue,
)

# The `insert` of a dialect, which knows `ON CONFLICT` (SQLite and PostgreSQL).
InsertOf = Callable[[Table], Any]

# ---- shapes ----

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

# (catalog plan key, override name, quotas, rate limits, overage rates as JSON text); the
# override's parts are all None when the org has no override row.
PlanSource = tuple[str, str | None, str | None, str | None, str | None]

CounterKey = tuple[str, str, datetime]  # (meter, period, period start)

UniqueValue = tuple[str, datetime, str]  # (meter, period start, value)


@dataclass(frozen=True)
class CounterState:
    used: Decimal
    reserved: Decimal


# ---- the plan source ----

# Written with TXT(...) where a JSON column is read as its stored text; each dialect puts its own
# spelling in (SQLite stores JSON as text already, PostgreSQL casts its jsonb).
PLAN_SOURCE_SQL = """
SELECT o.plan, p.org_id, p.name, TXT(p.quotas), TXT(p.rate_limits), TXT(p.overage_rates)
FROM organizations o LEFT JOIN plan_overrides p ON p.org_id = o.id
WHERE o.id = :org
"""


def plan_source_of(row: Any) -> PlanSource | None:
    """The plan source from the row of the dialect's plan-source statement (None: no org)."""
    if row is None:
        return None
    plan, override_org, name, quotas, rate_limits, overage = row
    if override_org is None:
        return (str(plan), None, None, None, None)
    return (str(plan), name, quotas or "{}", rate_limits or "{}", overage or "{}")


# ---- upserts, written once for a dialect's INSERT ----


def new_unique_values_statement(insert: InsertOf) -> Any:
    t = UsageUniqueValue
    return (
        insert(cast(Table, t.__table__))
        .on_conflict_do_nothing()
        .returning(t.meter, t.period_start, t.value)
    )


def upsert_rollups_statement(insert: InsertOf) -> Any:
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


def change_counters_statement(insert: InsertOf) -> Any:
    stmt = insert(cast(Table, UsageCounter.__table__))
    return stmt.on_conflict_do_update(
        index_elements=["org_id", "meter", "period", "period_start"],
        set_={
            "used": UsageCounter.used + stmt.excluded.used,
            "reserved": UsageCounter.reserved + stmt.excluded.reserved,
        },
    )


def ensure_counters_statement(insert: InsertOf) -> Any:
    return insert(cast(Table, UsageCounter.__table__)).on_conflict_do_nothing()


def insert_alerts_statement(insert: InsertOf) -> Any:
    alerts = cast(Table, QuotaAlert.__table__)
    return insert(alerts).on_conflict_do_nothing().returning(QuotaAlert.id)


def make_quota_lock_statement(insert: InsertOf) -> Any:
    return insert(cast(Table, QuotaLock.__table__)).on_conflict_do_nothing()


# ---- counters and reservations: SQL text both dialects run ----


# Admission's statements, as plain SQL with typed parameters and result columns: each runs once or
# twice per admission, where building ORM statements would cost more than the database work.
COUNTER_PARAMS = (bindparam("start", type_=UTCDateTime()),)
COUNTER_COLUMNS = (column("used", Quantity()), column("reserved", Quantity()))
HOLD_WITHIN_SQL = """
    UPDATE usage_counters SET reserved = reserved + :q
    WHERE org_id = :org AND meter = :meter AND period = :period AND period_start = :start
      AND used + reserved + :q <= :limit
    RETURNING used, reserved
"""
_ADD_RESERVED = (
    text(
        """
        UPDATE usage_counters SET reserved = reserved + :q
        WHERE org_id = :org AND meter = :meter AND period = :period AND period_start = :start
        RETURNING used, reserved
        """
    )
    .bindparams(*COUNTER_PARAMS)
    .columns(*COUNTER_COLUMNS)
)

RESERVATION_COLUMNS = """
    INSERT INTO usage_reservations
        (id, org_id, team_id, user_id, api_key_id, action, provider, model, status, estimate,
         holds, created_at, expires_at)
"""
RESERVATION_VALUES = """
    :id, :org_id, :team_id, :user_id, :api_key_id, :action, :provider, :model, 'held',
    :estimate, :holds, :created_at, :expires_at
"""
_RESERVATION_PARAMS = (
    bindparam("estimate", type_=JSONType),
    bindparam("holds", type_=JSONType),
    bindparam("created_at", type_=UTCDateTime()),
    bindparam("expires_at", type_=UTCDateTime()),
)
_INSERT_RESERVATION = text(f"{RESERVATION_COLUMNS} VALUES ({RESERVATION_VALUES})").bindparams(
    *_RESERVATION_PARAMS
)


def counter_params(org_id: str, key: CounterKey) -> dict[str, Any]:
    meter, period, start = key
    return {"org": org_id, "meter": meter, "period": period, "start": start}


_COUNTERS_BY_SIZE: dict[int, Any] = {}


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
                *COUNTER_COLUMNS,
            )
        )
        _COUNTERS_BY_SIZE[n] = found
    return found


class CommonSql:
    """The hot statements that run the same way on both dialects (the upserts built once with
    the dialect's `insert`: building an upsert construct and its cache key on every call cost
    more than running it). Each dialect's class extends it with its own statements."""

    def __init__(self, insert: InsertOf) -> None:
        self._new_unique_values = new_unique_values_statement(insert)
        self._upsert_rollups = upsert_rollups_statement(insert)
        self._change_counters = change_counters_statement(insert)
        self._ensure_counters = ensure_counters_statement(insert)
        self._insert_alerts = insert_alerts_statement(insert)
        self._make_quota_lock = make_quota_lock_statement(insert)

    def new_unique_values(self, session: Session, rows: list[dict[str, Any]]) -> set[UniqueValue]:
        return {(r[0], r[1], r[2]) for r in session.execute(self._new_unique_values, rows)}

    def upsert_rollups(self, session: Session, rows: list[dict[str, Any]]) -> None:
        session.execute(self._upsert_rollups, rows)

    def change_counters(self, session: Session, rows: list[dict[str, Any]]) -> None:
        session.execute(self._change_counters, rows)

    def ensure_counters(self, session: Session, rows: list[dict[str, Any]]) -> None:
        session.execute(self._ensure_counters, rows)

    def counters(
        self, session: Session, *, org_id: str, keys: Sequence[CounterKey]
    ) -> dict[CounterKey, CounterState]:
        params: dict[str, Any] = {"org": org_id}
        for i, (meter, period, start) in enumerate(keys):
            params.update({f"m{i}": meter, f"p{i}": period, f"s{i}": start})
        rows = session.execute(_counters_statement(len(keys)), params)
        return {(m, p, s): CounterState(u, r) for m, p, s, u, r in rows}

    def add_reserved(
        self, session: Session, *, org_id: str, key: CounterKey, delta_micros: int
    ) -> CounterState | None:
        params = counter_params(org_id, key)
        params["q"] = delta_micros
        row = session.execute(_ADD_RESERVED, params).first()
        return None if row is None else CounterState(row[0], row[1])

    def insert_held_reservation(self, session: Session, row: Mapping[str, Any]) -> None:
        session.execute(_INSERT_RESERVATION, dict(row))

    def insert_alerts(self, session: Session, rows: list[dict[str, Any]]) -> list[str]:
        return list(session.scalars(self._insert_alerts, rows))

    def lock_quota(self, session: Session, *, org_id: str, quota_key: str) -> None:
        session.execute(self._make_quota_lock, [{"org_id": org_id, "quota_key": quota_key}])
        query = select(QuotaLock.org_id).where(
            QuotaLock.org_id == org_id, QuotaLock.quota_key == quota_key
        )
        # SQLite has no row locks; its writers hold the database lock from BEGIN IMMEDIATE instead.
        session.execute(query.with_for_update())
