"""Route-table entries of governance (see tests/matrix/routes.py for what an entry says)."""

from __future__ import annotations

import secrets
from typing import Any

from matrix.routes import PARAMS, SELF, WORLD_EXTRAS, P, RouteCase, World, WorldExtra
from matrix.routes import _case as case

QUESTION = "a question, not a change: it writes nothing"
MODEL = "matrix-approval-model"
# Every team role may decide the world's approval request, so the role matrix sees exactly
# who holds governance:read on the team succeed.
APPROVERS = {"roles": ["owner", "admin", "editor", "viewer"], "timeout_hours": 24}


def _post(world: World, path: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    resp = world.client.post(f"/api/v1{path}", headers=world.owner.headers, json=body)
    assert resp.status_code == status, resp.text
    return dict(resp.json())


def _rules(model: str, action: dict[str, Any]) -> dict[str, Any]:
    return {
        "conditions": [{"field": "model", "operator": "equals", "value": model}],
        "actions": [action],
    }


def _seed(world: World) -> dict[str, str]:
    """An active org policy that sends one model's admissions for approval, a draft policy of
    the team (seed 001's request), and one admission of a member of its own sent for approval
    (with its violation)."""
    org_policy = _post(
        world,
        f"/orgs/{world.org_id}/policies",
        {"name": "Matrix approvals", "status": "active",
         "rules": _rules(MODEL, {"type": "require_approval", "parameters": APPROVERS})},
    )  # fmt: skip
    team_policy = _post(
        world,
        f"/teams/{world.team_id}/governance/policies",
        {"action": "create_policy",
         "policy": {"name": "High Cost Request Approval", "type": "cost_control",
                    "rules": {"conditions": [{"field": "daily_cost_per_user",
                                              "operator": "greater_than", "value": 100}],
                              "actions": [{"type": "require_approval",
                                           "parameters": {"approvers": ["lead@example.com"],
                                                          "timeout_hours": 4}}]},
                    "exceptions": {"roles": ["owner", "admin"]}}},
    )  # fmt: skip
    requester = world.join(team_role="editor")
    resp = world.client.post(
        "/api/v1/admission",
        headers=requester.headers,
        json={"team": world.team_id, "action": "llm.generate", "provider": "openai",
              "model": MODEL, "estimate": {"llm_cost_usd": "1"}},
    )  # fmt: skip
    assert resp.status_code == 200 and resp.json()["approval_id"], resp.text
    return {
        "org_policy": str(org_policy["id"]),
        "policy": str(team_policy["id"]),
        "approval": str(resp.json()["approval_id"]),
        "requester": requester.id,
    }


def seeded(world: World) -> dict[str, str]:
    found: dict[str, str] = world.once("governance", _seed)
    return found


def _violation_ids(world: World) -> set[str]:
    resp = world.client.get(f"/api/v1/orgs/{world.org_id}/violations", headers=world.owner.headers)
    return {v["id"] for v in resp.json()["violations"]}


PARAMS["policy_id"] = lambda w: seeded(w)["policy"]
PARAMS["approval_id"] = lambda w: seeded(w)["approval"]
WORLD_EXTRAS.append(
    WorldExtra(seed=seeded, ids=lambda w: set(seeded(w).values()) | _violation_ids(w))
)


def _new_policy(world: World) -> dict[str, Any]:
    return {
        "name": f"Policy {secrets.token_hex(4)}",
        "type": "model_access",
        "rules": _rules("gpt-2", {"type": "deny"}),
    }


CONFIG = {"timezone": "Europe/Paris", "data_classification": {"levels": {"restricted": {}}}}

# Denies what no other route's request names, so nothing else in a world is refused by it.
ACCESS = {"model_access": {"matrix-forbidden-*": False}, "providers": {"openai": True},
          "rate_limits": {"requests_per_minute": 1000, "concurrent_requests": 100}}  # fmt: skip

CASES: list[RouteCase] = [
    case("GET", "/teams/{team}/governance", P.GOVERNANCE_READ, scope="team",
         queries=("include=audit",)),
    case("POST", "/teams/{team}/governance/policies", P.GOVERNANCE_MANAGE, scope="team",
         body=lambda w: {"action": "create_policy", "policy": _new_policy(w)}),
    case("PUT", "/teams/{team}/governance/config", P.GOVERNANCE_MANAGE, scope="team",
         body=lambda w: CONFIG),
    case("PUT", "/orgs/{org}/governance/config", P.GOVERNANCE_MANAGE, scope="org",
         body=lambda w: {"timezone": "America/New_York"}),
    case("GET", "/orgs/{org}/governance/classification", P.GOVERNANCE_READ, scope="org"),
    case("PUT", "/orgs/{org}/governance/classification", P.GOVERNANCE_MANAGE, scope="org",
         body=lambda w: {"levels": {"restricted": {"categories": ["medical"],
                                                   "handling_requirements": {
                                                       "geographic_restrictions": ["US"]}}}}),
    case("GET", "/orgs/{org}/policies", P.GOVERNANCE_READ, scope="org"),
    case("POST", "/orgs/{org}/policies", P.GOVERNANCE_MANAGE, scope="org", body=_new_policy),
    case("GET", "/policies/{policy_id}", P.GOVERNANCE_READ, scope="team"),
    case("PATCH", "/policies/{policy_id}", P.GOVERNANCE_MANAGE, scope="team",
         body=lambda w: {"status": "disabled"}),
    case("POST", "/policies/{policy_id}/dry-run", P.GOVERNANCE_MANAGE, scope="team",
         body=lambda w: {"days": 7}, audit=QUESTION),
    case("POST", "/orgs/{org}/governance/explain", SELF,
         body=lambda w: {"team": w.team_id, "model": MODEL}, audit=QUESTION),
    case("GET", "/orgs/{org}/violations", P.GOVERNANCE_READ, scope="org",
         queries=("limit=5",)),
    case("GET", "/orgs/{org}/approvals", P.GOVERNANCE_READ, scope="org",
         queries=("status=pending",)),
    case("GET", "/approvals/{approval_id}", P.GOVERNANCE_READ, scope="team"),
    case("POST", "/approvals/{approval_id}/approve", P.GOVERNANCE_READ, scope="team",
         body=lambda w: {"reason": "fine"}),
    case("POST", "/approvals/{approval_id}/deny", P.GOVERNANCE_READ, scope="team",
         body=lambda w: {"reason": "not now"}),
    case("GET", "/orgs/{org}/model-access", P.GOVERNANCE_READ, scope="org"),
    case("PUT", "/orgs/{org}/model-access", P.GOVERNANCE_MANAGE, scope="org",
         body=lambda w: ACCESS),
    case("GET", "/teams/{team}/model-access", P.GOVERNANCE_READ, scope="team"),
    case("PUT", "/teams/{team}/model-access", P.GOVERNANCE_MANAGE, scope="team",
         body=lambda w: ACCESS),
    case("GET", "/orgs/{org}/api-keys/{key_id}/model-access", P.GOVERNANCE_READ, scope="org"),
    case("PUT", "/orgs/{org}/api-keys/{key_id}/model-access", P.GOVERNANCE_MANAGE, scope="org",
         body=lambda w: ACCESS),
    case("GET", "/orgs/{org}/model-access/effective", P.GOVERNANCE_READ, scope="org",
         queries=("model=gpt-4o&provider=openai",)),
]  # fmt: skip
