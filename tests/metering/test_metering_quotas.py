"""Count quotas held atomically (20 racing for the last slot: one wins), plan overrides (a
custom plan per org, audited), quota listings, and alerts at 80% and 100% once per period."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import Factory, Tenant, assert_problem, bearer, operator_headers, operator_url
from tenantry.audit.models import AuditEvent
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.kit.errors import PaymentRequired
from tenantry.metering.models import QuotaAlert
from tenantry.metering.plans import effective_plan
from tenantry.metering.quotas import COUNT_SOURCES, claim_count, register_count_source
from tenantry.tenancy.models import OrgMembership


def race(n: int, attempt: Callable[[int], Any]) -> list[Any]:
    """`attempt(i)` for i < n, each in a thread of its own, released together."""
    barrier = threading.Barrier(n)

    def one(i: int) -> Any:
        barrier.wait()
        return attempt(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def invite(client: TestClient, tenant: Tenant, email: str) -> str:
    resp = client.post(
        f"/api/v1/orgs/{tenant.org_id}/invitations",
        headers=tenant.headers,
        json={"email": email, "role": "member"},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["token"])


def members(database: Database, org_id: str) -> int:
    with database.session(write=False) as s:
        query = select(func.count()).where(OrgMembership.org_id == org_id)
        return int(s.execute(query).scalar_one())


def test_twenty_joins_for_the_last_member_slot(
    app: FastAPI, client: TestClient, factory: Factory, database: Database, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme")  # Free: 5 members
    for _ in range(3):
        factory.member(acme)
    invited = []
    for _ in range(20):
        _, email, token = factory.user()
        invited.append((invite(client, acme, email), token))
    clock.advance(minutes=1)  # fresh rate-limit allowance for the burst below

    def accept(i: int) -> int:
        invitation, token = invited[i]
        own = TestClient(app, raise_server_exceptions=False)
        return own.post(
            f"/api/v1/invitations/{invitation}/accept", headers=bearer(token)
        ).status_code

    statuses = race(20, accept)
    assert sorted(statuses) == [200] + [402] * 19
    assert members(database, acme.org_id) == 5
    # The refusal says which quota and which plan would have room.
    invitation, token = invited[statuses.index(402)]
    problem = assert_problem(
        client.post(f"/api/v1/invitations/{invitation}/accept", headers=bearer(token)),
        402,
        "quota_exceeded",
    )
    assert (problem["quota"], problem["limit"], problem["upgrade_to"]) == (
        "team_members",
        "5",
        "starter",
    )
    # Someone leaving frees the slot, whatever the way they left.
    leaver = next(
        m["user_id"]
        for m in client.get(f"/api/v1/orgs/{acme.org_id}/members", headers=acme.headers).json()[
            "items"
        ]
        if m["user_id"] != acme.owner_id
    )
    removed = client.delete(f"/api/v1/orgs/{acme.org_id}/members/{leaver}", headers=acme.headers)
    assert removed.status_code == 204, removed.text
    accepted = client.post(f"/api/v1/invitations/{invitation}/accept", headers=bearer(token))
    assert accepted.status_code == 200, accepted.text


@pytest.fixture
def models_counted() -> Any:
    """A stand-in count source for the `models` quota in place of the registry's own, which
    is put back afterwards."""
    made: dict[str, int] = {}
    lock = threading.Lock()
    registered = COUNT_SOURCES["models"]
    register_count_source("models", lambda session, org_id: made.get(org_id, 0))
    yield made, lock
    COUNT_SOURCES["models"] = registered


def test_claim_count_lets_one_of_twenty_take_the_last_slot(
    factory: Factory, database: Database, models_counted: Any
) -> None:
    made, lock = models_counted
    acme = factory.tenant("Acme")  # Free: 10 models
    made[acme.org_id] = 9

    def create(_: int) -> str:
        with database.session(write=True) as session:
            try:
                claim_count(session, acme.org_id, "models")
            except PaymentRequired:
                return "refused"
            with lock:  # the "insert", seen by the next claimant once committed
                made[acme.org_id] += 1
            session.commit()
            return "created"

    outcomes = race(20, create)
    assert sorted(outcomes) == ["created"] + ["refused"] * 19
    assert made[acme.org_id] == 10
    with pytest.raises(ValueError):
        register_count_source("compute_hours", lambda s, o: 0)


def test_a_custom_plan_per_org(client: TestClient, factory: Factory, database: Database) -> None:
    acme = factory.tenant("Acme")
    bravo = factory.tenant("Bravo")
    url = operator_url(acme.org_id, "/plan-overrides")
    operator = operator_headers(client)
    body = {
        "name": "Acme deal",
        "quotas": {"team_members": {"limit": "8"}, "api_calls": {"limit": None}},
        "rate_limits": {"org_per_minute": 900},
        "overage_rates": {"compute_hours": "0.40"},
    }
    # The org's own owner may not give it a custom plan: that is the operator's.
    owners_url = f"/api/v1/orgs/{acme.org_id}/plan-overrides"
    assert_problem(client.put(owners_url, headers=acme.headers, json=body), 403, "operator_only")
    resp = client.put(url, headers=operator, json=body)
    assert resp.status_code == 200, resp.text
    plan = resp.json()
    assert (plan["name"], plan["key"], plan["custom"]) == ("Acme deal", "free", True)
    quotas = {q["key"]: q for q in plan["quotas"]}
    assert quotas["team_members"]["limit"] == "8" and quotas["api_calls"]["limit"] is None
    assert plan["rate_limits"]["org_per_minute"] == 900
    assert plan["overage_rates"]["compute_hours"] == "0.4"
    with database.session(write=False) as s:
        assert effective_plan(s, acme.org_id).quotas["team_members"].limit == 8
        assert effective_plan(s, bravo.org_id).quotas["team_members"].limit == 5
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "operator.plan_overridden")
        ).all()
    # In the tenant's chain and in the operator chain, by the operator.
    assert sorted(e.chain_id for e in events) == sorted([acme.org_id, "operator"])
    assert {e.actor_type for e in events} == {"operator"}
    assert all(e.summary["after"]["name"] == "Acme deal" for e in events)
    # Back to the catalog plan.
    reset = client.put(url, headers=operator, json={})
    assert reset.json()["custom"] is False and reset.json()["name"] == "Free"
    # Bad overrides are refused, and an admin may not give the org a plan either.
    bad = {"quotas": {"gpus": {"limit": "1"}}}
    assert_problem(client.put(url, headers=operator, json=bad), 422, "unknown_quota")
    _, admin = factory.member(acme, org_role="admin")
    assert_problem(client.put(owners_url, headers=bearer(admin), json=body), 403, "operator_only")
    assert_problem(client.put(url, headers=bearer(admin), json=body), 403, "operator_only")


def test_quota_listing(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant("Acme")
    resp = client.get(f"/api/v1/orgs/{acme.org_id}/quotas", headers=acme.headers)
    listed = {q["key"]: q for q in resp.json()["quotas"]}
    assert resp.json()["upgrade_to"] == "starter"
    assert listed["team_members"] == {
        **listed["team_members"],
        "limit": "5",
        "used": "1",
        "remaining": "4",
        "enforcement": "hard",
        "kind": "count",
    }
    api_calls = listed["api_calls"]
    assert (api_calls["limit"], api_calls["period"], api_calls["enforcement"]) == (
        "10000",
        "day",
        "hard",
    )
    assert api_calls["period_start"] == "2026-01-01T00:00:00Z"
    team = client.get(f"/api/v1/teams/{acme.team_id}/quotas", headers=acme.headers).json()
    assert team["team_id"] == acme.team_id
    assert {q["key"] for q in team["quotas"]} == set(listed)


def test_alerts_at_80_and_100_percent_once_per_period(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    acme = factory.tenant("Acme", plan="starter")  # compute_hours soft
    client.put(
        operator_url(acme.org_id, "/plan-overrides"),
        headers=operator_headers(client),
        json={"quotas": {"compute_hours": {"limit": "10"}}},
    )

    key = bearer(factory.api_key(acme)["secret"])  # outlives a month, unlike a sign-in

    def use(n: int, hours: str) -> Any:
        body = {
            "events": [
                {
                    "id": f"c{n}",
                    "meter": "compute_hours",
                    "quantity": hours,
                    "timestamp": clock.now().isoformat(),
                }
            ],
        }
        resp = client.post("/api/v1/usage/events", headers=key, json=body)
        assert resp.status_code == 200, resp.text
        return resp

    use(1, "7.9")
    use(2, "0.1")  # 8 of 10: 80%
    use(3, "1")
    over = use(4, "1.5")  # 10.5: past 100%, allowed (soft), with a warning
    assert over.json()["accepted"] == 1
    assert over.headers["Tenantry-Quota-Warning"] == "compute_hours"
    use(5, "3")
    alerts = client.get(f"/api/v1/orgs/{acme.org_id}/quota-alerts", headers=acme.headers).json()
    assert [(a["quota"], a["threshold"], a["used"]) for a in alerts["alerts"]] == [
        ("compute_hours", 80, "8"),
        ("compute_hours", 100, "10.5"),
    ]
    with database.session(write=False) as s:
        query = select(AuditEvent).where(AuditEvent.action == "quota.alert_raised")
        raised = s.scalars(query.order_by(AuditEvent.seq))
        assert [(e.summary["threshold"], e.actor_type) for e in raised] == [
            (80, "system"),
            (100, "system"),
        ]
    # A new month is a new period: the alerts can come again.
    clock.advance(days=31)
    use(6, "9")
    with database.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(QuotaAlert)) == 3
