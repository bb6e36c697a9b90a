"""Data classification: seed 001's levels accepted as written, bad levels refused with nothing
written, and each handling requirement enforced at admission (region, TLS, approval, access
logging) or by the worker (retention); exact under fifty parallel admissions."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import Factory, Tenant, assert_problem, count_rows
from governance.test_governance import ADMIT, join, login
from tenantry.audit.models import AuditEvent
from tenantry.governance import tasks as governance_tasks
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.metering.models import Reservation
from tenantry.spend.models import LlmCall, LlmCallRollup

SEED = {
    "data_classification": {
        "levels": {
            "restricted": {
                "categories": ["medical", "legal", "security"],
                "handling_requirements": {
                    "encryption_required": True,
                    "access_logging": True,
                    "retention_period_days": 90,
                    "geographic_restrictions": ["US"],
                    "approval_required": True,
                },
            }
        }
    }
}


def levels_url(tenant: Tenant) -> str:
    return f"/api/v1/orgs/{tenant.org_id}/governance/classification"


def set_levels(client: TestClient, tenant: Tenant, levels: dict[str, Any]) -> dict[str, Any]:
    resp = client.put(levels_url(tenant), headers=tenant.headers, json={"levels": levels})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def over_tls(app: FastAPI) -> TestClient:
    return TestClient(app, base_url="https://testserver", raise_server_exceptions=False)


def body(tenant: Tenant, level: str | None, region: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "team": tenant.team_id, "action": "llm.generate", "provider": "openai",
        "model": "gpt-4o", "estimate": {"llm_cost_usd": "1"},
        **({"data_classification": level} if level else {}),
        **({"region": region} if region else {}), **extra,
    }  # fmt: skip


def accessed(database: Database, org_id: str) -> list[AuditEvent]:
    with database.session(write=False) as s:
        return list(
            s.scalars(
                select(AuditEvent).where(
                    AuditEvent.org_id == org_id,
                    AuditEvent.action == "data_classification.accessed",
                )
            )
        )


def reservations(database: Database, org_id: str) -> int:
    with database.session(write=False) as s:
        query = select(func.count()).select_from(Reservation).where(Reservation.org_id == org_id)
        return int(s.scalar(query) or 0)


def test_the_default_levels_and_seed_001s_json_as_written(
    client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant("Acme")
    shown = client.get(levels_url(acme), headers=acme.headers).json()
    assert list(shown["levels"]) == ["public", "internal", "confidential", "restricted"]
    assert shown["defined_by"] is None
    assert not any(level["configured"] for level in shown["levels"].values())
    assert shown["levels"]["restricted"]["handling_requirements"]["approval_required"] is False

    # Seed 001's `PUT /teams/{team}/governance/config` body, as written.
    resp = client.put(
        f"/api/v1/teams/{acme.team_id}/governance/config", headers=acme.headers, json=SEED
    )
    assert resp.status_code == 200, resp.text
    kept = resp.json()["settings"]["data_classification"]["levels"]["restricted"]
    assert kept["handling_requirements"]["geographic_restrictions"] == ["US"]

    saved = set_levels(client, acme, SEED["data_classification"]["levels"])
    assert saved["defined_by"] == "org"
    restricted = saved["levels"]["restricted"]
    assert restricted["configured"] is True
    assert restricted["categories"] == ["medical", "legal", "security"]
    assert restricted["handling_requirements"] == {
        "encryption_required": True, "access_logging": True, "retention_period_days": 90,
        "geographic_restrictions": ["US"], "approval_required": True,
    }  # fmt: skip
    assert saved["levels"]["public"]["configured"] is False
    assert client.get(levels_url(acme), headers=acme.headers).json() == saved


def test_bad_levels_are_refused_at_save_and_nothing_is_written(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    before = count_rows(database)
    bad_requirements: list[dict[str, Any]] = [
        {"encryption_required": True, "shred_after_use": True},  # an unknown requirement
        {"encryption_required": "true"},  # a string, not a bool
        {"retention_period_days": "90"},
        {"retention_period_days": 0},
        {"geographic_restrictions": "US"},
        {"geographic_restrictions": []},
        {"approval_required": 1},
    ]
    for needs in bad_requirements:
        levels = {"restricted": {"handling_requirements": needs}}
        resp = client.put(levels_url(acme), headers=acme.headers, json={"levels": levels})
        assert_problem(resp, 422)
        seeded = {"data_classification": {"levels": levels}}
        resp = client.put(
            f"/api/v1/teams/{acme.team_id}/governance/config", headers=acme.headers, json=seeded
        )
        assert_problem(resp, 422)
    resp = client.put(levels_url(acme), headers=acme.headers, json={"levels": {"Top Secret!": {}}})
    assert_problem(resp, 422)
    assert count_rows(database) == before


def test_an_unknown_level_in_a_request_is_422_and_writes_nothing(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    set_levels(client, acme, {"secret": {"categories": ["hr"]}})
    before = count_rows(database)
    resp = client.post(ADMIT, headers=acme.headers, json=body(acme, "top-secret", "US"))
    problem = assert_problem(resp, 422, "unknown_data_classification")
    assert "top-secret" in problem["detail"] and "secret" in problem["detail"]
    resp = client.post(
        f"/api/v1/orgs/{acme.org_id}/governance/explain",
        headers=acme.headers,
        json={"team": acme.team_id, "data_classification": "top-secret"},
    )
    assert_problem(resp, 422, "unknown_data_classification")
    assert count_rows(database) == before
    # Known levels are matched without case; a request without a level is not classified.
    ok = client.post(ADMIT, headers=acme.headers, json=body(acme, "Secret", None))
    assert ok.json()["decision"] == "allow", ok.text
    assert client.post(ADMIT, headers=acme.headers, json=body(acme, None, None)).status_code == 200


def test_restricted_requests_region_tls_approval_and_access_logging(
    app: FastAPI, client: TestClient, factory: Factory, database: Database, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    set_levels(client, acme, SEED["data_classification"]["levels"])
    _, dev = join(client, factory, acme)
    tls = over_tls(app)

    refused = tls.post(ADMIT, headers=dev, json=body(acme, "restricted", "EU")).json()
    assert refused["decision"] == "deny"
    [reason] = refused["reasons"]
    assert reason["code"] == "data_classification_region_denied"
    assert "'restricted'" in reason["detail"] and "'EU'" in reason["detail"]
    nowhere = tls.post(ADMIT, headers=dev, json=body(acme, "restricted", None)).json()
    assert nowhere["reasons"][0]["code"] == "data_classification_region_denied"

    plain_http = client.post(ADMIT, headers=dev, json=body(acme, "restricted", "US")).json()
    assert [r["code"] for r in plain_http["reasons"]] == ["data_classification_requires_tls"]

    asked = tls.post(ADMIT, headers=dev, json=body(acme, "restricted", "us")).json()
    assert asked["decision"] == "deny"
    assert asked["reasons"][0]["code"] == "approval_required"
    assert "Data classified 'restricted'" in asked["reasons"][0]["detail"]
    approval_id = asked["reasons"][0]["approval_id"]
    assert accessed(database, acme.org_id) == [] and reservations(database, acme.org_id) == 0

    # The org's owners and admins decide a level's approvals.
    decided = client.post(f"/api/v1/approvals/{approval_id}/approve", headers=acme.headers)
    assert decided.status_code == 200, decided.text
    clock.advance(minutes=1)
    retry = body(acme, "restricted", "us", approval_id=approval_id)
    admitted = tls.post(ADMIT, headers=dev, json=retry).json()
    assert admitted["decision"] == "allow", admitted
    again = tls.post(ADMIT, headers=dev, json=retry).json()
    assert again["decision"] == "deny" and again["reasons"][0]["code"] == "approval_used"

    [event] = accessed(database, acme.org_id)
    assert event.target_id == admitted["reservation_id"]
    assert event.summary["data_classification"] == "restricted"
    assert event.summary["region"] == "US"


def test_access_logging_writes_one_event_per_admitted_request_only(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    set_levels(client, acme, {
        "internal": {"handling_requirements": {"access_logging": True}},
        "confidential": {"handling_requirements": {
            "access_logging": True, "geographic_restrictions": ["DE", "FR"]}},
    })  # fmt: skip
    for _ in range(3):
        resp = client.post(ADMIT, headers=acme.headers, json=body(acme, "internal", None))
        assert resp.json()["decision"] == "allow"
    denied = client.post(ADMIT, headers=acme.headers, json=body(acme, "confidential", "US"))
    assert denied.json()["decision"] == "deny"
    public = client.post(ADMIT, headers=acme.headers, json=body(acme, "public", None))
    assert public.json()["decision"] == "allow"
    events = accessed(database, acme.org_id)
    assert len(events) == 3
    assert {e.summary["data_classification"] for e in events} == {"internal"}


def test_explain_shows_the_classification_decision(
    app: FastAPI, client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    set_levels(client, acme, SEED["data_classification"]["levels"])
    url = f"/api/v1/orgs/{acme.org_id}/governance/explain"
    before = count_rows(database)
    ask = {"team": acme.team_id, "data_classification": "restricted", "region": "EU"}
    found = over_tls(app).post(url, headers=acme.headers, json=ask).json()
    assert found["decision"] == "deny"
    assert found["classification"]["level"] == "restricted"
    assert found["classification"]["reasons"][0]["code"] == "data_classification_region_denied"
    found = over_tls(app).post(url, headers=acme.headers, json={**ask, "region": "US"}).json()
    assert found["decision"] == "require_approval"
    assert found["classification"]["outcome"] == "require_approval"
    assert (
        client.post(url, headers=acme.headers, json={"team": acme.team_id}).json()["classification"]
        is None
    )
    assert count_rows(database) == before


def test_retention_purges_the_calls_of_a_level_when_due(
    client: TestClient, factory: Factory, database: Database, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    other = factory.tenant("Other", plan="professional")
    for tenant, days in ((acme, 90), (other, 365)):
        needs = {"retention_period_days": days}
        set_levels(client, tenant, {"restricted": {"handling_requirements": needs}})

    def record(tenant: Tenant, prefix: str, level: str | None, headers: Any = None) -> None:
        calls = [
            {"id": f"{prefix}{i}", "team": tenant.team_id, "provider": "openai",
             "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5, "cost": "0.5",
             **({"data_classification": level} if level else {})}
            for i in range(3)
        ]  # fmt: skip
        sent = {"calls": calls}
        resp = client.post("/api/v1/llm-calls", headers=headers or tenant.headers, json=sent)
        assert resp.status_code == 200 and resp.json()["accepted"] == 3, resp.text

    record(acme, "old-r", "Restricted")
    record(acme, "old-i", "internal")
    record(acme, "old-n", None)
    record(other, "old-r", "restricted")
    clock.advance(days=60)
    record(acme, "new-r", "restricted", login(client, acme.owner_email))
    clock.advance(days=31)  # the first calls are 91 days old, the last 31

    report = governance_tasks.purge_classified_calls(database, now=clock.now())
    assert report.calls_purged == 3 and not report.failed_orgs
    with database.session(write=False) as s:
        left = {(o, i) for o, i in s.execute(select(LlmCall.org_id, LlmCall.id))}
        purged = list(
            s.scalars(
                select(AuditEvent).where(
                    AuditEvent.org_id == acme.org_id, AuditEvent.action == "llm_calls.purged"
                )
            )
        )
    assert {i for o, i in left if o == acme.org_id} == {
        *(f"old-i{i}" for i in range(3)), *(f"old-n{i}" for i in range(3)),
        *(f"new-r{i}" for i in range(3)),
    }  # fmt: skip
    assert {i for o, i in left if o == other.org_id} == {f"old-r{i}" for i in range(3)}
    [event] = purged
    assert event.summary == {"data_classification": "restricted", "calls": 3}
    # The rollups keep the totals: the spend of the purged calls still counts.
    with database.session(write=False) as s:
        query = select(func.sum(LlmCallRollup.requests)).where(LlmCallRollup.org_id == acme.org_id)
        assert s.scalar(query) == 12
    again = governance_tasks.purge_classified_calls(database, now=clock.now())
    assert again.calls_purged == 0


def test_fifty_parallel_admissions_are_exact(
    app: FastAPI, client: TestClient, factory: Factory, database: Database, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    set_levels(client, acme, {
        **SEED["data_classification"]["levels"],
        "internal": {"handling_requirements": {
            "access_logging": True, "geographic_restrictions": ["US", "CA"]}},
    })  # fmt: skip
    _, dev = join(client, factory, acme)
    clock.advance(minutes=1)
    # A fifth each: restricted outside its region; restricted inside it (approval); internal
    # outside its regions; internal inside them (admitted and logged); restricted, no region.
    kinds = [("restricted", "EU"), ("restricted", "US"), ("internal", "FR"), ("internal", "CA"),
             ("restricted", None)]  # fmt: skip
    bodies = [body(acme, *kinds[i % 5], tags={"n": str(i)}) for i in range(50)]
    answers = all_at_once(app, dev, bodies)
    by_kind: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for i, answer in enumerate(answers):
        by_kind.setdefault(kinds[i % 5], []).append(answer)
    for kind in (("restricted", "EU"), ("internal", "FR"), ("restricted", None)):
        assert {a["decision"] for a in by_kind[kind]} == {"deny"}
        assert {a["reasons"][0]["code"] for a in by_kind[kind]} == {
            "data_classification_region_denied"
        }
    asked = by_kind[("restricted", "US")]
    assert {a["reasons"][0]["code"] for a in asked} == {"approval_required"}
    assert len({a["reasons"][0]["approval_id"] for a in asked}) == 10
    assert {a["decision"] for a in by_kind[("internal", "CA")]} == {"allow"}
    assert reservations(database, acme.org_id) == 10
    assert len(accessed(database, acme.org_id)) == 10

    # One approval, retried fifty times at once: admitted exactly once.
    approval_id = asked[0]["reasons"][0]["approval_id"]
    decided = client.post(f"/api/v1/approvals/{approval_id}/approve", headers=acme.headers)
    assert decided.status_code == 200, decided.text
    clock.advance(minutes=1)
    retry = body(acme, "restricted", "US", tags={"n": "1"}, approval_id=approval_id)
    answers = all_at_once(app, dev, [retry] * 50)
    assert sum(1 for a in answers if a["decision"] == "allow") == 1
    assert reservations(database, acme.org_id) == 11
    assert len(accessed(database, acme.org_id)) == 11


def all_at_once(app: FastAPI, headers: dict[str, str], bodies: list[dict[str, Any]]) -> list[Any]:
    barrier = threading.Barrier(len(bodies))

    def one(sent: dict[str, Any]) -> Any:
        tls = over_tls(app)
        barrier.wait()
        resp = tls.post(ADMIT, headers=headers, json=sent)
        assert resp.status_code == 200, resp.text
        return resp.json()

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(one, bodies))


def test_a_teams_levels_from_seed_001s_config_route_apply_to_that_team(
    app: FastAPI, client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    other_team = client.post(
        f"/api/v1/orgs/{acme.org_id}/teams", headers=acme.headers, json={"name": "Research"}
    )
    assert other_team.status_code == 201, other_team.text
    needs = {"geographic_restrictions": ["US"]}
    seeded = {"data_classification": {"levels": {"restricted": {"handling_requirements": needs}}}}
    resp = client.put(
        f"/api/v1/teams/{acme.team_id}/governance/config", headers=acme.headers, json=seeded
    )
    assert resp.status_code == 200, resp.text
    tls = over_tls(app)
    here = tls.post(ADMIT, headers=acme.headers, json=body(acme, "restricted", "EU")).json()
    assert here["decision"] == "deny"
    assert here["reasons"][0]["code"] == "data_classification_region_denied"
    elsewhere = body(acme, "restricted", "EU", team=other_team.json()["id"])
    assert tls.post(ADMIT, headers=acme.headers, json=elsewhere).json()["decision"] == "allow"
    # The org's own levels are still the defaults.
    assert client.get(levels_url(acme), headers=acme.headers).json()["defined_by"] is None
