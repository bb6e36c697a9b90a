"""Route-table entries of spend (see tests/matrix/routes.py for what an entry says)."""

from __future__ import annotations

import secrets
from typing import Any

from matrix.routes import OPERATOR, PARAMS, SELF, WORLD_EXTRAS, P, RouteCase, World, WorldExtra
from matrix.routes import _case as case
from tenantry.kit.clock import FrozenClock
from tenantry.spend import tasks as spend_tasks

NOW = FrozenClock().now()
HIGH_VOLUME = "a high-volume data path: the LLM calls are the record"
PRICE_FILE = {
    "prices": [
        {
            "provider": "openai",
            "model": "gpt-matrix",
            "input_per_million": "1.5",
            "output_per_million": "6",
            "cached_input_per_million": "0.75",
            "substitution_class": "small",
            "effective_from": "2025-06-01T00:00:00Z",
        }
    ]
}


def _post(world: World, path: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    resp = world.client.post(f"/api/v1{path}", headers=world.owner.headers, json=body)
    assert resp.status_code == status, resp.text
    return dict(resp.json())


def _seed(world: World) -> dict[str, str]:
    """A team budget (the team's monthly one, large), a member budget of the owner whose 50%
    threshold one seeded call crosses (an alert of the team), and one of the org's own rates."""
    budget = _post(world, f"/teams/{world.team_id}/budgets", {"amount": "1000", "thresholds": [80]})
    watched = _post(
        world,
        f"/teams/{world.team_id}/budgets",
        {"scope": "member", "member": world.owner.id, "amount": "0.5", "thresholds": [50]},
    )
    _post(
        world,
        "/llm-calls",
        {"id": "seeded-call", "team": world.team_id, "provider": "openai", "model": "gpt-4o",
         "input_tokens": 10, "output_tokens": 5, "cost": "0.3"},
        status=200,
    )  # fmt: skip
    resp = world.client.get(
        f"/api/v1/orgs/{world.org_id}/budget-alerts", headers=world.owner.headers
    )
    [alert] = resp.json()["alerts"]
    price = _post(world, f"/orgs/{world.org_id}/llm-prices", PRICE_FILE, status=200)
    return {
        "budget": str(budget["id"]),
        "watched": str(watched["id"]),
        "alert": str(alert["id"]),
        "price": str(price["prices"][0]["id"]),
    }


def seeded(world: World) -> dict[str, str]:
    found: dict[str, str] = world.once("spend", _seed)
    return found


def _seed_analytics(world: World) -> dict[str, str]:
    """Two weeks of $1 a day by the team's editor, then $20 on the last day (an anomaly the
    detection pass raises), and a cost centre holding the team."""
    member = world.member
    calls = [
        {"id": f"history-{day}", "team": world.team_id, "provider": "openai", "model": "gpt-4o",
         "cost": "20" if day == 31 else "1", "timestamp": f"2025-12-{day:02d}T12:00:00Z"}
        for day in range(17, 32)
    ]  # fmt: skip
    resp = world.client.post("/api/v1/llm-calls", headers=member.headers, json={"calls": calls})
    assert resp.status_code == 200 and resp.json()["accepted"] == len(calls), resp.text
    state = world.client.app.state  # type: ignore[attr-defined]
    spend_tasks.detect_anomalies(state.db, now=state.clock.now())
    resp = world.client.get(f"/api/v1/teams/{world.team_id}/anomalies", headers=world.owner.headers)
    anomaly = next(a for a in resp.json()["anomalies"] if a["dimension"] == "member")
    centre = _post(
        world,
        f"/orgs/{world.org_id}/cost-centres",
        {"name": "Research", "code": f"CC-{world.label}", "teams": [world.team_id]},
    )
    return {"anomaly": str(anomaly["id"]), "cost_centre": str(centre["id"])}


def analytics_seeded(world: World) -> dict[str, str]:
    found: dict[str, str] = world.once("spend-analytics", _seed_analytics)
    return found


PARAMS["budget_id"] = lambda w: seeded(w)["budget"]
PARAMS["alert_id"] = lambda w: seeded(w)["alert"]
PARAMS["price_id"] = lambda w: seeded(w)["price"]
PARAMS["anomaly_id"] = lambda w: analytics_seeded(w)["anomaly"]
PARAMS["cost_centre_id"] = lambda w: analytics_seeded(w)["cost_centre"]
WORLD_EXTRAS.append(WorldExtra(seed=seeded, ids=lambda w: set(seeded(w).values())))
WORLD_EXTRAS.append(
    WorldExtra(seed=analytics_seeded, ids=lambda w: set(analytics_seeded(w).values()))
)


def llm_call(world: World) -> dict[str, Any]:
    return {
        "calls": [
            {
                "id": f"call-{secrets.token_hex(6)}",
                "team": world.team_id,
                "provider": "openai",
                "model": "gpt-4o-mini",
                "input_tokens": 120,
                "output_tokens": 30,
                "latency_ms": 420,
                "tags": {"feature": "search"},
            }
        ]
    }


def litellm_payload(world: World) -> dict[str, Any]:
    start = NOW.timestamp() - 2
    return {
        "id": f"chatcmpl-{secrets.token_hex(6)}",
        "call_type": "completion",
        "model": "gpt-4o-mini",
        "custom_llm_provider": "openai",
        "prompt_tokens": 12,
        "completion_tokens": 20,
        "response_cost": 1.4e-05,
        "startTime": start,
        "endTime": start + 0.8,
        "status": "success",
        "metadata": {"requester_metadata": {"tenantry_team": world.team_id}},
        "request_tags": ["feature:chat"],
    }


SEED_SETTINGS = {
    "monthly_budget": 2000,
    "budget_alerts": {"warning_threshold": 75, "exceeded_action": "restrict"},
    "cost_allocation": {"method": "usage_based"},
    "reporting": {
        "frequency": "weekly",
        "recipients": ["finance@company.com", "team-lead@company.com"],
        "include_member_breakdown": True,
    },
}
VIEWS = ("period=previous", "period=2025-12", "period=week")
CHARGEBACK = ("method=even_split", "period=2025-12")
ANALYTICS = ("include=usage", "include=insights,compliance&days=7")

CASES: list[RouteCase] = [
    case("POST", "/llm-calls", P.USAGE_WRITE, scope="team", body=llm_call, audit=HIGH_VOLUME),
    case(
        "POST",
        "/integrations/litellm",
        P.USAGE_WRITE,
        scope="team",
        body=litellm_payload,
        audit=HIGH_VOLUME,
    ),
    case("GET", "/teams/{team}/billing", P.SPEND_READ, scope="team", queries=VIEWS),
    case("GET", "/orgs/{org}/costs", P.SPEND_READ, scope="org", queries=VIEWS),
    case("GET", "/teams/{team}/analytics", P.SPEND_READ, scope="team", queries=ANALYTICS),
    case(
        "POST",
        "/teams/{team}/analytics/export",
        P.SPEND_READ,
        scope="team",
        body=lambda w: {"format": "json", "days": 7},
        audit="a read sent as POST (seed 001): the export writes nothing",
    ),
    case("GET", "/orgs/{org}/analytics", P.SPEND_READ, scope="org", queries=ANALYTICS),
    case("GET", "/orgs/{org}/anomalies", P.SPEND_READ, scope="org", queries=("open=true",)),
    case("GET", "/teams/{team}/anomalies", P.SPEND_READ, scope="team", queries=("open=true",)),
    case("POST", "/anomalies/{anomaly_id}/acknowledge", P.SPEND_MANAGE, scope="team"),
    case("GET", "/orgs/{org}/cost-centres", P.SPEND_READ, scope="org"),
    case(
        "POST",
        "/orgs/{org}/cost-centres",
        P.SPEND_MANAGE,
        scope="org",
        body=lambda w: {"name": "Platform", "code": f"CC-{secrets.token_hex(3)}"},
    ),
    case(
        "PUT",
        "/orgs/{org}/cost-centres/{cost_centre_id}/teams",
        P.SPEND_MANAGE,
        scope="org",
        body=lambda w: {"teams": [w.team_id]},
    ),
    case("DELETE", "/orgs/{org}/cost-centres/{cost_centre_id}", P.SPEND_MANAGE, scope="org"),
    case("GET", "/orgs/{org}/chargeback", P.SPEND_READ, scope="org", queries=CHARGEBACK),
    case("GET", "/orgs/{org}/chargeback/focus", P.SPEND_READ, scope="org", queries=VIEWS),
    case(
        "PUT",
        "/teams/{team}/billing/settings",
        P.SPEND_MANAGE,
        scope="team",
        body=lambda w: SEED_SETTINGS,
    ),
    case(
        "POST",
        "/teams/{team}/billing",
        P.SPEND_MANAGE,
        scope="team",
        body=lambda w: {"action": "acknowledge_alert", "alert_id": seeded(w)["alert"]},
    ),
    case("GET", "/orgs/{org}/budgets", P.SPEND_READ, scope="org"),
    case(
        "POST",
        "/orgs/{org}/budgets",
        P.SPEND_MANAGE,
        scope="org",
        body=lambda w: {"scope": "api_key", "api_key": w.api_key.id, "amount": "5"},
    ),
    case("GET", "/teams/{team}/budgets", P.SPEND_READ, scope="team"),
    case(
        "POST",
        "/teams/{team}/budgets",
        P.SPEND_MANAGE,
        scope="team",
        body=lambda w: {"scope": "member", "member": w.member.id, "amount": "5"},
    ),
    case("GET", "/budgets/{budget_id}", P.SPEND_READ, scope="team"),
    case(
        "PATCH",
        "/budgets/{budget_id}",
        P.SPEND_MANAGE,
        scope="team",
        body=lambda w: {"amount": "2000", "exceeded_action": "restrict"},
    ),
    case("DELETE", "/budgets/{budget_id}", P.SPEND_MANAGE, scope="team"),
    case("GET", "/orgs/{org}/budget-alerts", P.SPEND_READ, scope="org", queries=("open=true",)),
    case("POST", "/budget-alerts/{alert_id}/acknowledge", P.SPEND_MANAGE, scope="team"),
    case("GET", "/llm-prices", SELF, idless="the deployment's price list, the same for everyone"),
    case("POST", "/llm-prices", OPERATOR, body=lambda w: PRICE_FILE),
    case("GET", "/orgs/{org}/llm-prices", P.SPEND_READ, scope="org"),
    case("POST", "/orgs/{org}/llm-prices", P.SPEND_MANAGE, scope="org", body=lambda w: PRICE_FILE),
    case("DELETE", "/orgs/{org}/llm-prices/{price_id}", P.SPEND_MANAGE, scope="org"),
]
