"""Operators, plan ownership, trials and suspension (docs/operators.md, docs/billing.md#trials).

Tenants change plan through billing only: onboarding and new orgs start on Free or on a trial of
the paid plan asked for; the deployment's operators give plans outside billing and custom plans,
create tenants, and suspend and resume them, each act audited in the tenant's chain and in the
operator chain. An operator is a member of no org by being one.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cli.test_cli import Cli, people  # noqa: F401 - the fixture
from conftest import (
    PASSWORD,
    Factory,
    assert_problem,
    bearer,
    count_rows,
    operator_headers,
    operator_of,
    operator_url,
)
from tenantry.audit.models import AuditEvent
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.worker import run_once

SRC = Path(__file__).resolve().parents[2] / "src" / "tenantry"


def onboard(client: TestClient, **extra: Any) -> Any:
    body = {
        "company_name": "Trial Co",
        "admin_email": f"admin-{secrets.token_hex(4)}@example.com",
        "admin_password": PASSWORD,
        **extra,
    }
    return client.post("/api/v1/onboard", json=body)


def events(database: Database, action: str) -> list[AuditEvent]:
    with database.session(write=False) as s:
        return list(
            s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by("chain_id"))
        )


# ---- no plan names outside plans/ ----


def test_no_plan_name_is_written_outside_the_plans_package() -> None:
    """The catalog is the one place that knows plan names; everything else asks it."""
    names = re.compile(r"""["'](free|starter|professional|enterprise)["']""")
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path.is_relative_to(SRC / "plans"):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if names.search(line):
                found.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert not found, "plan names outside src/tenantry/plans/:\n" + "\n".join(found)


# ---- tenants change plan through billing only ----


def test_an_owner_can_change_neither_the_plan_nor_the_custom_plan(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    before = count_rows(database)
    resp = client.patch(
        f"/api/v1/orgs/{acme.org_id}", headers=acme.headers, json={"plan": "enterprise"}
    )
    assert_problem(resp, 422, "validation_error")
    resp = client.put(
        f"/api/v1/orgs/{acme.org_id}/plan-overrides",
        headers=acme.headers,
        json={"quotas": {"models": {"limit": "1000"}}},
    )
    assert_problem(resp, 403, "operator_only")
    resp = client.put(operator_url(acme.org_id, "/plan"), headers=acme.headers, json={"plan": "x"})
    assert_problem(resp, 403, "operator_only")
    after = count_rows(database)
    # The refused change of the custom plan is on the org's trail as `denied`; nothing else.
    assert after.pop("audit_events") == before.pop("audit_events") + 1
    assert after == before
    plan = client.get(f"/api/v1/orgs/{acme.org_id}/plan", headers=acme.headers).json()
    assert (plan["key"], plan["custom"]) == ("free", False)


@pytest.mark.parametrize("field", ["plan", "tier"])
def test_onboarding_on_a_paid_plan_starts_a_trial(
    client: TestClient, clock: FrozenClock, field: str
) -> None:
    resp = onboard(client, **{field: "professional"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["organization"]["plan"] == "professional"
    assert body["trial_ends_at"] == (clock.now() + timedelta(days=14)).strftime(
        "%Y-%m-%dT%H:00:00Z"
    )
    org, headers = body["organization"]["id"], bearer(body["access_token"])
    sub = client.get(f"/api/v1/orgs/{org}/subscription", headers=headers).json()["subscription"]
    assert (sub["status"], sub["plan"]) == ("trialing", "professional")


def test_sign_up_plans_are_checked_before_anything_is_written(
    client: TestClient, factory: Factory, database: Database
) -> None:
    before = count_rows(database)
    assert_problem(onboard(client, plan="platinum"), 422, "invalid_plan")
    assert_problem(onboard(client, plan="starter", tier="enterprise"), 422, "invalid_plan")
    assert count_rows(database) == before
    # Free asked for by name is Free, with no trial.
    resp = onboard(client, tier="free")
    assert resp.status_code == 201 and resp.json()["trial_ends_at"] is None
    acme = factory.tenant("Acme")
    created = client.post(
        "/api/v1/orgs", headers=acme.headers, json={"name": "Side", "tier": "starter"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["plan"] == "starter" and created.json()["trial_ends_at"]
    plain = client.post("/api/v1/orgs", headers=acme.headers, json={"name": "Plain"})
    assert plain.json()["plan"] == "free" and plain.json()["trial_ends_at"] is None


def plan_and_subscription(database: Database, org_id: str) -> tuple[str, str | None]:
    """The org's plan and its subscription's status, as stored (sign-ins expire over a trial)."""
    from tenantry.billing.models import Subscription
    from tenantry.tenancy.models import Organization

    with database.session(write=False) as s:
        org = s.get(Organization, org_id)
        sub = s.scalars(select(Subscription).where(Subscription.org_id == org_id)).first()
        assert org is not None
        return org.plan, sub.status if sub is not None else None


def test_a_trial_that_ends_unpaid_falls_back_to_free(
    client: TestClient, clock: FrozenClock, settings: Settings, database: Database
) -> None:
    resp = onboard(client, tier="starter")
    org = resp.json()["organization"]["id"]
    clock.advance(days=13)
    run_once(settings, clock=clock, database=database)
    assert plan_and_subscription(database, org) == ("starter", "trialing")
    clock.advance(days=1, hours=2)  # the trial's end and the invoicing delay
    report = run_once(settings, clock=clock, database=database)
    assert not report.failed and report.billing.invoices == []
    assert plan_and_subscription(database, org) == ("free", "canceled")
    assert count_rows(database)["invoices"] == 0
    closed = events(database, "subscription.period_closed")
    assert [(e.summary["status"], e.summary["plan"]) for e in closed] == [("canceled", "free")]


def test_a_trial_with_a_payment_method_becomes_a_subscription(
    client: TestClient, clock: FrozenClock, settings: Settings, database: Database
) -> None:
    resp = onboard(client, plan="starter")
    org, headers = resp.json()["organization"]["id"], bearer(resp.json()["access_token"])
    card = {"token": "tok_visa", "brand": "visa", "last4": "4242", "exp_year": 2030}
    added = client.post(f"/api/v1/orgs/{org}/payment-methods", headers=headers, json=card)
    assert added.status_code == 201, added.text
    clock.advance(days=14, hours=2)
    report = run_once(settings, clock=clock, database=database)
    assert len(report.billing.invoices) == 1
    assert plan_and_subscription(database, org) == ("starter", "active")


# ---- operators ----


def test_an_operator_gives_plans_and_custom_plans_audited_twice(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    operator = operator_of(client)
    resp = client.put(
        operator_url(acme.org_id, "/plan"), headers=operator.headers, json={"plan": "enterprise"}
    )
    assert resp.status_code == 200, resp.text
    assert (resp.json()["plan"], resp.json()["member_count"]) == ("enterprise", 1)
    plan = client.get(f"/api/v1/orgs/{acme.org_id}/plan", headers=acme.headers).json()
    assert plan["key"] == "enterprise"
    found = events(database, "operator.plan_changed")
    assert sorted(e.chain_id for e in found) == sorted([acme.org_id, "operator"])
    assert {(e.actor_type, e.actor_id) for e in found} == {("operator", operator.user_id)}
    assert all(e.summary["plan"] == {"before": "free", "after": "enterprise"} for e in found)
    # The tenant's chain still verifies, with the operator's event in it.
    verdict = client.get(f"/api/v1/orgs/{acme.org_id}/audit-events/verify", headers=acme.headers)
    assert verdict.status_code == 200 and verdict.json()["ok"], verdict.text
    # A bad plan writes nothing.
    before = count_rows(database)
    resp = client.put(
        operator_url(acme.org_id, "/plan"), headers=operator.headers, json={"plan": "platinum"}
    )
    assert_problem(resp, 422, "invalid_plan")
    assert count_rows(database) == before


def test_an_operator_is_a_member_of_no_org(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant("Acme")
    operator = operator_headers(client)
    for path in (f"/orgs/{acme.org_id}", f"/orgs/{acme.org_id}/teams", f"/teams/{acme.team_id}"):
        assert_problem(client.get("/api/v1" + path, headers=operator), 404, "not_found")
    assert client.get("/api/v1/orgs", headers=operator).json()["items"] == []
    # Operator routes answer 404 for what does not exist.
    assert_problem(client.get(operator_url("org_nope"), headers=operator), 404, "not_found")


def test_operators_list_search_and_create_tenants(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme Robotics")
    factory.tenant("Bravo Labs", plan="starter")
    usage = {
        "events": [
            {
                "id": "u1",
                "meter": "compute_hours",
                "quantity": "3.5",
                "timestamp": FrozenClock().now().isoformat(),
                "team": acme.team_id,
            }
        ]
    }
    assert client.post("/api/v1/usage/events", headers=acme.headers, json=usage).status_code < 300
    operator = operator_headers(client)
    listed = client.get("/api/v1/operator/tenants", headers=operator).json()
    by_slug = {t["slug"]: t for t in listed["items"]}
    assert by_slug["acme-robotics"]["usage"]["compute_hours"] == "3.5"
    assert by_slug["bravo-labs"]["plan"] == "starter" and by_slug["bravo-labs"]["member_count"] == 1
    page = client.get("/api/v1/operator/tenants?limit=1", headers=operator).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    found = client.get("/api/v1/operator/tenants?q=robot", headers=operator).json()["items"]
    assert [t["slug"] for t in found] == ["acme-robotics"]
    # A tenant on any plan, for an existing account, and for someone invited.
    _, email, token = factory.user()
    made = client.post(
        "/api/v1/operator/tenants",
        headers=operator,
        json={"name": "Contract Co", "plan": "enterprise", "owner_email": email},
    )
    assert made.status_code == 201, made.text
    assert (made.json()["plan"], made.json()["member_count"]) == ("enterprise", 1)
    mine = client.get("/api/v1/orgs", headers=bearer(token)).json()["items"]
    assert [o["slug"] for o in mine] == ["contract-co"]
    invited = client.post(
        "/api/v1/operator/tenants",
        headers=operator,
        json={"name": "Later Co", "plan": "starter", "owner_email": "later@example.com"},
    )
    assert invited.status_code == 201, invited.text
    assert invited.json()["owner_invitation"]["url"].startswith("http://testserver/invitations/")
    assert invited.json()["member_count"] == 0
    created = events(database, "operator.tenant_created")
    assert len(created) == 4 and {e.actor_type for e in created} == {"operator"}


# ---- suspension ----


def test_a_suspended_tenant_is_refused_everywhere_and_resume_restores_it(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    bravo = factory.tenant("Bravo")
    key = bearer(factory.api_key(acme)["secret"])
    admission = {"team": acme.team_id, "action": "run", "estimate": {"compute_hours": "1"}}
    assert client.post("/api/v1/admission", headers=key, json=admission).status_code == 200
    operator = operator_headers(client)
    resp = client.post(
        operator_url(acme.org_id, "/suspend"), headers=operator, json={"reason": "unpaid"}
    )
    assert resp.status_code == 200 and resp.json()["status"] == "suspended", resp.text
    before = count_rows(database)
    refused = [
        client.get(f"/api/v1/orgs/{acme.org_id}", headers=acme.headers),
        client.get(f"/api/v1/orgs/{acme.org_id}/teams", headers=acme.headers),
        client.get(f"/api/v1/teams/{acme.team_id}", headers=acme.headers),
        client.post(
            f"/api/v1/orgs/{acme.org_id}/teams", headers=acme.headers, json={"name": "New"}
        ),
        client.get(f"/api/v1/orgs/{acme.org_id}/teams", headers=key),
        client.post("/api/v1/admission", headers=key, json=admission),
        client.post("/api/v1/admission", headers=acme.headers, json=admission),
        client.post(
            "/api/v1/usage/events",
            headers=key,
            json={"events": [{"id": "x", "meter": "compute_hours", "quantity": "1"}]},
        ),
        client.get("/api/v1/orgs", headers=key),
    ]
    for resp in refused:
        assert_problem(resp, 403, "tenant_suspended")
    after = count_rows(database)
    after.pop("audit_events"), before.pop("audit_events")  # refused changes are `denied` events
    assert after == before, "a suspended tenant's request changed something"
    # Another tenant is untouched; an outsider still gets 404, not the suspension.
    assert client.get(f"/api/v1/orgs/{bravo.org_id}", headers=bravo.headers).status_code == 200
    assert_problem(client.get(f"/api/v1/orgs/{acme.org_id}", headers=bravo.headers), 404)
    # Suspending twice is a conflict; resuming restores everything, nothing was deleted.
    again = client.post(operator_url(acme.org_id, "/suspend"), headers=operator, json={})
    assert_problem(again, 409, "tenant_suspended")
    resumed = client.post(operator_url(acme.org_id, "/resume"), headers=operator)
    assert resumed.status_code == 200 and resumed.json()["status"] == "active"
    assert client.get(f"/api/v1/orgs/{acme.org_id}/teams", headers=key).status_code == 200
    assert client.post("/api/v1/admission", headers=key, json=admission).status_code == 200
    assert_problem(client.post(operator_url(acme.org_id, "/resume"), headers=operator), 409)
    actions = [e.action for e in events(database, "operator.tenant_suspended")]
    assert actions == ["operator.tenant_suspended"] * 2  # the tenant's chain and the operator's


def test_a_suspension_reaches_another_process_at_once(
    client: TestClient, factory: Factory, settings: Settings, clock: FrozenClock, database_url: str
) -> None:
    from tenantry.app import create_app

    acme = factory.tenant("Acme")
    key = bearer(factory.api_key(acme)["secret"])
    admission = {"team": acme.team_id, "action": "run", "estimate": {"compute_hours": "1"}}
    other = Database(database_url)
    try:
        with TestClient(create_app(settings, clock=clock, database=other)) as elsewhere:
            assert elsewhere.post("/api/v1/admission", headers=key, json=admission).is_success
            suspended = client.post(
                operator_url(acme.org_id, "/suspend"), headers=operator_headers(client), json={}
            )
            assert suspended.status_code == 200, suspended.text
            denied = elsewhere.post("/api/v1/admission", headers=key, json=admission)
            assert_problem(denied, 403, "tenant_suspended")
            client.post(operator_url(acme.org_id, "/resume"), headers=operator_headers(client))
            assert elsewhere.post("/api/v1/admission", headers=key, json=admission).is_success
    finally:
        other.dispose()


# ---- the CLI: bootstrap on the database, the rest over the API ----


def test_operator_bootstrap_and_commands_from_the_cli(
    people: dict[str, Cli],
    factory: Factory,
    database_url: str,
    tmp_path: Path,
) -> None:
    env = {
        "TENANTRY_DATABASE_URL": database_url,
        "TENANTRY_DATA_DIR": str(tmp_path / "server"),
        "TENANTRY_SECRET_KEY": "cli-secret-" + "x" * 40,
        "TENANTRY_PASSWORD_TIME_COST": "1",
        "TENANTRY_PASSWORD_MEMORY_COST_KIB": "1024",
    }
    acme = factory.tenant("Acme AI")
    cli = people["operator"]
    missing = cli.run("operator", "add", "ops@example.com", **env)
    assert missing.exit_code == 2 and "--create" in missing.stderr
    result = cli.run(
        "operator",
        "add",
        "ops@example.com",
        "--create",
        "--password-stdin",
        "--json",
        input=PASSWORD + "\n",
        **env,
    )
    assert result.exit_code == 0, result.stderr
    assert '"created_user": true' in result.stdout
    listed = cli.json("operator", "list", **env)["operators"]
    assert [o["email"] for o in listed] == ["ops@example.com"]
    assert cli.login("ops@example.com").exit_code == 0
    tenants = cli.json("operator", "tenants")
    assert [t["slug"] for t in tenants] == ["acme-ai"]
    assert cli.json("operator", "plan", "acme-ai", "professional")["plan"] == "professional"
    custom = cli.json("operator", "overrides", "acme-ai", '{"quotas": {"models": {"limit": "7"}}}')
    assert custom["custom"] is True
    assert cli.json("operator", "suspend", "acme-ai", "--reason", "audit")["status"] == "suspended"
    assert cli.json("operator", "resume", "acme-ai")["status"] == "active"
    assert "professional" in cli.ok("operator", "plans")
    edited = cli.json("operator", "plans", "starter", '{"yearly_price": "300"}')
    assert edited["yearly_price"] == "300"
    # An owner signed in is refused, in one line.
    owner = people["owner"]
    assert owner.login(acme.owner_email).exit_code == 0
    refused = owner.run("operator", "tenants")
    assert refused.exit_code != 0 and "operator_only" in refused.stderr
    removed = cli.json("operator", "remove", "ops@example.com", **env)
    assert removed == {"email": "ops@example.com", "removed": True}
    assert cli.json("operator", "list", **env)["operators"] == []


# ---- the plan catalog, as data ----


def test_a_catalog_edit_takes_effect_for_quotas_in_every_process(
    client: TestClient,
    factory: Factory,
    settings: Settings,
    clock: FrozenClock,
    database: Database,
    database_url: str,
) -> None:
    from tenantry.app import create_app

    acme = factory.tenant("Acme", plan="starter")
    key = bearer(factory.api_key(acme)["secret"])
    admission = {"team": acme.team_id, "action": "run", "estimate": {"compute_hours": "1"}}
    operator = operator_headers(client)
    other = Database(database_url)
    try:
        with TestClient(create_app(settings, clock=clock, database=other)) as elsewhere:
            first = elsewhere.post("/api/v1/admission", headers=key, json=admission).json()
            assert first["remaining"]["compute_hours"] == "999"  # cached there now
            edited = client.patch(
                "/api/v1/operator/plans/starter",
                headers=operator,
                json={
                    "monthly_price": "35",
                    "quotas": {
                        "compute_hours": {"limit": "50", "enforcement": "soft"},
                        "team_members": {"limit": "10"},
                    },
                },
            )
            assert edited.status_code == 200, edited.text
            assert edited.json()["monthly_price"] == "35"
            again = elsewhere.post("/api/v1/admission", headers=key, json=admission).json()
            assert again["remaining"]["compute_hours"] == "48"
            prices = elsewhere.get("/api/v1/billing/plans").json()["plans"]
            assert {p["key"]: p["monthly_price"] for p in prices}["starter"] == "35.00"
    finally:
        other.dispose()
    # A plan of its own: operators give it, and tenants see it in the price list.
    made = client.post(
        "/api/v1/operator/plans",
        headers=operator,
        json={
            "key": "research",
            "name": "Research",
            "monthly_price": "0",
            "yearly_price": "0",
            "quotas": {"compute_hours": {"limit": "5000", "enforcement": "hard"}},
            "rate_limits": {
                "org_per_minute": 100,
                "org_burst": 10,
                "key_per_minute": 50,
                "key_burst": 5,
            },
        },
    )
    assert made.status_code == 201, made.text
    given = client.put(
        operator_url(acme.org_id, "/plan"), headers=operator, json={"plan": "research"}
    )
    assert given.status_code == 200, given.text
    plan = client.get(f"/api/v1/orgs/{acme.org_id}/plan", headers=acme.headers).json()
    assert (plan["key"], plan["rate_limits"]["org_burst"]) == ("research", 10)
    catalog = client.get("/api/v1/operator/plans", headers=operator).json()
    assert [p["key"] for p in catalog["plans"]][-1] == "research"
    # Refused: a tenant's owner, a plan that exists, an unknown quota; none writes anything.
    before = count_rows(database)
    assert_problem(
        client.patch("/api/v1/operator/plans/starter", headers=acme.headers, json={}),
        403,
        "operator_only",
    )
    twice = client.post(
        "/api/v1/operator/plans", headers=operator, json=orjson.loads(made.request.content)
    )
    assert_problem(twice, 409, "plan_exists")
    bad = client.patch(
        "/api/v1/operator/plans/starter",
        headers=operator,
        json={"quotas": {"gpus": {"limit": "1"}}},
    )
    assert_problem(bad, 422, "unknown_quota")
    assert_problem(client.patch("/api/v1/operator/plans/platinum", headers=operator, json={}), 404)
    assert count_rows(database) == before
    edits = events(database, "operator.plan_edited")
    assert [(e.chain_id, e.actor_type) for e in edits] == [("operator", "operator")]
