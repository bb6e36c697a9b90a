"""Governance: seed 001's policy routes an expensive request to approval, the approval is used
once; precedence and exceptions; bad rules refused with nothing written; violations listed;
dry runs count a known history; policies hold under parallel admissions."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import PASSWORD, Factory, Tenant, assert_problem, bearer, count_rows
from tenantry.audit.models import AuditEvent
from tenantry.governance import events
from tenantry.governance.conditions import WEEKDAYS
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database

ADMIT = "/api/v1/admission"
SEED_POLICY = {
    "action": "create_policy",
    "policy": {
        "name": "High Cost Request Approval",
        "description": "Require approval for requests exceeding $100/day per user",
        "type": "cost_control",
        "rules": {
            "conditions": [
                {"field": "daily_cost_per_user", "operator": "greater_than", "value": 100}
            ],
            "actions": [
                {
                    "type": "require_approval",
                    "parameters": {"approvers": ["team-lead@company.com"], "timeout_hours": 4},
                }
            ],
        },
        "exceptions": {"roles": ["owner", "admin"]},
    },
}


def join(client: TestClient, factory: Factory, tenant: Tenant, email: str | None = None,
         team_role: str | None = "editor") -> tuple[str, dict[str, str]]:  # fmt: skip
    user_id, email, token = factory.user(email)
    invited = client.post(
        f"/api/v1/orgs/{tenant.org_id}/invitations",
        headers=tenant.headers,
        json={"email": email, "role": "member"},
    )
    assert invited.status_code == 201, invited.text
    accepted = client.post(
        f"/api/v1/invitations/{invited.json()['token']}/accept", headers=bearer(token)
    )
    assert accepted.status_code == 200, accepted.text
    if team_role:
        added = client.post(
            f"/api/v1/teams/{tenant.team_id}/members",
            headers=tenant.headers,
            json={"user": user_id, "role": team_role},
        )
        assert added.status_code == 201, added.text
    return user_id, bearer(token)


def login(client: TestClient, email: str) -> dict[str, str]:
    """A fresh access token (after the clock moved past the last one's life)."""
    resp = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return bearer(resp.json()["access_token"])


def spend(
    client: TestClient,
    headers: dict[str, str],
    team: str,
    cost: str,
    n: int = 1,
    prefix: str = "c",
    model: str = "gpt-4o",
    at: datetime | None = None,
) -> None:
    calls = [
        {"id": f"{prefix}{i}", "team": team, "provider": "openai", "model": model,
         "input_tokens": 10, "output_tokens": 10, "cost": cost,
         **({"timestamp": at.isoformat()} if at else {})}
        for i in range(n)
    ]  # fmt: skip
    resp = client.post("/api/v1/llm-calls", headers=headers, json={"calls": calls})
    assert resp.status_code == 200 and resp.json()["accepted"] == n, resp.text


def admit(client: TestClient, headers: dict[str, str], team: str, cost: str = "5",
          **extra: Any) -> dict[str, Any]:  # fmt: skip
    body = {"team": team, "action": "llm.generate", "provider": "openai", "model": "gpt-4o",
            "estimate": {"llm_cost_usd": cost}, **extra}  # fmt: skip
    resp = client.post(ADMIT, headers=headers, json=body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def policy(client: TestClient, tenant: Tenant, conditions: list[Any], actions: list[Any],
           name: str, **more: Any) -> dict[str, Any]:  # fmt: skip
    resp = client.post(
        f"/api/v1/orgs/{tenant.org_id}/policies",
        headers=tenant.headers,
        json={"name": name, "status": "active",
              "rules": {"conditions": conditions, "actions": actions}, **more},
    )  # fmt: skip
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def test_the_seed_policy_sends_a_costly_day_to_approval_and_the_approval_is_used_once(
    client: TestClient, factory: Factory, database: Database, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    hook = client.post(
        f"/api/v1/orgs/{acme.org_id}/webhooks",
        headers=acme.headers,
        json={
            "url": "https://hooks.acme.example/governance",
            "event_types": ["approval.requested", "approval.approved"],
        },
    )
    assert hook.status_code == 201, hook.text
    heard: list[events.GovernanceEvent] = []
    events.subscribe(lambda _s, e: heard.append(e))
    try:
        created = client.post(
            f"/api/v1/teams/{acme.team_id}/governance/policies", headers=acme.headers,
            json=SEED_POLICY,
        )  # fmt: skip
        assert created.status_code == 201, created.text
        pol = created.json()
        assert pol["status"] == "draft" and pol["version"] == 1
        activated = client.patch(
            f"/api/v1/policies/{pol['id']}", headers=acme.headers, json={"status": "active"}
        )
        assert activated.status_code == 200 and activated.json()["version"] == 2
        lead_id, lead = join(client, factory, acme, "team-lead@company.com", team_role=None)
        dev_id, dev = join(client, factory, acme)
        _, other = join(client, factory, acme)

        spend(client, dev, acme.team_id, "97")
        assert admit(client, dev, acme.team_id, "2")["decision"] == "allow"  # 99 <= 100
        asked = admit(client, dev, acme.team_id, "5")  # 97 + 5 > 100
        assert asked["decision"] == "deny"
        [reason] = asked["reasons"]
        assert reason["code"] == "approval_required"
        approval_id = asked["approval_id"]
        assert reason["approval_id"] == approval_id
        [matched] = asked["governance"]["matched"]
        assert matched["name"] == "High Cost Request Approval"
        assert matched["values"] == {"daily_cost_per_user": "102"}
        # The owner is excepted by role, and told so.
        owner = admit(client, acme.headers, acme.team_id, "500")
        assert owner["decision"] == "allow"
        assert owner["governance"]["excepted"][0]["exception"] == {"kind": "role", "value": "owner"}

        url = f"/api/v1/approvals/{approval_id}"
        assert_problem(client.post(f"{url}/approve", headers=other), 403)
        assert_problem(client.post(f"{url}/approve", headers=dev), 403)
        pending = admit(client, dev, acme.team_id, "5", approval_id=approval_id)
        assert pending["reasons"][0]["code"] == "approval_pending"
        approved = client.post(f"{url}/approve", headers=lead, json={"reason": "demo day"})
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "approved" and approved.json()["decided_by"] == lead_id
        assert_problem(client.post(f"{url}/deny", headers=lead), 409, "approval_decided")

        # Another request cannot use it; the same one can, once.
        other_request = admit(client, dev, acme.team_id, "6", approval_id=approval_id)
        assert other_request["reasons"][0]["code"] == "approval_for_another_request"
        retried = admit(client, dev, acme.team_id, "5", approval_id=approval_id)
        assert retried["decision"] == "allow" and retried["reservation_id"]
        assert retried["governance"]["approval_used"] is True
        settled = client.post(
            f"{ADMIT}/{retried['reservation_id']}/settle", headers=dev,
            json={"usage": {"llm_cost_usd": "4.5"}},
        )  # fmt: skip
        assert settled.status_code == 200, settled.text
        again = admit(client, dev, acme.team_id, "5", approval_id=approval_id)
        assert again["decision"] == "deny"
        assert again["reasons"][0]["code"] == "approval_used"
        shown = client.get(url, headers=dev).json()
        assert shown["status"] == "used" and shown["user_id"] == dev_id
    finally:
        events.unsubscribe(heard.append)
    kinds = [e.type for e in heard]
    assert kinds.count("approval.requested") == 1
    assert "approval.approved" in kinds and kinds.count("approval.used") == 1
    with database.session(write=False) as s:
        actions = set(s.scalars(select(AuditEvent.action).where(AuditEvent.org_id == acme.org_id)))
    assert {
        "policy.created",
        "policy.updated",
        "approval.requested",
        "approval.approved",
    } <= actions

    # Violations: the approval request is listed, by policy and member, and on the team view.
    listed = client.get(
        f"/api/v1/orgs/{acme.org_id}/violations", headers=acme.headers,
        params={"policy": pol["id"], "member": dev_id},
    ).json()["violations"]  # fmt: skip
    # The request, then the three refused retries (pending, another request, used again).
    assert [(v["kind"], v["approval_id"]) for v in listed] == [
        ("require_approval", approval_id)
    ] * 4
    view = client.get(
        f"/api/v1/teams/{acme.team_id}/governance", headers=acme.headers,
        params={"include": "audit"},
    ).json()  # fmt: skip
    assert [p["id"] for p in view["policies"]] == [pol["id"]]
    assert len(view["audit"]["violations"]) == 4
    # The subscribed endpoint has the request and its approval on their way.
    sent = client.get(
        f"/api/v1/orgs/{acme.org_id}/webhooks/{hook.json()['id']}/deliveries", headers=acme.headers
    ).json()["items"]
    assert sorted(d["event_type"] for d in sent) == ["approval.approved", "approval.requested"]


def test_an_approval_expires_after_its_timeout(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    created = client.post(
        f"/api/v1/teams/{acme.team_id}/governance/policies", headers=acme.headers,
        json={**SEED_POLICY, "policy": {**SEED_POLICY["policy"], "status": "active"}},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    join(client, factory, acme, "team-lead@company.com", team_role=None)
    _, dev = join(client, factory, acme, "dev@company.com")
    asked = admit(client, dev, acme.team_id, "101")
    approval_id = asked["approval_id"]
    clock.advance(hours=4, seconds=1)
    lead = login(client, "team-lead@company.com")
    listed = client.get(
        f"/api/v1/orgs/{acme.org_id}/approvals", headers=login(client, acme.owner_email),
        params={"status": "expired"},
    ).json()["approvals"]  # fmt: skip
    assert [a["id"] for a in listed] == [approval_id]
    assert_problem(
        client.post(f"/api/v1/approvals/{approval_id}/approve", headers=lead), 409,
        "approval_expired",
    )  # fmt: skip
    dev = login(client, "dev@company.com")
    retried = admit(client, dev, acme.team_id, "101", approval_id=approval_id)
    assert retried["reasons"][0]["code"] == "approval_expired"


def test_deny_beats_approval_beats_allow_and_log_always_runs(
    client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    _, dev = join(client, factory, acme)
    big = [{"field": "estimated_cost", "operator": "greater_than", "value": 10}]
    gpt = [{"field": "model", "operator": "matches", "value": "gpt-4.*"}]
    policy(client, acme, big, [{"type": "allow"}, {"type": "log"}], "Allow big")
    approval = policy(
        client, acme, big, [{"type": "require_approval", "parameters": {"roles": ["owner"]}}],
        "Approve big",
    )  # fmt: skip
    assert admit(client, dev, acme.team_id, "11")["reasons"][0]["code"] == "approval_required"
    denied_by = policy(
        client, acme, [{"all": [*gpt, {"not": {"field": "region", "operator": "in",
                                                "value": ["eu", "us"]}}]}],
        [{"type": "deny"}], "Deny unknown regions",
    )  # fmt: skip
    decided = admit(client, dev, acme.team_id, "11", region="apac")
    assert decided["decision"] == "deny"
    assert decided["reasons"][0]["code"] == "policy_denied"
    names = {m["name"] for m in decided["governance"]["matched"]}
    assert names == {"Allow big", "Approve big", "Deny unknown regions"}
    [deny] = [m for m in decided["governance"]["matched"] if m["policy_id"] == denied_by["id"]]
    assert deny["values"] == {"model": "gpt-4o", "region": "apac"}
    # In an allowed region the approval decides; below the amount, only the log runs.
    assert admit(client, dev, acme.team_id, "11", region="eu")["reasons"][0]["code"] == (
        "approval_required"
    )
    assert admit(client, dev, acme.team_id, "1", region="eu")["decision"] == "allow"
    kinds = [
        (v["policy_id"], v["kind"])
        for v in client.get(f"/api/v1/orgs/{acme.org_id}/violations", headers=acme.headers).json()[
            "violations"
        ]
    ]
    assert kinds.count((denied_by["id"], "deny")) == 1
    assert kinds.count((approval["id"], "require_approval")) == 2
    # Log: the three admissions over $10 matched "Allow big".
    assert sum(1 for _, k in kinds if k == "log") == 3


def test_exceptions_by_user_key_and_time_window(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    dev_id, dev = join(client, factory, acme)
    _, other = join(client, factory, acme)
    key = factory.api_key(acme, team_id=acme.team_id)
    everything = [{"field": "estimated_cost", "operator": "greater_than", "value": -1}]
    policy(
        client, acme, everything, [{"type": "deny"}], "Deny all",
        exceptions={"users": [dev_id], "api_keys": [key["id"]],
                    "time_windows": [{"days": ["sunday"], "start": "00:00", "end": "23:59"}]},
    )  # fmt: skip
    allowed = admit(client, dev, acme.team_id)
    assert allowed["decision"] == "allow"
    assert allowed["governance"]["excepted"][0]["exception"] == {"kind": "user", "value": dev_id}
    by_key = admit(client, bearer(key["secret"]), acme.team_id)
    assert by_key["decision"] == "allow"
    assert by_key["governance"]["excepted"][0]["exception"] == {
        "kind": "api_key",
        "value": key["id"],
    }
    assert admit(client, other, acme.team_id)["decision"] == "deny"
    # A window on today's weekday (UTC, the org's time zone by default) covers everyone.
    today = WEEKDAYS[clock.now().weekday()]
    policy(
        client, acme, everything, [{"type": "deny"}], "Deny all but today",
        exceptions={"time_windows": [{"days": [today], "start": "00:00", "end": "23:59"}]},
    )  # fmt: skip
    assert (
        admit(client, other, acme.team_id)["governance"]["excepted"][-1]["exception"]["kind"]
        == "time_window"
    )
    # In another time zone it may be another day: the window is read in the org's zone.
    tomorrow = WEEKDAYS[(clock.now().weekday() + 1) % 7]
    policy(
        client, acme, everything, [{"type": "deny"}], "Deny all but tomorrow",
        exceptions={"time_windows": [{"days": [tomorrow], "start": "00:00", "end": "23:59"}]},
    )  # fmt: skip
    matched = admit(client, other, acme.team_id)["governance"]["matched"]
    assert {m["name"] for m in matched} == {"Deny all", "Deny all but tomorrow"}


def test_bad_rules_are_refused_at_save_and_nothing_is_written(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    good = {"field": "model", "operator": "equals", "value": "gpt-4o"}
    bad_conditions = [
        ({"field": "colour", "operator": "equals", "value": "red"}, "unknown_field"),
        ({"field": "model", "operator": "resembles", "value": "x"}, "unknown_operator"),
        ({"field": "estimated_cost", "operator": "greater_than", "value": "100"}, "wrong_type"),
        ({"field": "model", "operator": "greater_than", "value": 3}, "wrong_type"),
        ({"field": "model", "operator": "matches", "value": "(a+)+$"}, "invalid_pattern"),
        ({"field": "model", "operator": "matches", "value": "x" * 201}, "invalid_pattern"),
        ({"field": "model", "operator": "matches", "value": "gpt-[4"}, "invalid_pattern"),
        ({"any": []}, "invalid_rule"),
        ({"field": "weekday", "operator": "equals", "value": "caturday"}, "wrong_type"),
    ]
    before = count_rows(database)
    url = f"/api/v1/orgs/{acme.org_id}/policies"
    for condition, code in bad_conditions:
        body = {"name": "Bad", "rules": {"conditions": [good, condition],
                                         "actions": [{"type": "deny"}]}}  # fmt: skip
        assert_problem(client.post(url, headers=acme.headers, json=body), 422, code)
    bad_actions = [
        ([{"type": "explode"}], "unknown_action"),
        ([{"type": "require_approval", "parameters": {}}], "approvers_required"),
        ([{"type": "allow"}, {"type": "deny"}], "contradictory"),
    ]
    for actions, code in bad_actions:
        body = {"name": "Bad", "rules": {"conditions": [good], "actions": actions}}
        assert_problem(client.post(url, headers=acme.headers, json=body), 422, code)
    assert count_rows(database) == before
    # Another tenant's policy answers 404.
    made = policy(client, acme, [good], [{"type": "deny"}], "Mine")
    other = factory.tenant("Other")
    assert_problem(client.get(f"/api/v1/policies/{made['id']}", headers=other.headers), 404)
    assert_problem(
        client.patch(f"/api/v1/policies/{made['id']}", headers=other.headers,
                     json={"status": "disabled"}), 404,
    )  # fmt: skip


def test_dry_run_counts_a_known_history(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    dev_id, dev = join(client, factory, acme)
    # Day one: the member spends 60 + 60 (the second passes $100); the owner spends 150 on
    # a cheaper model.
    now = clock.now()
    day_one, day_two = now - timedelta(days=2), now - timedelta(days=1)
    spend(client, dev, acme.team_id, "60", n=2, prefix="d1-", at=day_one)
    spend(client, acme.headers, acme.team_id, "150", prefix="o1-", model="gpt-4o-mini",
          at=day_one)  # fmt: skip
    # 30, 60, 90, 120: one over.
    spend(client, dev, acme.team_id, "30", n=4, prefix="d2-", at=day_two)
    # Older than the replayed week: not counted.
    spend(client, dev, acme.team_id, "500", prefix="old-", at=now - timedelta(days=9))
    created = client.post(
        f"/api/v1/teams/{acme.team_id}/governance/policies", headers=acme.headers,
        json=SEED_POLICY,
    ).json()  # fmt: skip
    ran = client.post(
        f"/api/v1/policies/{created['id']}/dry-run", headers=acme.headers, json={"days": 7}
    )
    assert ran.status_code == 200, ran.text
    report = ran.json()
    assert report["calls"] == 7
    assert report["would"]["require_approval"] == {"count": 2, "cost": "90"}
    assert report["would"]["deny"] == {"count": 0, "cost": "0"}
    assert report["by_member"] == {dev_id: {"require_approval": {"count": 2, "cost": "90"}}}
    assert report["by_model"] == {"gpt-4o": {"require_approval": {"count": 2, "cost": "90"}}}
    assert report["by_day"] == {
        day_one.date().isoformat(): {"require_approval": {"count": 1, "cost": "60"}},
        day_two.date().isoformat(): {"require_approval": {"count": 1, "cost": "30"}},
    }
    # The owner's exception taken away, the same replay also counts the owner's call.
    tried = client.post(
        f"/api/v1/policies/{created['id']}/dry-run", headers=acme.headers,
        json={"days": 7, "exceptions": {}},
    ).json()  # fmt: skip
    assert tried["would"]["require_approval"] == {"count": 3, "cost": "240"}
    assert (
        client.get(f"/api/v1/policies/{created['id']}", headers=acme.headers).json()["status"]
        == "draft"
    )


def test_explain_says_why_and_writes_nothing(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    policy(
        client, acme, [{"field": "tags.feature", "operator": "equals", "value": "search"}],
        [{"type": "deny"}], "No search",
    )  # fmt: skip
    before = count_rows(database)
    resp = client.post(
        f"/api/v1/orgs/{acme.org_id}/governance/explain", headers=acme.headers,
        json={"team": acme.team_id, "model": "gpt-4o", "tags": {"feature": "search"}},
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert resp.json()["decision"] == "deny"
    assert resp.json()["matched"][0]["values"] == {"tags.feature": "search"}
    assert count_rows(database) == before


def answers_at_once(app: FastAPI, headers: dict[str, str], body: dict[str, Any],
                    n: int) -> list[Any]:  # fmt: skip
    barrier = threading.Barrier(n)

    def one(_: int) -> Any:
        client = TestClient(app, raise_server_exceptions=False)
        barrier.wait()
        resp = client.post(ADMIT, headers=headers, json=body)
        return resp.json() if resp.status_code == 200 else resp.text

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def test_parallel_admissions_never_pass_a_deny_or_reuse_an_approval(
    app: FastAPI, client: TestClient, factory: Factory, database: Database, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    _, lead = join(client, factory, acme, "team-lead@company.com", team_role=None)
    _, dev = join(client, factory, acme)
    created = client.post(
        f"/api/v1/teams/{acme.team_id}/governance/policies", headers=acme.headers,
        json={**SEED_POLICY, "policy": {**SEED_POLICY["policy"], "status": "active"}},
    )  # fmt: skip
    assert created.status_code == 201
    policy(
        client, acme, [{"field": "model", "operator": "equals", "value": "forbidden-model"}],
        [{"type": "deny"}], "Forbidden model",
    )  # fmt: skip
    clock.advance(minutes=1)
    body = {"team": acme.team_id, "action": "llm.generate", "provider": "openai",
            "model": "forbidden-model", "estimate": {"llm_cost_usd": "1"}}  # fmt: skip
    answers = answers_at_once(app, dev, body, 50)
    assert all(isinstance(a, dict) for a in answers), answers
    assert [a["decision"] for a in answers] == ["deny"] * 50

    asked = admit(client, dev, acme.team_id, "150")
    url = f"/api/v1/approvals/{asked['approval_id']}/approve"
    assert client.post(url, headers=lead).status_code == 200
    clock.advance(minutes=1)
    retry = {"team": acme.team_id, "action": "llm.generate", "provider": "openai",
             "model": "gpt-4o", "estimate": {"llm_cost_usd": "150"},
             "approval_id": asked["approval_id"]}  # fmt: skip
    answers = answers_at_once(app, dev, retry, 50)
    assert all(isinstance(a, dict) for a in answers), answers
    assert sum(1 for a in answers if a["decision"] == "allow") == 1
    with database.session(write=False) as s:
        from tenantry.metering.models import Reservation

        made = s.scalar(
            select(func.count()).select_from(Reservation).where(Reservation.org_id == acme.org_id)
        )
    assert made == 1
