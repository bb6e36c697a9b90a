"""The API-calls ledger tallies calls per caller, route and minute: one usage event per tally,
exact totals, and a write retried after a failure records each call once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conftest import Factory
from tenantry.kit.db import Database
from tenantry.metering.models import UsageEvent, UsageRollup
from tenantry.throttling import ledger as ledger_module
from tenantry.throttling.ledger import ApiCall, ApiCallLedger

T0 = datetime(2026, 3, 2, 9, 15, 5, tzinfo=UTC)


def _ledger(database: Database, **overrides: Any) -> ApiCallLedger:
    options: dict[str, Any] = {"flush_after": timedelta(seconds=5), "flush_size": 1000}
    return ApiCallLedger(database, **{**options, **overrides})


def _call(org_id: str, at: datetime, route: str = "/api/v1/teams/{team}", **who: Any) -> ApiCall:
    return ApiCall(org_id=org_id, at=at, method="GET", route=route, **who)


def _events(database: Database, org_id: str) -> list[UsageEvent]:
    with database.session(write=False) as session:
        query = select(UsageEvent).where(
            UsageEvent.org_id == org_id, UsageEvent.meter == "api_calls"
        )
        return list(session.scalars(query.order_by(UsageEvent.timestamp)))


def _rolled_up(database: Database, org_id: str) -> Decimal:
    with database.session(write=False) as session:
        total = session.scalar(
            select(func.sum(UsageRollup.quantity)).where(
                UsageRollup.org_id == org_id, UsageRollup.meter == "api_calls"
            )
        )
    return Decimal(total or 0)


def test_calls_of_one_caller_to_one_route_in_one_minute_are_one_event(
    factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    ledger = _ledger(database)
    owner = {"user_id": acme.owner_id}
    for seconds in (0, 10, 54):  # the same minute
        ledger.record(_call(acme.org_id, T0 + timedelta(seconds=seconds), **owner))
    ledger.record(_call(acme.org_id, T0 + timedelta(seconds=1), "/api/v1/orgs/{org}", **owner))
    ledger.record(_call(acme.org_id, T0 + timedelta(seconds=55), **owner))  # the next minute
    ledger.record(_call(acme.org_id, T0 + timedelta(seconds=2), api_key_id="key_x"))
    assert (ledger.pending(), ledger.pending_events()) == (6, 4)

    assert ledger.flush() == 6
    events = _events(database, acme.org_id)
    assert [(e.quantity, e.timestamp, e.dimensions["route"]) for e in events] == [
        (Decimal(3), T0, "/api/v1/teams/{team}"),
        (Decimal(1), T0 + timedelta(seconds=1), "/api/v1/orgs/{org}"),
        (Decimal(1), T0 + timedelta(seconds=2), "/api/v1/teams/{team}"),
        (Decimal(1), T0 + timedelta(seconds=55), "/api/v1/teams/{team}"),
    ]
    assert [(e.user_id, e.api_key_id) for e in events][2] == (None, "key_x")
    assert _rolled_up(database, acme.org_id) == 6
    assert (ledger.pending(), ledger.pending_events(), ledger.flush()) == (0, 0, 0)


def test_a_write_that_failed_after_its_commit_is_retried_without_counting_twice(
    factory: Factory, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = factory.tenant("Acme")
    ledger = _ledger(database)
    for seconds in range(4):
        ledger.record(_call(acme.org_id, T0 + timedelta(seconds=seconds)))
    record_events = ledger_module.recording.record_events

    def committed_then_lost(session: Session, *args: Any, **kwargs: Any) -> Any:
        record_events(session, *args, **kwargs)
        session.commit()
        raise ConnectionError("the connection dropped before the commit was acknowledged")

    monkeypatch.setattr(ledger_module.recording, "record_events", committed_then_lost)
    assert ledger.flush() == 0
    assert ledger.pending() == 4  # kept, as they were
    monkeypatch.setattr(ledger_module.recording, "record_events", record_events)
    # A call meanwhile, in the same minute, goes into a new tally, not the one kept.
    ledger.record(_call(acme.org_id, T0 + timedelta(seconds=30)))
    assert (ledger.pending(), ledger.pending_events()) == (5, 2)
    assert ledger.flush() == 1  # the kept tally was recorded already
    assert sum(e.quantity for e in _events(database, acme.org_id)) == 5
    assert _rolled_up(database, acme.org_id) == 5


def test_the_buffer_is_due_by_events_and_bounded_by_events(
    factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    ledger = _ledger(database, flush_size=2, max_buffered=2)
    assert not ledger.due(T0)
    for _ in range(5):
        ledger.record(_call(acme.org_id, T0))
    assert not ledger.due(T0)  # five calls, one event: a write would be one row
    ledger.record(_call(acme.org_id, T0, "/api/v1/orgs/{org}"))  # two events: due
    assert ledger.due(T0) and ledger.pending_events() == 2
    ledger.record(_call(acme.org_id, T0, "/api/v1/me"))  # a third event: over the bound
    ledger.record(_call(acme.org_id, T0))  # an open tally still counts
    assert (ledger.dropped, ledger.pending(), ledger.pending_events()) == (1, 7, 2)
    assert ledger.flush() == 7


def test_the_oldest_call_makes_the_buffer_due_after_a_partial_flush(
    factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    ledger = _ledger(database)
    ledger.record(_call(acme.org_id, T0, "/a"))
    ledger.record(_call(acme.org_id, T0 + timedelta(seconds=3), "/b"))
    assert ledger.flush(1) == 1
    assert not ledger.due(T0 + timedelta(seconds=7))  # /b is 4 s old
    assert ledger.due(T0 + timedelta(seconds=8))
