"""Spend: LLM calls priced and rolled up, the cost views in seed 001's shape, budgets held in
admission, alerts raised once and acknowledged, and bad input refused with nothing written."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from conftest import Factory, Tenant, assert_problem, bearer, count_rows
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.spend import events
from tenantry.spend.models import LlmCall


def call(id: str, team: str, **kw: Any) -> dict[str, Any]:
    return {
        "id": id,
        "team": team,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 500,
        **kw,
    }


def record(client: TestClient, tenant: Tenant, *calls: dict[str, Any]) -> dict[str, Any]:
    resp = client.post("/api/v1/llm-calls", headers=tenant.headers, json={"calls": list(calls)})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def billing(client: TestClient, tenant: Tenant, **query: str) -> dict[str, Any]:
    resp = client.get(
        f"/api/v1/teams/{tenant.team_id}/billing", headers=tenant.headers, params=query
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_calls_are_priced_rolled_up_and_shown_in_the_seed_shape(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    member_id, member_token = factory.member(acme, team_role="editor")
    done = record(
        client,
        acme,
        call("c1", acme.team_id),  # 1000 x 0.15 + 500 x 0.60 per million = 0.00045
        call("c2", acme.team_id, provider="anthropic", model="claude-3-5-sonnet-20241022",
             cost="0.25", latency_ms=800),
        call("c3", acme.team_id, model="gpt-4o-2024-08-06", cached_input_tokens=400,
             input_tokens=1000, output_tokens=0),  # 600 x 2.5 + 400 x 1.25 = 0.002
        call("c4", acme.team_id, provider="acme-labs", model="home-brew", status="error"),
    )  # fmt: skip
    assert [(r["status"], r["cost"], r["cost_source"]) for r in done["results"]] == [
        ("accepted", "0.00045", "computed"),
        ("accepted", "0.25", "caller"),
        ("accepted", "0.002", "computed"),
        ("accepted", None, "unpriced"),
    ]
    mine = client.post(
        "/api/v1/llm-calls", headers=bearer(member_token), json=call("c5", acme.team_id, cost="1")
    )
    assert mine.status_code == 200, mine.text
    again = record(client, acme, call("c1", acme.team_id))
    assert again["duplicates"] == 1 and again["accepted"] == 0

    view = billing(client, acme)
    period = view["billing_period"]
    assert period["total_cost"] == "1.25245"
    assert period["total_requests"] == 5
    assert period["errors"] == 1
    assert period["breakdown_by_provider"]["openai"] == {"cost": "1.00245", "requests": 3}
    assert period["breakdown_by_provider"]["anthropic"] == {"cost": "0.25", "requests": 1}
    assert period["breakdown_by_model"]["gpt-4o-2024-08-06"]["cost"] == "0.002"
    members = period["breakdown_by_member"]
    assert members[member_id] == {"cost": "1", "requests": 1, "email": members[member_id]["email"]}
    assert members[acme.owner_id]["email"] == acme.owner_email
    assert period["unpriced"] == {
        "requests": 1,
        "models": [{"provider": "acme-labs", "model": "home-brew", "requests": 1}],
    }
    # Exactly the calls' costs, as stored.
    with database.session(write=False) as session:
        stored = session.scalars(select(LlmCall.cost).where(LlmCall.org_id == acme.org_id))
        assert sum((c or Decimal(0) for c in stored), Decimal(0)) == Decimal(period["total_cost"])
    usage = client.get(f"/api/v1/teams/{acme.team_id}/usage", headers=acme.headers).json()
    assert usage["totals"]["llm_cost_usd"] == "1.25245"
    org = client.get(f"/api/v1/orgs/{acme.org_id}/costs", headers=acme.headers).json()
    assert org["billing_period"]["total_cost"] == "1.25245"
    assert org["team_id"] is None


def test_seed_settings_alerts_and_acknowledgement(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    heard: list[events.SpendEvent] = []

    def listen(session: Any, event: events.SpendEvent) -> None:
        heard.append(event)

    events.subscribe(listen)
    try:
        resp = client.put(
            f"/api/v1/teams/{acme.team_id}/billing/settings",
            headers=acme.headers,
            json={
                "monthly_budget": 2,
                "budget_alerts": {"warning_threshold": 75, "exceeded_action": "notify"},
                "cost_allocation": {"method": "usage_based"},
                "reporting": {
                    "frequency": "weekly",
                    "recipients": ["finance@company.com", "team-lead@company.com"],
                    "include_member_breakdown": True,
                },
            },
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["monthly_budget"] == "2"
        record(client, acme, call("a", acme.team_id, cost="1.6"))
        record(client, acme, call("b", acme.team_id, cost="0.1"))  # 85%: no new alert
        view = billing(client, acme)
        assert view["budget"]["amount"] == "2" and view["budget"]["spent"] == "1.7"
        alerts = view["budget_alerts"]
        assert alerts["warning_threshold"] == 75 and alerts["exceeded_action"] == "notify"
        [alert] = alerts["current_alerts"]
        assert alert["type"] == "budget_warning" and alert["threshold"] == 75
        assert alert["current_value"] == 80.0
        assert alert["message"] == "Team has exceeded 75% of its monthly budget"
        record(client, acme, call("c", acme.team_id, cost="0.5"))  # notify: never refused
        assert [e.type for e in heard] == ["budget.threshold_reached", "budget.exceeded"]
        assert heard[1].data["spent"] == "2.2"

        ack = client.post(
            f"/api/v1/teams/{acme.team_id}/billing",
            headers=acme.headers,
            json={"action": "acknowledge_alert", "alert_id": alert["id"]},
        )
        assert ack.status_code == 200, ack.text
        assert ack.json()["alert"]["acknowledged"] is True
        twice = client.post(
            f"/api/v1/teams/{acme.team_id}/billing",
            headers=acme.headers,
            json={"action": "acknowledge_alert", "alert_id": alert["id"]},
        )
        assert_problem(twice, 409, "alert_acknowledged")
        open_alerts = client.get(
            f"/api/v1/orgs/{acme.org_id}/budget-alerts?open=true", headers=acme.headers
        ).json()["alerts"]
        assert [a["type"] for a in open_alerts] == ["budget_exceeded"]
        actions = client.get(
            f"/api/v1/orgs/{acme.org_id}/audit-events?limit=200", headers=acme.headers
        ).json()
        names = [e["action"] for e in actions["items"]]
        for name in ("budget.threshold_reached", "budget.exceeded", "budget_alert.acknowledged"):
            assert name in names
    finally:
        events.unsubscribe(listen)


def admit(client: TestClient, headers: dict[str, str], team: str, cost: str) -> dict[str, Any]:
    resp = client.post(
        "/api/v1/admission",
        headers=headers,
        json={"team": team, "action": "llm.generate", "estimate": {"llm_cost_usd": cost}},
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_restrict_budgets_hold_in_admission_and_name_the_one_that_decided(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme")
    org_budget = client.post(
        f"/api/v1/orgs/{acme.org_id}/budgets",
        headers=acme.headers,
        json={"scope": "org", "amount": "10", "exceeded_action": "restrict", "period": "day"},
    )
    assert org_budget.status_code == 201, org_budget.text
    team_budget = client.post(
        f"/api/v1/teams/{acme.team_id}/budgets",
        headers=acme.headers,
        json={"amount": "1", "exceeded_action": "restrict", "name": "Research"},
    )
    assert team_budget.status_code == 201, team_budget.text
    first = admit(client, acme.headers, acme.team_id, "0.6")
    assert first["decision"] == "allow"
    assert {b["name"]: b["reserved"] for b in first["budgets"]} == {
        "Organization daily budget": "0.6",
        "Research": "0.6",
    }
    second = admit(client, acme.headers, acme.team_id, "0.6")
    assert second["decision"] == "deny"
    [reason] = second["reasons"]
    assert reason["code"] == "budget_exceeded"
    assert reason["budget"]["id"] == team_budget.json()["id"]
    assert reason["budget"]["remaining"] == "0.4"
    decided = [b for b in second["budgets"] if b["decided"]]
    assert [b["id"] for b in decided] == [team_budget.json()["id"]]
    # Settling the first for less frees the rest of its hold.
    settled = client.post(
        f"/api/v1/admission/{first['reservation_id']}/settle",
        headers=acme.headers,
        json={"usage": {"llm_cost_usd": "0.2"}},
    )
    assert settled.status_code == 200, settled.text
    third = admit(client, acme.headers, acme.team_id, "0.8")
    assert third["decision"] == "allow"
    status = client.get(f"/api/v1/budgets/{team_budget.json()['id']}", headers=acme.headers)
    assert status.json()["spent"] == "0.2" and status.json()["reserved"] == "0.8"
    # An unsettled reservation expires and gives its hold back (an API key outlives the clock's
    # jump; an access token would not).
    key = factory.api_key(acme)
    clock.advance(minutes=16)
    fourth = admit(client, bearer(key["secret"]), acme.team_id, "0.8")
    assert fourth["decision"] == "allow", fourth


def test_an_llm_call_naming_its_reservation_settles_it(
    client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant("Acme")
    client.post(
        f"/api/v1/teams/{acme.team_id}/budgets",
        headers=acme.headers,
        json={"amount": "1", "exceeded_action": "restrict"},
    )
    resp = client.post(
        "/api/v1/admission",
        headers=acme.headers,
        json={
            "team": acme.team_id,
            "action": "llm.generate",
            "provider": "openai",
            "model": "gpt-4o",
            "estimate": {"llm_input_tokens": 100_000, "llm_output_tokens": 50_000},
        },
    )
    decided = resp.json()
    assert decided["decision"] == "allow" and decided["estimated_cost"] == "0.75"
    settles = call(
        "r1", acme.team_id, model="gpt-4o", input_tokens=1000, output_tokens=100,
        reservation_id=decided["reservation_id"],
    )  # fmt: skip
    record(client, acme, settles)
    [budget] = client.get(f"/api/v1/teams/{acme.team_id}/budgets", headers=acme.headers).json()[
        "budgets"
    ]
    assert budget["spent"] == "0.0035" and budget["reserved"] == "0"
    again = record(client, acme, call("r2", acme.team_id, reservation_id=decided["reservation_id"]))
    assert again["results"][0]["code"] == "reservation_settled"


def test_bad_input_is_refused_and_writes_nothing(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    other = factory.tenant("Other")
    before = count_rows(database)
    bad = [
        ("/api/v1/llm-calls", {"calls": [call("x", acme.team_id, input_tokens=-1)]}),
        ("/api/v1/llm-calls", {"calls": [call("x", acme.team_id, cost="-0.5")]}),
        ("/api/v1/llm-calls", call("x", acme.team_id, cached_input_tokens=5000)),
        (
            f"/api/v1/orgs/{acme.org_id}/budgets",
            {"scope": "team", "team": acme.team_id, "amount": "5", "thresholds": [0]},
        ),
        (
            f"/api/v1/orgs/{acme.org_id}/budgets",
            {"scope": "team", "team": acme.team_id, "amount": "5", "thresholds": [101]},
        ),
        (f"/api/v1/orgs/{acme.org_id}/budgets", {"scope": "org", "amount": "-5"}),
    ]
    for url, body in bad:
        assert_problem(client.post(url, headers=acme.headers, json=body), 422)
    foreign = client.post(
        f"/api/v1/orgs/{acme.org_id}/budgets",
        headers=acme.headers,
        json={"scope": "team", "team": other.team_id, "amount": "5"},
    )
    assert_problem(foreign, 404)
    settings = client.put(
        f"/api/v1/teams/{acme.team_id}/billing/settings",
        headers=acme.headers,
        json={"monthly_budget": 10, "budget_alerts": {"warning_threshold": 150}},
    )
    assert_problem(settings, 422)
    after = count_rows(database)
    assert {k: v for k, v in after.items() if v != before[k] and k != "audit_events"} == {}
