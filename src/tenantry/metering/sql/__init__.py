"""Metering's hot SQL, one implementation per dialect behind one protocol.

`MeteringSql` has one method per statement (or pair of statements) that ingestion and admission
run on every batch or admission; `sql/postgres.py` and `sql/sqlite.py` implement it, each with
statements built once at import, and what runs the same way on both is in `sql/shared.py`.
`metering.repository` picks the implementation by the session's dialect name (`of_dialect`, one
dict lookup) and calls through it: no statement here branches on the dialect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy.orm import Session

from tenantry.metering.sql.postgres import PostgresSql
from tenantry.metering.sql.shared import (
    CounterKey,
    CounterState,
    EventValues,
    PlanSource,
    UniqueValue,
)
from tenantry.metering.sql.sqlite import SqliteSql


class MeteringSql(Protocol):
    """Metering's hot statements on one dialect. Row lists are never empty (the repository
    returns before calling with none), rows that several transactions may update come in key
    order, and quantities are integer millionths where the name says `_micros`."""

    name: str

    def plan_source(self, session: Session, org_id: str) -> PlanSource | None:
        """The org's catalog plan key and its overrides as stored (JSON text), in one read;
        None if there is no such org."""

    def insert_new_events(self, session: Session, rows: Sequence[EventValues]) -> set[str]:
        """Insert the events not yet recorded for their org; the ids of those inserted."""

    def new_unique_values(self, session: Session, rows: list[dict[str, Any]]) -> set[UniqueValue]:
        """Record unique-value rows; (meter, period start, value) of those not seen before."""

    def upsert_rollups(self, session: Session, rows: list[dict[str, Any]]) -> None:
        """Add rows to their hourly rollups, creating rollups as needed."""

    def change_counters(self, session: Session, rows: list[dict[str, Any]]) -> None:
        """Add rows' `used` and `reserved` to their counters, creating counters as needed."""

    def ensure_counters(self, session: Session, rows: list[dict[str, Any]]) -> None:
        """Make the counters of rows that do not exist yet."""

    def counters(
        self, session: Session, *, org_id: str, keys: Sequence[CounterKey]
    ) -> dict[CounterKey, CounterState]:
        """The counters of `keys` that exist."""

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
        """Hold a quantity on a counter if used + reserved + quantity stays within the limit, by
        one conditional UPDATE; whether it was held, and the counter (None: no counter yet).
        With `then_reserve`, that reservation is inserted if, and only if, the hold was taken."""

    def add_reserved(
        self, session: Session, *, org_id: str, key: CounterKey, delta_micros: int
    ) -> CounterState | None:
        """Add to a counter's `reserved` (negative: release); the counter afterwards, None if
        there is no such counter."""

    def insert_held_reservation(self, session: Session, row: Mapping[str, Any]) -> None:
        """A new reservation in status `held`."""

    def insert_alerts(self, session: Session, rows: list[dict[str, Any]]) -> list[str]:
        """Insert the alerts not raised yet; their ids."""

    def lock_quota(self, session: Session, *, org_id: str, quota_key: str) -> None:
        """Take the org's lock row for a count quota until the transaction ends (made on first
        use)."""


_BY_DIALECT: dict[str, MeteringSql] = {"postgresql": PostgresSql(), "sqlite": SqliteSql()}


def of_dialect(name: str) -> MeteringSql:
    """The implementation for a SQLAlchemy dialect name (`session.get_bind().dialect.name`)."""
    return _BY_DIALECT[name]


__all__ = [
    "CounterKey",
    "CounterState",
    "EventValues",
    "MeteringSql",
    "PlanSource",
    "UniqueValue",
    "of_dialect",
]
