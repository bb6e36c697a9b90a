"""Admission: reserve against quotas, settle what was used, expire what never was — and never
overshoot a hard limit, however many admissions run at once (on SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from conftest import (
    Factory,
    Tenant,
    assert_problem,
    bearer,
    count_rows,
    operator_headers,
    operator_url,
)
from tenantry.app import create_app
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.metering.models import Reservation, UsageCounter
from tenantry.worker import run_once

ADMIT = "/api/v1/admission"


def limited(client: TestClient, tenant: Tenant, **quotas: dict[str, Any]) -> None:
    resp = client.put(
        operator_url(tenant.org_id, "/plan-overrides"),
        headers=operator_headers(client),
        json={"quotas": quotas},
    )
    assert resp.status_code == 200, resp.text


def admit(client: TestClient, tenant: Tenant, estimate: dict[str, str], **kw: Any) -> Any:
    body = {"team": tenant.team_id, "action": "llm.generate", "estimate": estimate, **kw}
    resp = client.post(ADMIT, headers=tenant.headers, json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def settle(client: TestClient, tenant: Tenant, reservation_id: str, usage: dict[str, str]) -> Any:
    return client.post(
        f"{ADMIT}/{reservation_id}/settle", headers=tenant.headers, json={"usage": usage}
    )


def counter(database: Database, org_id: str, meter: str) -> tuple[Decimal, Decimal]:
    with database.session(write=False) as s:
        row = s.execute(
            select(UsageCounter.used, UsageCounter.reserved).where(
                UsageCounter.org_id == org_id, UsageCounter.meter == meter
            )
        ).one()
    return row[0], row[1]


def quota(client: TestClient, tenant: Tenant, key: str) -> dict[str, Any]:
    resp = client.get(f"/api/v1/orgs/{tenant.org_id}/quotas", headers=tenant.headers)
    return dict(next(q for q in resp.json()["quotas"] if q["key"] == key))


def test_reserve_settle_and_release(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")  # Free: compute_hours 100 a month, hard
    first = admit(client, acme, {"compute_hours": "60", "llm_input_tokens": "5000"})
    assert first["decision"] == "allow" and first["reasons"] == []
    assert first["remaining"]["compute_hours"] == "40"
    assert counter(database, acme.org_id, "compute_hours") == (0, 60)
    refused = admit(client, acme, {"compute_hours": "41"})
    assert refused["decision"] == "deny" and refused["reservation_id"] is None
    [reason] = refused["reasons"]
    assert reason["code"] == "quota_exceeded" and reason["quota"] == "compute_hours"
    assert (reason["limit"], reason["reserved"], reason["upgrade_to"]) == ("100", "60", "starter")
    assert counter(database, acme.org_id, "compute_hours") == (0, 60)
    # It used less than it asked for: the rest is free again.
    done = settle(client, acme, first["reservation_id"], {"compute_hours": "12.5"})
    assert done.status_code == 200, done.text
    assert (
        done.json()["status"] == "settled" and done.json()["remaining"]["compute_hours"] == "87.5"
    )
    assert counter(database, acme.org_id, "compute_hours") == (Decimal("12.5"), 0)
    assert quota(client, acme, "compute_hours")["used"] == "12.5"
    usage = client.get(f"/api/v1/teams/{acme.team_id}/usage", headers=acme.headers).json()
    assert usage["totals"] == {"compute_hours": "12.5"}
    # A second settle changes nothing.
    before = count_rows(database)
    assert_problem(settle(client, acme, first["reservation_id"], {"compute_hours": "1"}), 409)
    assert count_rows(database) == before
    assert admit(client, acme, {"compute_hours": "87.5"})["decision"] == "allow"


def test_a_bad_settle_is_refused_and_changes_nothing(
    client: TestClient, factory: Factory, database: Database
) -> None:
    """Settle reads and checks its own body (it runs in one worker thread, as admission does):
    every malformed settle gets the problem FastAPI's own validation would give, and leaves the
    reservation held."""
    acme = factory.tenant("Acme")
    held = admit(client, acme, {"compute_hours": "10"})["reservation_id"]
    url = f"{ADMIT}/{held}/settle"
    json_body = {**acme.headers, "Content-Type": "application/json"}
    before = count_rows(database)
    for content, status, code in (
        (b"not json", 400, "malformed_json"),
        (b"", 422, None),
        (b"{}", 422, None),
        (b'{"usage": {"compute_hours": "-1"}}', 422, "invalid_quantity"),
        (b'{"usage": {"compute_hours": "NaN"}}', 422, None),
        (b'{"usage": {"gpu": "1"}}', 422, None),
        (b'{"usage": {"compute_hours": "1"}, "extra": 1}', 422, None),
    ):
        resp = client.post(url, headers=json_body, content=content)
        assert_problem(resp, status, code)
    assert_problem(client.post(url, json={"usage": {"compute_hours": "1"}}), 401)
    assert count_rows(database) == before
    assert counter(database, acme.org_id, "compute_hours") == (0, 10)
    assert settle(client, acme, held, {"compute_hours": "4"}).status_code == 200
    assert counter(database, acme.org_id, "compute_hours") == (4, 0)


def test_soft_quotas_allow_and_warn(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme", plan="starter")  # compute_hours 1,000, soft
    limited(client, acme, compute_hours={"limit": "10"})
    body = {"team": acme.team_id, "action": "train", "estimate": {"compute_hours": "12"}}
    resp = client.post(ADMIT, headers=acme.headers, json=body)
    assert resp.json()["decision"] == "allow"
    assert resp.headers["Tenantry-Quota-Warning"] == "compute_hours"
    [warning] = resp.json()["warnings"]
    assert warning["code"] == "quota_soft_limit_exceeded" and warning["enforcement"] == "soft"
    settle(client, acme, resp.json()["reservation_id"], {"compute_hours": "14"})
    shown = quota(client, acme, "compute_hours")
    # The overage is visible for billing: 4 hours at $0.50.
    assert (shown["used"], shown["overage"], shown["overage_cost"]) == ("14", "4", "2")


def test_the_action_may_need_a_permission(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant("Acme")
    _, editor = factory.member(acme, team_role="editor")
    body = {"team": acme.team_id, "action": "model:delete", "estimate": {"compute_hours": "1"}}
    resp = client.post(ADMIT, headers=bearer(editor), json=body)
    assert resp.status_code == 200
    assert resp.json()["decision"] == "deny"
    assert resp.json()["reasons"][0]["missing_permission"] == "model:delete"
    body["action"] = "model:create"
    assert client.post(ADMIT, headers=bearer(editor), json=body).json()["decision"] == "allow"


def test_admission_input_and_tenants(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    bravo = factory.tenant("Bravo")
    theirs = admit(client, bravo, {"compute_hours": "1"})["reservation_id"]
    before = count_rows(database)
    bad = [
        ({"team": acme.team_id, "action": "x", "estimate": {"gpu": "1"}}, 422, "unknown_meter"),
        (
            {"team": acme.team_id, "action": "x", "estimate": {"compute_hours": "-1"}},
            422,
            "invalid_quantity",
        ),
        ({"team": bravo.team_id, "action": "x", "estimate": {}}, 404, "not_found"),
    ]
    for body, status, code in bad:
        assert_problem(client.post(ADMIT, headers=acme.headers, json=body), status, code)
    assert_problem(settle(client, acme, theirs, {"compute_hours": "1"}), 404, "not_found")
    assert_problem(settle(client, acme, "rsv_nothing", {"compute_hours": "1"}), 404)
    assert count_rows(database) == before


def test_a_reservation_is_freed_the_moment_it_expires(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    # Admission skips looking for overdue reservations while none can be overdue yet (the
    # shortest one lives a second): that must never keep an expired hold a moment too long.
    acme = factory.tenant("Acme")  # Free: compute_hours 100 a month, hard
    assert admit(client, acme, {"compute_hours": "100"}, ttl_seconds=1)["decision"] == "allow"
    clock.advance(seconds=0.4)
    assert admit(client, acme, {"compute_hours": "1"})["decision"] == "deny"
    clock.advance(seconds=0.599999)
    assert admit(client, acme, {"compute_hours": "1"})["decision"] == "deny"
    clock.advance(seconds=0.000001)  # now its expiry
    assert admit(client, acme, {"compute_hours": "100"}, ttl_seconds=1)["decision"] == "allow"
    assert counter(database, acme.org_id, "compute_hours") == (0, 100)
    # One made right after a look, by this process or another, is found just as well.
    clock.advance(seconds=0.3)
    assert admit(client, acme, {"compute_hours": "1"})["decision"] == "deny"
    clock.advance(seconds=0.7)
    assert admit(client, acme, {"compute_hours": "100"})["decision"] == "allow"


def test_unsettled_reservations_expire_once(
    client: TestClient,
    factory: Factory,
    clock: FrozenClock,
    database: Database,
    settings: Settings,
) -> None:
    acme = factory.tenant("Acme")
    lazy = admit(client, acme, {"compute_hours": "70"}, ttl_seconds=60)
    swept = admit(client, acme, {"compute_hours": "30"}, ttl_seconds=120)
    assert admit(client, acme, {"compute_hours": "1"})["decision"] == "deny"
    clock.advance(seconds=61)
    # The next admission expires the overdue one itself, and the hold is free again.
    assert admit(client, acme, {"compute_hours": "60"})["decision"] == "allow"
    assert counter(database, acme.org_id, "compute_hours") == (0, 90)
    clock.advance(seconds=60)
    report = run_once(settings, clock=clock, database=database)
    assert report.reservations.expired_reservations == 1
    assert counter(database, acme.org_id, "compute_hours") == (0, 60)
    assert run_once(settings, clock=clock, database=database).reservations.expired_reservations == 0
    # Settling late still records what was used, and releases nothing twice.
    late = settle(client, acme, swept["reservation_id"], {"compute_hours": "5"})
    assert late.status_code == 200 and late.json()["expired_before_settle"] is True
    assert counter(database, acme.org_id, "compute_hours") == (5, 60)
    with database.session(write=False) as s:
        statuses = dict(s.execute(select(Reservation.id, Reservation.status)).all())
    assert statuses[lazy["reservation_id"]] == "expired"
    assert statuses[swept["reservation_id"]] == "settled"


def admit_at_once(apps: list[FastAPI], tenant: Tenant, n: int, estimate: str) -> list[Any]:
    """`n` admissions at the same moment, each from a thread of its own with its own client
    (and event loop), spread over `apps`: real parallel transactions, released together."""
    body = {"team": tenant.team_id, "action": "train", "estimate": {"compute_hours": estimate}}
    barrier = threading.Barrier(n)

    def one(i: int) -> Any:
        client = TestClient(apps[i % len(apps)], raise_server_exceptions=False)
        barrier.wait()
        resp = client.post(ADMIT, headers=tenant.headers, json=body)
        return resp.json() if resp.status_code == 200 else resp.text

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def test_parallel_admissions_never_overshoot(
    app: FastAPI,
    client: TestClient,
    factory: Factory,
    database: Database,
    database_url: str,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    limited(client, acme, compute_hours={"limit": "10", "enforcement": "hard"})
    clock.advance(minutes=1)  # fresh rate-limit allowance for the burst below
    # A second server with an engine of its own, as another process would have: the limit
    # lives in the database, so the two cannot together pass it either.
    other_db = Database(database_url)
    other = create_app(settings, clock=clock, database=other_db)
    try:
        answers = admit_at_once([app, other], acme, 50, "0.7")
    finally:
        other_db.dispose()
    assert all(isinstance(a, dict) for a in answers), answers
    allowed = [a for a in answers if a["decision"] == "allow"]
    # 14 x 0.7 = 9.8 fits in 10; a 15th would make 10.5.
    assert len(allowed) == 14
    assert counter(database, acme.org_id, "compute_hours") == (0, Decimal("9.8"))
    assert all(a["reasons"][0]["code"] == "quota_exceeded" for a in answers if a not in allowed)


def test_a_reservation_exists_exactly_when_every_hold_was_taken(
    client: TestClient, factory: Factory, database: Database
) -> None:
    """The last hold of an estimate carries the reservation with it (one statement on
    PostgreSQL): a refusal there, or of an earlier hold, leaves no reservation and no hold."""
    acme = factory.tenant("Acme")
    hard = {"enforcement": "hard"}
    limited(client, acme, compute_hours={"limit": "10", **hard}, storage_gb={"limit": "10", **hard})

    def reservations() -> int:
        with database.session(write=False) as s:
            return len(
                s.scalars(select(Reservation.id).where(Reservation.org_id == acme.org_id)).all()
            )

    # compute_hours is held first, storage_gb last (counters are taken in key order).
    for estimate in (
        {"compute_hours": "4", "storage_gb": "11"},  # the last one refused
        {"compute_hours": "11", "storage_gb": "4"},  # an earlier one refused, the last fits
    ):
        denied = admit(client, acme, estimate)
        assert denied["decision"] == "deny" and denied["reservation_id"] is None
        assert reservations() == 0
        assert counter(database, acme.org_id, "compute_hours")[1] == 0
        assert counter(database, acme.org_id, "storage_gb")[1] == 0
    allowed = admit(client, acme, {"compute_hours": "4", "storage_gb": "4"})
    assert allowed["decision"] == "allow" and reservations() == 1
    assert counter(database, acme.org_id, "compute_hours") == (0, Decimal(4))
    assert counter(database, acme.org_id, "storage_gb") == (0, Decimal(4))
    assert allowed["remaining"] == {**allowed["remaining"], "compute_hours": "6", "storage_gb": "6"}


def test_a_denied_admission_tells_the_counter_as_it_stands_in_as_many_statements(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    """A refused hold brings the counter with it, in no more statements than a hold taken
    (which also writes its reservation): the reason and what remains show the counter as this
    transaction left it, expired holds released."""
    acme = factory.tenant("Acme")
    # compute_hours the one metered quota with a limit: what remains is all in the hold's answer.
    unlimited: dict[str, Any] = {"limit": None}
    hard = {"limit": "10", "enforcement": "hard"}
    limited(client, acme, compute_hours=hard, api_calls=unlimited, storage_gb=unlimited)
    assert admit(client, acme, {"compute_hours": "8"}, ttl_seconds=1)["decision"] == "allow"
    statements: list[str] = []

    def counted(estimate: str) -> Any:
        statements.clear()
        event.listen(database.writer_engine, "before_cursor_execute", on_statement)
        try:
            return admit(client, acme, {"compute_hours": estimate})
        finally:
            event.remove(database.writer_engine, "before_cursor_execute", on_statement)

    def on_statement(*args: Any) -> None:
        # The admission's own statements: the credential checks before it may be served from
        # caches or not, as the time since they were filled says.
        if "usage_" in args[2]:
            statements.append(args[2])

    allowed = counted("2")
    assert allowed["decision"] == "allow" and allowed["remaining"]["compute_hours"] == "0"
    for_an_allowed_one = len(statements)
    denied = counted("1")
    assert denied["decision"] == "deny" and len(statements) <= for_an_allowed_one
    reason = denied["reasons"][0]
    assert (reason["used"], reason["reserved"], reason["limit"]) == ("0", "10", "10")
    assert denied["remaining"]["compute_hours"] == "0"

    clock.advance(seconds=1)  # the 8 hours expire, released by the next admission
    denied = admit(client, acme, {"compute_hours": "9"})
    assert denied["decision"] == "deny" and denied["reasons"][0]["reserved"] == "2"
    assert denied["remaining"]["compute_hours"] == "8"
    assert counter(database, acme.org_id, "compute_hours") == (0, 2)


def test_an_overdue_reservation_is_expired_and_released_before_the_next_hold(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    """An admission that finds an overdue reservation expires it and releases what it held
    before taking its own hold: the counter holds only the new estimate, once."""
    acme = factory.tenant("Acme")  # Free: compute_hours 100 a month, hard
    first = admit(client, acme, {"compute_hours": "30"}, ttl_seconds=1)
    clock.advance(seconds=2)  # overdue, and a look is due
    second = admit(client, acme, {"compute_hours": "60"})  # fits with or without the release
    assert second["decision"] == "allow" and second["remaining"]["compute_hours"] == "40"
    assert counter(database, acme.org_id, "compute_hours") == (0, 60)
    with database.session(write=False) as s:
        rows = s.execute(
            select(Reservation.id, Reservation.status).where(Reservation.org_id == acme.org_id)
        ).all()
    assert dict(rows) == {first["reservation_id"]: "expired", second["reservation_id"]: "held"}
