"""Metering's hot statements on PostgreSQL.

A batch of events goes in as one JSON array unpacked by `json_to_recordset`; an admission's hold
(and, with the last hold, its reservation) is one statement sent by the driver itself
(`kit.db.DriverStatement`), one round trip, held or not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg.types.json import Jsonb
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from tenantry.kit.db import DriverStatement
from tenantry.metering.meters import from_micros, to_micros
from tenantry.metering.sql.shared import (
    HOLD_WITHIN_SQL,
    PLAN_SOURCE_SQL,
    RESERVATION_COLUMNS,
    RESERVATION_VALUES,
    CommonSql,
    CounterKey,
    CounterState,
    EventValues,
    PlanSource,
    counter_params,
    plan_source_of,
)

# The overrides as the JSON text they are stored as, which also keys the cache of built plans
# (metering.plans.effective_plan).
_PLAN_SOURCE = text(re.sub(r"TXT\((.+?)\)", r"CAST(\1 AS TEXT)", PLAN_SOURCE_SQL))

# PostgreSQL takes a whole batch as one JSON array of objects, unpacked by json_to_recordset:
# one short statement and one parameter, which orjson writes in C. One array per column through
# `unnest` took twice as long: the driver writes text arrays element by element, and the server
# casts each of them.
_NEW_EVENTS = text(
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


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:  # as UTCDateTime refuses it: a naive time means no one knows which
        raise ValueError("naive datetime given to a UTC column")
    return at


def _events_json(rows: Sequence[EventValues]) -> str:
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


# A hold, with the counter as it stands when the hold does not fit (for the reason and what
# remains), in one statement: the counter's row is read only when the UPDATE took nothing. That
# read sees the statement's snapshot, this transaction's own changes included.
_COUNTER_IF_NOT_HELD = """
    SELECT used, reserved, TRUE AS taken FROM held
    UNION ALL
    SELECT used, reserved, FALSE FROM usage_counters
    WHERE org_id = :org AND meter = :meter AND period = :period AND period_start = :start
      AND NOT EXISTS (SELECT 1 FROM held)
"""
_HOLD = DriverStatement(f"WITH held AS ({HOLD_WITHIN_SQL}) {_COUNTER_IF_NOT_HELD}")
# The last hold of an admission and its reservation in one statement: the INSERT selects from
# the UPDATE's returned row, so the reservation exists exactly when the hold was taken.
_HOLD_AND_RESERVE = DriverStatement(
    f"""
    WITH held AS ({HOLD_WITHIN_SQL}),
    made AS ({RESERVATION_COLUMNS} SELECT {RESERVATION_VALUES} FROM held)
    {_COUNTER_IF_NOT_HELD}
    """  # noqa: S608 (put together from this package's constants only)
)


class PostgresSql(CommonSql):
    """`MeteringSql` on PostgreSQL."""

    name = "postgresql"

    def __init__(self) -> None:
        super().__init__(postgresql.insert)

    def plan_source(self, session: Session, org_id: str) -> PlanSource | None:
        return plan_source_of(session.execute(_PLAN_SOURCE, {"org": org_id}).first())

    def insert_new_events(self, session: Session, rows: Sequence[EventValues]) -> set[str]:
        return set(session.scalars(_NEW_EVENTS, {"events": _events_json(rows)}))

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
        if then_reserve is None:
            row = _HOLD.first(session, params)
        else:
            reservation = {**then_reserve, "estimate": Jsonb(then_reserve["estimate"])}
            reservation["holds"] = Jsonb(then_reserve["holds"])
            row = _HOLD_AND_RESERVE.first(session, {**params, **reservation})
        if row is None:
            return False, None
        used, reserved, taken = row
        return taken, CounterState(from_micros(used), from_micros(reserved))
