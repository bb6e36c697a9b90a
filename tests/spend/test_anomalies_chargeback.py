"""Anomalies of daily spend (raised once by the worker, explained, listed, acknowledged, heard
as `anomaly.detected`) and cost centres with their chargeback report and FOCUS export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from statistics import median
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from conftest import Factory, Tenant, assert_problem, bearer, count_rows
from tenantry.audit.models import AuditEvent
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.spend import events
from tenantry.worker import run_once

OWNER_DAYS = [10, 11, 9, 10, 12, 10, 9, 11, 10, 10, 11, 9, 10, 10]  # Feb 15 to Feb 28


def _call(id: str, team: str, day: str, cost: Any, **kw: Any) -> dict[str, Any]:
    return {
        "id": id,
        "team": team,
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 100,
        "output_tokens": 10,
        "cost": str(cost),
        "timestamp": f"{day}T12:00:00Z",
        **kw,
    }


def _record(client: TestClient, headers: dict[str, str], calls: list[dict[str, Any]]) -> None:
    resp = client.post("/api/v1/llm-calls", headers=headers, json={"calls": calls})
    assert resp.status_code == 200 and resp.json()["accepted"] == len(calls), resp.text


def test_a_spike_is_raised_once_explained_and_acknowledged(
    client: TestClient,
    factory: Factory,
    clock: FrozenClock,
    settings: Settings,
    database: Database,
) -> None:
    clock.set(datetime(2026, 3, 2, 6, tzinfo=UTC))
    acme = factory.tenant("Acme")
    member_id, member_token = factory.member(acme, team_role="editor")
    days = [f"2026-02-{d}" for d in range(15, 29)]
    _record(
        client,
        acme.headers,
        [_call(f"o{k}", acme.team_id, day, OWNER_DAYS[k]) for k, day in enumerate(days)]
        + [_call("spike", acme.team_id, "2026-03-01", 60)],
    )
    # A member who spends the same every day, the spike's day too: nothing to raise.
    steady = [
        _call(f"m{k}", acme.team_id, day, 5, provider="anthropic", model="claude-3-5-haiku")
        for k, day in enumerate([*days, "2026-03-01"])
    ]
    _record(client, bearer(member_token), steady)
    hook = client.post(
        f"/api/v1/orgs/{acme.org_id}/webhooks",
        headers=acme.headers,
        json={"url": "https://hooks.acme.example/spend", "event_types": ["anomaly.detected"]},
    )
    assert hook.status_code == 201, hook.text
    heard: list[events.SpendEvent] = []

    def listen(session: Any, event: events.SpendEvent) -> None:
        heard.append(event)

    events.subscribe(listen)
    try:
        report = run_once(settings, clock=clock, database=database)
        again = run_once(settings, clock=clock, database=database)
    finally:
        events.unsubscribe(listen)
    assert (report.anomalies.raised, report.anomalies.failed_orgs) == (3, [])
    assert again.anomalies.raised == 0
    assert sorted(e.data["dimension"] for e in heard) == ["member", "model", "team"]
    assert {e.type for e in heard} == {"anomaly.detected"}
    # Each one is on its way to the endpoint that subscribed to anomalies.
    sent = client.get(
        f"/api/v1/orgs/{acme.org_id}/webhooks/{hook.json()['id']}/deliveries", headers=acme.headers
    )
    assert sent.status_code == 200, sent.text
    assert [d["event_type"] for d in sent.json()["items"]] == ["anomaly.detected"] * 3

    resp = client.get(f"/api/v1/teams/{acme.team_id}/anomalies", headers=acme.headers)
    assert resp.status_code == 200, resp.text
    found = {a["dimension"]: a for a in resp.json()["anomalies"]}
    assert set(found) == {"team", "member", "model"}
    assert member_id not in {a["subject"] for a in resp.json()["anomalies"]}
    mine = found["member"]
    assert mine["subject"] == acme.owner_id
    assert mine["day"] == "2026-03-01"
    assert mine["value"] == "60"
    assert Decimal(mine["baseline"]) == median(OWNER_DAYS) == 10
    assert mine["mad"] == "0.5"
    # max(1.4826 x 0.5, 10 % of 10) = 1: (60 - 10) / 1
    assert mine["score"] == "50"
    assert mine["history_days"] == 14
    assert found["model"]["subject"] == "openai/gpt-4o"
    assert Decimal(found["team"]["value"]) == 65
    with database.session(write=False) as session:
        raised = session.scalars(
            select(AuditEvent).where(
                AuditEvent.org_id == acme.org_id, AuditEvent.action == "anomaly.detected"
            )
        ).all()
    assert len(raised) == 3

    url = f"/api/v1/anomalies/{mine['id']}/acknowledge"
    other = factory.tenant("Other")
    assert_problem(client.post(url, headers=bearer(other.token)), 404)
    done = client.post(url, headers=acme.headers)
    assert done.status_code == 200 and done.json()["acknowledged"] is True, done.text
    assert_problem(client.post(url, headers=acme.headers), 409, "anomaly_acknowledged")
    still = client.get(
        f"/api/v1/orgs/{acme.org_id}/anomalies", headers=acme.headers, params={"open": "true"}
    ).json()["anomalies"]
    assert {a["dimension"] for a in still} == {"team", "model"}


def _team(client: TestClient, tenant: Tenant, name: str, parent: str | None = None) -> str:
    resp = client.post(
        f"/api/v1/orgs/{tenant.org_id}/teams",
        headers=tenant.headers,
        json={"name": name, "parent_team_id": parent},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def test_chargeback_by_usage_and_even_split_and_the_focus_export(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    clock.set(datetime(2026, 3, 20, tzinfo=UTC))
    acme = factory.tenant("Acme")
    research = _team(client, acme, "Research")
    vision = _team(client, acme, "Vision", parent=research)  # charged with its parent
    ops = _team(client, acme, "Ops")
    _record(
        client,
        acme.headers,
        [
            _call("r1", research, "2026-03-02", "1.000001"),
            _call("v1", vision, "2026-03-03", "2"),
            _call("o1", ops, "2026-03-03", "0.5"),
            _call("d1", acme.team_id, "2026-03-04", "0.25"),  # no cost centre
        ],
    )
    base = f"/api/v1/orgs/{acme.org_id}/cost-centres"
    created = client.post(
        base, headers=acme.headers, json={"name": "R&D", "code": "CC-100", "teams": [research]}
    )
    assert created.status_code == 201, created.text
    ops_cc = client.post(base, headers=acme.headers, json={"name": "Operations", "code": "CC-200"})
    assert ops_cc.status_code == 201, ops_cc.text
    moved = client.put(
        f"{base}/{ops_cc.json()['id']}/teams", headers=acme.headers, json={"teams": [ops]}
    )
    assert moved.status_code == 200 and moved.json()["teams"] == [ops], moved.text

    other = factory.tenant("Other")
    before = count_rows(database)
    assert_problem(
        client.post(base, headers=acme.headers, json={"name": "Dup", "code": "CC-100"}),
        409,
        "cost_centre_exists",
    )
    assert_problem(
        client.post(base, headers=acme.headers, json={"name": "X", "code": "X", "teams": [
            other.team_id
        ]}),
        404,
    )  # fmt: skip
    assert_problem(client.post(base, headers=acme.headers, json={"name": "", "code": "Y"}), 422)
    assert count_rows(database) == before

    usage = client.get(f"/api/v1/orgs/{acme.org_id}/chargeback", headers=acme.headers).json()
    assert usage["total_cost"] == "3.750001"
    centres = {c["code"]: c for c in usage["cost_centres"]}
    assert centres["CC-100"]["charged"] == "3.000001"
    assert centres["CC-100"]["teams_with_spend"] == sorted([research, vision])
    assert centres["CC-200"]["charged"] == "0.5"
    assert usage["unallocated"] == {
        "usage_cost": "0.25",
        "requests": 1,
        "teams": [acme.team_id],
        "charged": "0.25",
    }
    even = client.get(
        f"/api/v1/orgs/{acme.org_id}/chargeback",
        headers=acme.headers,
        params={"method": "even_split"},
    ).json()
    shares = [Decimal(c["charged"]) for c in even["cost_centres"]]
    assert shares == [Decimal("1.875001"), Decimal("1.875")]  # the odd millionth to CC-100
    assert sum(shares) == Decimal(even["total_cost"])
    assert_problem(
        client.get(
            f"/api/v1/orgs/{acme.org_id}/chargeback",
            headers=acme.headers,
            params={"method": "by_headcount"},
        ),
        422,
    )

    focus = client.get(f"/api/v1/orgs/{acme.org_id}/chargeback/focus", headers=acme.headers)
    assert focus.status_code == 200, focus.text
    assert focus.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(focus.text)))
    assert len(rows) == 4
    assert sum(Decimal(r["BilledCost"]) for r in rows) == Decimal("3.750001")
    vision_row = next(r for r in rows if r["SubAccountId"] == vision)
    assert vision_row["x_CostCentre"] == "CC-100"
    assert vision_row["ChargePeriodStart"] == "2026-03-03T00:00:00Z"
    assert vision_row["ChargePeriodEnd"] == "2026-03-04T00:00:00Z"
    assert vision_row["ServiceName"] == "gpt-4o"
    assert vision_row["BillingCurrency"] == "USD"

    deleted = client.delete(f"{base}/{created.json()['id']}", headers=acme.headers)
    assert deleted.status_code == 204, deleted.text
    listed = client.get(base, headers=acme.headers).json()["cost_centres"]
    assert [c["code"] for c in listed] == ["CC-200"]
