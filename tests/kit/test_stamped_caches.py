"""What a process keeps under an org's version stamp is never served stale.

The effective plan, the rates of the limiter and which org a team is in are read once per
change and kept in each process under the org's version (`kit.stamps.stamped`). Here a
second app with its own engine (another process on the same database) is warmed first; then a
change made through the first app, or written straight through a session, must show on the
second app's very next request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from conftest import Factory, Tenant, bearer, operator_headers, operator_url
from tenantry.app import create_app
from tenantry.config import Settings
from tenantry.kit import stamps
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.plans.models import PlanOverride
from tenantry.tenancy.models import Organization

ADMIT = "/api/v1/admission"


@pytest.fixture
def elsewhere(settings: Settings, clock: FrozenClock, database_url: str) -> Iterator[TestClient]:
    """Another process on the same database: its own engine, pool and caches."""
    other = Database(database_url)
    with TestClient(
        create_app(settings, clock=clock, database=other), raise_server_exceptions=False
    ) as c:
        yield c
    other.dispose()


def key_of(client: TestClient, tenant: Tenant) -> dict[str, str]:
    resp = client.post(
        f"/api/v1/orgs/{tenant.org_id}/api-keys", headers=tenant.headers, json={"name": "k"}
    )
    assert resp.status_code == 201, resp.text
    return bearer(resp.json()["secret"])


def admit(client: TestClient, key: dict[str, str], team: str, hours: str) -> Any:
    body = {"team": team, "action": "llm.generate", "estimate": {"compute_hours": hours}}
    return client.post(ADMIT, headers=key, json=body)


def set_quota(client: TestClient, tenant: Tenant, limit: str) -> None:
    resp = client.put(
        operator_url(tenant.org_id, "/plan-overrides"),
        headers=operator_headers(client),
        json={"quotas": {"compute_hours": {"limit": limit, "enforcement": "hard"}}},
    )
    assert resp.status_code == 200, resp.text


def compute_left(resp: Any) -> Any:
    assert resp.status_code == 200, resp.text
    return resp.json()["remaining"]["compute_hours"]


def test_a_changed_custom_plan_shows_in_another_process_at_once(
    client: TestClient, factory: Factory, elsewhere: TestClient
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    key = key_of(client, acme)
    set_quota(client, acme, "10")
    assert compute_left(admit(elsewhere, key, acme.team_id, "1")) == "9"  # cached there now
    set_quota(client, acme, "3")
    assert compute_left(admit(elsewhere, key, acme.team_id, "1")) == "1"
    denied = admit(elsewhere, key, acme.team_id, "2").json()
    assert denied["decision"] == "deny"
    assert denied["reasons"][0]["limit"] == "3"
    # Taking the custom plan away is a change too: back to the catalog's 5,000 hours.
    resp = client.put(
        operator_url(acme.org_id, "/plan-overrides"), headers=operator_headers(client), json={}
    )
    assert resp.status_code == 200, resp.text
    assert compute_left(admit(elsewhere, key, acme.team_id, "1")) == "4997"


def test_a_changed_catalog_plan_shows_in_another_process_at_once(
    client: TestClient, factory: Factory, elsewhere: TestClient
) -> None:
    acme = factory.tenant("Acme", plan="starter")
    key = key_of(client, acme)
    assert compute_left(admit(elsewhere, key, acme.team_id, "1")) == "999"
    resp = client.put(
        operator_url(acme.org_id, "/plan"),
        headers=operator_headers(client),
        json={"plan": "professional"},
    )
    assert resp.status_code == 200, resp.text
    assert compute_left(admit(elsewhere, key, acme.team_id, "1")) == "4998"


def test_a_changed_own_rate_limit_shows_in_another_process_at_once(
    client: TestClient, factory: Factory, elsewhere: TestClient
) -> None:
    acme = factory.tenant("Acme")
    teams = f"/api/v1/orgs/{acme.org_id}/teams"
    first = elsewhere.get(teams, headers=acme.headers)
    assert first.status_code == 200
    plan_burst = int(first.headers["RateLimit-Limit"])
    resp = client.put(
        f"/api/v1/orgs/{acme.org_id}/rate-limits", headers=acme.headers, json={"org_burst": 2}
    )
    assert resp.status_code == 200, resp.text
    assert int(resp.json()["effective"]["org_burst"]) == 2 < plan_burst
    assert elsewhere.get(teams, headers=acme.headers).headers["RateLimit-Limit"] == "2"


def test_a_team_made_or_deleted_shows_to_an_api_key_in_another_process_at_once(
    client: TestClient, factory: Factory, elsewhere: TestClient
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    key = key_of(client, acme)
    made = client.post(
        f"/api/v1/orgs/{acme.org_id}/teams", headers=acme.headers, json={"name": "Vision"}
    ).json()
    assert admit(elsewhere, key, made["id"], "1").status_code == 200  # cached there now
    resp = client.request(
        "DELETE",
        f"/api/v1/teams/{made['id']}",
        headers=acme.headers,
        json={"confirm": made["slug"]},
    )
    assert resp.status_code == 204, resp.text
    assert admit(elsewhere, key, made["id"], "1").status_code == 404
    # Another org's team stays another's, cached or not.
    other = factory.tenant("Other")
    for _ in range(2):
        assert admit(elsewhere, key, other.team_id, "1").status_code == 404


def test_writes_that_bypass_the_orm_objects_bump_the_version(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    set_quota(client, acme, "10")

    def version() -> int:
        with database.session(write=False) as session:
            return stamps.version_of(session, acme.org_id)

    statements = [
        update(Organization).where(Organization.id == acme.org_id).values(plan="starter"),
        update(PlanOverride).where(PlanOverride.org_id == acme.org_id).values(name="Custom"),
        delete(PlanOverride).where(PlanOverride.org_id == acme.org_id),
    ]
    for statement in statements:
        before = version()
        with database.session(write=True) as session:
            session.execute(statement)
            session.commit()
        assert version() == before + 1, statement
    # Renaming the org decides nothing: no bump, the caches stay warm.
    before = version()
    resp = client.patch(f"/api/v1/orgs/{acme.org_id}", headers=acme.headers, json={"name": "A"})
    assert resp.status_code == 200, resp.text
    assert version() == before


def test_a_transaction_that_changed_the_plan_reads_it_afresh_and_caches_nothing(
    factory: Factory, database: Database, app: FastAPI
) -> None:
    from tenantry.metering.plans import effective_plan

    acme = factory.tenant("Acme", plan="starter")
    with database.session(write=True) as session:
        assert effective_plan(session, acme.org_id).key == "starter"
        org = session.get(Organization, acme.org_id)
        assert org is not None
        org.plan = "enterprise"
        assert effective_plan(session, acme.org_id).key == "enterprise"
        session.rollback()
    with database.session(write=False) as session:
        assert effective_plan(session, acme.org_id).key == "starter"
    # The rolled-back change took the version it would have had; had its plan been cached
    # under that version, the next real change would serve it.
    with database.session(write=True) as session:
        session.execute(
            update(Organization).where(Organization.id == acme.org_id).values(plan="professional")
        )
        session.commit()
    with database.session(write=True) as session:  # the engine the rolled-back one used
        assert effective_plan(session, acme.org_id).key == "professional"
