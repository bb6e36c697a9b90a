"""Analytics and savings recommendations in seed 001's shape, from the rollups: numbers that add
up to the raw calls exactly, latency percentiles from the histogram, the documented scores, each
recommendation with what it was computed from, exports, and bad input refused."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import Factory, Tenant, assert_problem, bearer
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.spend.models import LlmCall

NOW = datetime(2026, 3, 15, tzinfo=UTC)


def _gpt4o_calls(team: str) -> list[dict[str, Any]]:
    """100 calls of 2,000 prompt and 100 output tokens ($0.006 each at gpt-4o's list price):
    89 in one hour, then one an hour for 11 hours; 89 took 300 ms, 11 took 1.2 s."""
    hours = [0] * 89 + list(range(1, 12))
    return [
        {
            "id": f"g{n}",
            "team": team,
            "provider": "openai",
            "model": "gpt-4o",
            "input_tokens": 2000,
            "output_tokens": 100,
            "latency_ms": 300 if n < 89 else 1200,
            "timestamp": f"2026-03-10T{hour:02d}:{n % 60:02d}:00Z",
        }
        for n, hour in enumerate(hours)
    ]


def _haiku_calls(team: str, user: str) -> list[dict[str, Any]]:
    """10 calls of 1,000 + 200 tokens on claude-3-5-haiku ($0.0016 each), one failed."""
    return [
        {
            "id": f"h{n}",
            "team": team,
            "user": user,
            "provider": "anthropic",
            "model": "claude-3-5-haiku",
            "input_tokens": 1000,
            "output_tokens": 200,
            "latency_ms": 800,
            "status": "error" if n == 0 else "success",
            "timestamp": f"2026-03-12T10:{n:02d}:00Z",
        }
        for n in range(10)
    ]


@pytest.fixture
def acme(client: TestClient, factory: Factory, clock: FrozenClock) -> tuple[Tenant, str]:
    clock.set(NOW)
    tenant = factory.tenant("Acme")
    member_id, _ = factory.member(tenant, team_role="editor")
    calls = _gpt4o_calls(tenant.team_id) + _haiku_calls(tenant.team_id, member_id)
    resp = client.post("/api/v1/llm-calls", headers=tenant.headers, json={"calls": calls})
    assert resp.status_code == 200 and resp.json()["accepted"] == 110, resp.text
    return tenant, member_id


def _analytics(client: TestClient, tenant: Tenant, **params: Any) -> dict[str, Any]:
    resp = client.get(
        f"/api/v1/teams/{tenant.team_id}/analytics", headers=tenant.headers, params=params
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_usage_adds_up_to_the_raw_calls(
    client: TestClient, acme: tuple[Tenant, str], database: Database
) -> None:
    tenant, member_id = acme
    usage = _analytics(client, tenant, include="usage")["usage"]
    with database.session(write=False) as session:
        raw = session.execute(
            select(func.count(), func.sum(LlmCall.cost)).where(LlmCall.org_id == tenant.org_id)
        ).one()
    assert usage["total_requests"] == raw[0] == 110
    assert Decimal(usage["total_cost"]) == raw[1] == Decimal("0.616")
    assert usage["cost_per_request"] == "0.0056"
    assert usage["token_efficiency"] == {
        "input_tokens": 210_000,
        "output_tokens": 12_000,
        "cached_input_tokens": 0,
        "output_per_input": round(12_000 / 210_000, 4),
        "cost_per_1k_tokens": "0.002775",  # 0.616 x 1000 / 222,000, to the millionth
    }
    assert usage["by_provider"]["openai"]["cost"] == "0.6"
    assert usage["by_provider"]["anthropic"]["requests"] == 10
    gpt = usage["by_model"]["openai/gpt-4o"]
    assert gpt["success_rate"] == 1.0
    # Histogram buckets (200, 300] and (1000, 1500]: ranks 50 and 95 of 100, linear within.
    assert gpt["latency_p50_ms"] == round(200 + 100 * 50 / 89)
    assert gpt["latency_p95_ms"] == round(1000 + 500 * 6 / 11)
    haiku = usage["by_model"]["anthropic/claude-3-5-haiku"]
    assert haiku["success_rate"] == 0.9
    assert haiku["latency_p50_ms"] == round(750 + 250 * 0.5)
    assert [d["date"] for d in usage["requests_over_time"]] == ["2026-03-10", "2026-03-12"]
    assert usage["requests_over_time"][0]["by_model"] == {"gpt-4o": 100}
    assert usage["requests_over_time"][1]["by_member"] == {member_id: 10}
    assert usage["by_member"][tenant.owner_id]["email"] == tenant.owner_email


def test_insights_scores_and_recommendations(client: TestClient, acme: tuple[Tenant, str]) -> None:
    tenant, member_id = acme
    insights = _analytics(client, tenant, include="insights")["insights"]
    opportunities = insights["cost_optimization_opportunities"]
    by_id = {r["id"]: r for r in opportunities["recommendations"]}
    # gpt-4o's mix: 200,000 input and 10,000 output tokens = $0.60 at list price.
    switch = by_id["provider_switch:openai/gpt-4o"]
    assert switch["suggested_model"] == "gemini-1.5-pro"  # 0.25 + 0.05
    assert switch["estimated_monthly_savings"] == "0.3"
    assert switch["basis"]["current_cost"] == "0.6"
    assert switch["basis"]["alternative_cost"] == "0.3"
    assert switch["basis"]["requests"] == 100
    assert switch["implementation_effort"] == "easy"
    assert switch["priority"] == "high"
    cheaper = by_id["model_optimization:openai/gpt-4o"]
    assert (cheaper["suggested_model"], cheaper["estimated_monthly_savings"]) == ("gpt-5", "0.25")
    caching = by_id["prompt_caching:openai/gpt-4o"]
    assert caching["estimated_monthly_savings"] == "0.12"  # 200,000 x 0.5 x (2.5 - 1.25) / 1M
    assert caching["basis"]["average_prompt_tokens"] == 2000
    batching = by_id["batching:openai/gpt-4o"]
    assert batching["basis"]["busiest_hours_requests"] == 89
    assert batching["estimated_monthly_savings"] == "0.27"  # 89 x 0.006 x 0.5
    # Each model's largest only: 0.30 for gpt-4o, 0.01 for haiku (0.016 against 0.0027).
    assert by_id["provider_switch:anthropic/claude-3-5-haiku"]["estimated_monthly_savings"] == (
        "0.01"
    )
    assert opportunities["potential_savings"] == "0.31"
    amounts = [Decimal(r["estimated_monthly_savings"]) for r in opportunities["recommendations"]]
    assert amounts == sorted(amounts, reverse=True)
    # 0.6 x (1 - 0.31 / 0.62) + 0.4 x (109 / 110)
    assert insights["efficiency_score"] == round(100 * (0.6 * 0.5 + 0.4 * round(109 / 110, 4)))

    people = insights["member_productivity"]
    owner = people[tenant.owner_id]
    assert owner["requests_per_day"] == round(100 / 30, 2)
    assert owner["cost_per_request"] == "0.006"
    assert owner["preferred_models"] == ["gpt-4o"]
    assert owner["activity_trend"] == "increasing"
    assert owner["efficiency_score"] == round(100 * (0.6 * 0.002775 / 0.002857 + 0.4))
    assert people[member_id]["efficiency_score"] == round(100 * (0.6 + 0.4 * 0.9))
    ranking = insights["model_ranking"]
    assert [(m["model"], m["rank"]) for m in ranking] == [("claude-3-5-haiku", 1), ("gpt-4o", 2)]
    assert {m["recommendation"] for m in ranking} == {"replace"}
    assert insights["forecast"]["method"] == "robust_trend_weekday"


def test_compliance_and_the_org_view(client: TestClient, acme: tuple[Tenant, str]) -> None:
    tenant, _ = acme
    compliance = _analytics(client, tenant, include="compliance")["compliance"]
    assert compliance["unpriced_requests"] == 0
    assert compliance["error_rate"] == round(1 - round(109 / 110, 4), 4)
    org = client.get(f"/api/v1/orgs/{tenant.org_id}/analytics", headers=tenant.headers)
    assert org.status_code == 200, org.text
    body = org.json()
    assert body["usage"]["by_team"][tenant.team_id]["cost"] == "0.616"
    assert tenant.team_id in body["insights"]["team_efficiency"]


def test_exports_as_csv_and_json(client: TestClient, acme: tuple[Tenant, str]) -> None:
    tenant, _ = acme
    url = f"/api/v1/teams/{tenant.team_id}/analytics/export"
    resp = client.post(url, headers=tenant.headers, json={"format": "csv"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    assert "attachment" in resp.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert sum(Decimal(r["cost"]) for r in rows) == Decimal("0.616")
    assert sum(int(r["requests"]) for r in rows) == 110
    resp = client.post(url, headers=tenant.headers, json={"format": "json", "include": ["usage"]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["usage"]["total_cost"] == "0.616" and body["insights"] is None


def test_bad_input_is_refused(client: TestClient, acme: tuple[Tenant, str]) -> None:
    tenant, _ = acme
    base = f"/api/v1/teams/{tenant.team_id}/analytics"
    assert_problem(
        client.get(base, headers=tenant.headers, params={"include": "usage,bogus"}),
        422,
        "invalid_include",
    )
    assert_problem(client.get(base, headers=tenant.headers, params={"days": 0}), 422)
    assert_problem(
        client.post(f"{base}/export", headers=tenant.headers, json={"format": "xml"}), 422
    )
    other = Factory(client).tenant("Other")
    assert_problem(client.get(base, headers=bearer(other.token)), 404)


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("2026-03-10T05:00:00Z", "2026-03-12T10:00:00Z"),  # edge hours around a whole day
        ("2026-03-09T00:00:00Z", "2026-03-13T00:00:00Z"),  # whole days only
        ("2026-03-10T01:00:00Z", "2026-03-10T03:00:00Z"),  # hours within one day
    ],
)
def test_views_over_hours_and_days_match_the_raw_calls(
    client: TestClient, acme: tuple[Tenant, str], database: Database, since: str, until: str
) -> None:
    """Whole days come from the daily rollups and the edge hours from the hourly ones: every
    window adds up to exactly the calls inside it."""
    tenant, _ = acme
    view = client.get(
        f"/api/v1/teams/{tenant.team_id}/billing",
        headers=tenant.headers,
        params={"since": since, "until": until},
    ).json()["billing_period"]
    start = datetime.fromisoformat(since.replace("Z", "+00:00"))
    end = datetime.fromisoformat(until.replace("Z", "+00:00"))
    with database.session(write=False) as session:
        count, cost = session.execute(
            select(func.count(), func.sum(LlmCall.cost)).where(
                LlmCall.org_id == tenant.org_id, LlmCall.at >= start, LlmCall.at < end
            )
        ).one()
    assert view["total_requests"] == count > 0
    assert Decimal(view["total_cost"]) == cost
    models = view["breakdown_by_model"]
    assert sum(m["requests"] for m in models.values()) == count
