"""Concurrent-run leases: a plan's `concurrent_runs` held as leases with a TTL (Free: 5).

Acquire → 402 with the next plan once every slot is held; release and expiry free a slot (an
expired lease at acquire time, by the clock, before any sweep); heartbeats extend a lease and
come too late once it has expired; a run holds at most one lease; another tenant's lease is 404;
20 concurrent acquires for the last slot give exactly one lease (on SQLite and PostgreSQL, with
the suite's database); the worker sweeps expired leases.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import Factory, Tenant, assert_problem, bearer, count_rows
from tenantry.audit.models import AuditEvent
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.throttling.models import RunLease
from tenantry.worker import run_once


def leases_url(tenant: Tenant) -> str:
    return f"/api/v1/teams/{tenant.team_id}/runs/leases"


def acquire(client: TestClient, tenant: Tenant, **body: Any) -> httpx.Response:
    return client.post(leases_url(tenant), headers=tenant.headers, json=body)


def held(database: Database, org_id: str) -> int:
    with database.session(write=False) as session:
        return int(
            session.scalar(
                select(func.count()).select_from(RunLease).where(RunLease.org_id == org_id)
            )
            or 0
        )


def test_a_lease_holds_a_slot_until_released(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme")
    resp = acquire(client, acme, run_id="train-42", ttl_seconds=60)
    assert resp.status_code == 201, resp.text
    lease = resp.json()
    assert lease["run_id"] == "train-42" and lease["team_id"] == acme.team_id
    assert lease["holder_type"] == "user" and lease["holder_id"] == acme.owner_id
    assert lease["concurrent_runs"] == {"limit": 5, "in_use": 1}
    assert lease["expires_at"].startswith("2026-01-01T00:01:00")
    listed = client.get(leases_url(acme), headers=acme.headers).json()["items"]
    assert [x["id"] for x in listed] == [lease["id"]]
    gone = client.delete(f"{leases_url(acme)}/{lease['id']}", headers=acme.headers)
    assert gone.status_code == 204
    assert client.get(leases_url(acme), headers=acme.headers).json()["items"] == []
    again = client.delete(f"{leases_url(acme)}/{lease['id']}", headers=acme.headers)
    assert_problem(again, 404, "not_found")


def test_the_plans_concurrent_runs_are_a_hard_limit(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    leases = [acquire(client, acme).json() for _ in range(5)]
    assert [x["concurrent_runs"]["in_use"] for x in leases] == [1, 2, 3, 4, 5]
    before = count_rows(database)
    refused = acquire(client, acme)
    problem = assert_problem(refused, 402, "quota_exceeded")
    assert problem["quota"] == "concurrent_runs" and problem["limit"] == 5
    assert problem["in_use"] == 5 and problem["upgrade_to"] == "starter"
    assert count_rows(database) == before
    # Releasing one frees its slot for the next run.
    client.delete(f"{leases_url(acme)}/{leases[0]['id']}", headers=acme.headers)
    assert acquire(client, acme).status_code == 201


def test_slots_are_counted_per_org_across_its_teams(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant("Acme")
    lab = client.post(
        f"/api/v1/orgs/{acme.org_id}/teams", headers=acme.headers, json={"name": "Lab"}
    ).json()
    for _ in range(4):
        assert acquire(client, acme).status_code == 201
    lab_url = f"/api/v1/teams/{lab['id']}/runs/leases"
    assert client.post(lab_url, headers=acme.headers, json={}).status_code == 201
    assert_problem(client.post(lab_url, headers=acme.headers, json={}), 402, "quota_exceeded")
    assert_problem(acquire(client, acme), 402, "quota_exceeded")
    # Another org has slots of its own.
    other = factory.tenant("Other")
    assert acquire(client, other).status_code == 201


def test_an_expired_lease_frees_its_slot_at_once(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    acme = factory.tenant("Acme")
    for _ in range(5):
        assert acquire(client, acme, ttl_seconds=30).status_code == 201
    assert_problem(acquire(client, acme), 402)
    clock.advance(seconds=29)
    assert_problem(acquire(client, acme), 402)
    clock.advance(seconds=1)
    # No worker has run: the acquire itself sees that the TTLs have passed.
    assert client.get(leases_url(acme), headers=acme.headers).json()["items"] == []
    fresh = acquire(client, acme)
    assert fresh.status_code == 201 and fresh.json()["concurrent_runs"]["in_use"] == 1
    assert held(database, acme.org_id) == 1


def test_the_quota_view_counts_live_leases_as_concurrent_runs(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme")

    def runs(path: str) -> dict[str, Any]:
        quotas = client.get(path, headers=acme.headers).json()["quotas"]
        found: dict[str, Any] = next(q for q in quotas if q["key"] == "concurrent_runs")
        return found

    org_quotas = f"/api/v1/orgs/{acme.org_id}/quotas"
    team_quotas = f"/api/v1/teams/{acme.team_id}/quotas"
    assert runs(org_quotas)["used"] == "0" and runs(org_quotas)["remaining"] == "5"
    assert acquire(client, acme, ttl_seconds=30).status_code == 201
    for _ in range(2):
        assert acquire(client, acme, ttl_seconds=60).status_code == 201
    assert runs(org_quotas)["used"] == "3" and runs(org_quotas)["remaining"] == "2"
    assert runs(team_quotas)["used"] == "3"
    clock.advance(seconds=30)  # the first lease expired; no acquire or worker has swept it
    assert runs(org_quotas)["used"] == "2" and runs(org_quotas)["remaining"] == "3"


def test_releasing_an_expired_lease_is_gone_and_writes_nothing(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    acme = factory.tenant("Acme")
    lease = acquire(client, acme, ttl_seconds=30).json()
    clock.advance(seconds=30)
    tables = ("audit_events", "run_leases")
    before = {t: count_rows(database)[t] for t in tables}
    late = client.delete(f"{leases_url(acme)}/{lease['id']}", headers=acme.headers)
    assert_problem(late, 410, "lease_expired")
    assert {t: count_rows(database)[t] for t in tables} == before


def test_a_heartbeat_extends_a_lease_until_it_has_expired(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme")
    lease = acquire(client, acme, ttl_seconds=60).json()
    beat_url = f"{leases_url(acme)}/{lease['id']}/heartbeat"
    clock.advance(seconds=50)
    beat = client.post(beat_url, headers=acme.headers)
    assert beat.status_code == 200, beat.text
    assert beat.json()["expires_at"].startswith("2026-01-01T00:01:50")
    clock.advance(seconds=50)  # 100 s after the acquire: alive thanks to the heartbeat
    assert [x["id"] for x in client.get(leases_url(acme), headers=acme.headers).json()["items"]]
    longer = client.post(beat_url, headers=acme.headers, json={"ttl_seconds": 600})
    assert longer.json()["ttl_seconds"] == 600
    assert longer.json()["expires_at"].startswith("2026-01-01T00:11:40")
    clock.advance(seconds=600)
    late = client.post(beat_url, headers=acme.headers)
    assert_problem(late, 410, "lease_expired")


def test_heartbeats_are_not_audited_but_acquire_and_release_are(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    lease = acquire(client, acme, run_id="r1").json()
    for _ in range(3):
        client.post(f"{leases_url(acme)}/{lease['id']}/heartbeat", headers=acme.headers)
    client.delete(f"{leases_url(acme)}/{lease['id']}", headers=acme.headers)
    with database.session(write=False) as session:
        actions = session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.org_id == acme.org_id, AuditEvent.action.startswith("run_lease."))
            .order_by(AuditEvent.seq)
        ).all()
    assert actions == ["run_lease.acquired", "run_lease.released"]


def test_a_run_holds_at_most_one_lease(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme")
    first = acquire(client, acme, run_id="nightly", ttl_seconds=30).json()
    twice = acquire(client, acme, run_id="nightly")
    assert assert_problem(twice, 409, "lease_held")["lease_id"] == first["id"]
    assert acquire(client, acme, run_id="another").status_code == 201
    clock.advance(seconds=30)  # the first expired: the run may hold a new lease
    assert acquire(client, acme, run_id="nightly").status_code == 201


def test_another_tenants_lease_is_not_found(client: TestClient, factory: Factory) -> None:
    acme, rival = factory.tenant("Acme"), factory.tenant("Rival")
    lease = acquire(client, acme).json()
    for method, suffix in (("POST", "/heartbeat"), ("DELETE", "")):
        # Through the rival's own team path, and through acme's team path.
        own = client.request(
            method, f"{leases_url(rival)}/{lease['id']}{suffix}", headers=rival.headers
        )
        assert_problem(own, 404)
        theirs = client.request(
            method, f"{leases_url(acme)}/{lease['id']}{suffix}", headers=rival.headers
        )
        assert_problem(theirs, 404)


def test_an_api_key_holds_leases_in_its_own_name(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant("Acme")
    key = factory.api_key(acme, permissions=["usage:write", "usage:read"])
    resp = client.post(leases_url(acme), headers=bearer(key["secret"]), json={})
    assert resp.status_code == 201, resp.text
    assert (resp.json()["holder_type"], resp.json()["holder_id"]) == ("api_key", key["id"])


def test_bad_lease_input_is_refused_and_writes_nothing(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    before = count_rows(database)
    for body in ({"ttl_seconds": 1}, {"ttl_seconds": 10**9}, {"run_id": ""}, {"run_id": "x" * 201}):
        assert_problem(acquire(client, acme, **body), 422, "validation_error")
    assert count_rows(database) == before


async def _acquire_all(app: FastAPI, tenant: Tenant, n: int) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as ac:
        return list(
            await asyncio.gather(
                *(ac.post(leases_url(tenant), headers=tenant.headers, json={}) for _ in range(n))
            )
        )


def test_twenty_concurrent_acquires_for_the_last_slot_give_exactly_one_lease(
    client: TestClient, app: FastAPI, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    for _ in range(4):
        assert acquire(client, acme).status_code == 201
    answers = asyncio.run(_acquire_all(app, acme, 20))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] + [402] * 19, [r.text for r in answers if r.status_code != 402]
    assert held(database, acme.org_id) == 5


def test_the_worker_sweeps_expired_leases(
    client: TestClient,
    factory: Factory,
    clock: FrozenClock,
    database: Database,
    settings: Settings,
) -> None:
    acme, other = factory.tenant("Acme"), factory.tenant("Other")
    acquire(client, acme, ttl_seconds=30)
    acquire(client, acme, ttl_seconds=300)
    acquire(client, other, ttl_seconds=30)
    clock.advance(seconds=60)
    report = run_once(settings, clock=clock, database=database)
    assert report.leases.expired_leases == 2 and report.leases.orgs == 2
    assert not report.failed
    assert (held(database, acme.org_id), held(database, other.org_id)) == (1, 0)
    assert run_once(settings, clock=clock, database=database).leases.expired_leases == 0
