"""Metering's hot statements on SQLite.

A batch of events goes in as one `executemany` of plain tuples through the driver; a hold is a
conditional `UPDATE ... RETURNING`, the counter read afterwards only when the hold did not fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from tenantry.kit.db import json_text
from tenantry.metering.meters import to_micros
from tenantry.metering.sql.shared import (
    COUNTER_COLUMNS,
    COUNTER_PARAMS,
    HOLD_WITHIN_SQL,
    PLAN_SOURCE_SQL,
    CommonSql,
    CounterKey,
    CounterState,
    EventValues,
    PlanSource,
    counter_params,
    plan_source_of,
)

# The overrides as the JSON text they are stored as (SQLite keeps JSON as text).
_PLAN_SOURCE = text(PLAN_SOURCE_SQL.replace("TXT(", "("))

# SQLite takes a batch as an `executemany` of plain tuples through the driver, each value
# already in the form SQLAlchemy's types would store it (integer millionths, naive UTC text,
# JSON text): the driver binds them in C, where binding 11 parameters per row through the types
# cost more than the insert itself, and one JSON array unpacked by `json_each` cost twice the
# insert. `executemany` returns no rows, so the ids inserted are read back only when some were
# replays (see `insert_new_events`).
_NEW_EVENTS = (
    "INSERT INTO usage_events (org_id, event_id, meter, quantity, timestamp, team_id, user_id, "
    "api_key_id, provider, model, dimensions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (org_id, event_id) DO NOTHING"
)
# The rows one statement inserted into a rowid table are the last `n` rowids: SQLite gives a new
# row the largest rowid so far plus one, and this transaction is the only writer.
_LAST_INSERTED = "SELECT event_id FROM usage_events WHERE rowid > last_insert_rowid() - ?"
_NO_DIMENSIONS_TEXT = "{}"

_HOLD_WITHIN = text(HOLD_WITHIN_SQL).bindparams(*COUNTER_PARAMS).columns(*COUNTER_COLUMNS)


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:  # as UTCDateTime refuses it: a naive time means no one knows which
        raise ValueError("naive datetime given to a UTC column")
    return at


def sqlite_stamp(at: datetime) -> str:
    """An aware time as UTCDateTime stores it on SQLite (naive UTC in SQLAlchemy's DATETIME
    text, microseconds always written), without the two type processors' cost per value."""
    utc = at if at.tzinfo is UTC else _aware(at).astimezone(UTC)
    return utc.isoformat(" ", "microseconds")[:26]


def _rows(rows: Sequence[EventValues]) -> list[tuple[Any, ...]]:
    return [
        (o, e, m, to_micros(q), sqlite_stamp(t), team, user, key, p, model,
         json_text(d) if d else _NO_DIMENSIONS_TEXT)
        for o, e, m, q, t, team, user, key, p, model, d in rows
    ]  # fmt: skip


class SqliteSql(CommonSql):
    """`MeteringSql` on SQLite."""

    name = "sqlite"

    def __init__(self) -> None:
        super().__init__(sqlite.insert)

    def plan_source(self, session: Session, org_id: str) -> PlanSource | None:
        return plan_source_of(session.execute(_PLAN_SOURCE, {"org": org_id}).first())

    def insert_new_events(self, session: Session, rows: Sequence[EventValues]) -> set[str]:
        connection = session.connection()
        inserted = connection.exec_driver_sql(_NEW_EVENTS, _rows(rows)).rowcount
        if inserted == len(rows):
            return {row[1] for row in rows}
        if inserted == 0:
            return set()
        return set(connection.exec_driver_sql(_LAST_INSERTED, (inserted,)).scalars())

    def hold_within(
        self,
        session: Session,
        *,
        org_id: str,
        key: CounterKey,
        quantity_micros: int,
        limit_micros: int,
        then_reserve: Mapping[str, Any] | None,
    ) -> tuple[bool, CounterState | None]:
        params = counter_params(org_id, key)
        params.update(q=quantity_micros, limit=limit_micros)
        row = session.execute(_HOLD_WITHIN, params).first()
        if row is None:
            return False, self.counters(session, org_id=org_id, keys=[key]).get(key)
        if then_reserve is not None:
            self.insert_held_reservation(session, then_reserve)
        return True, CounterState(row[0], row[1])
