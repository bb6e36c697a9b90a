"""The role matrix, generated from the route table and the permission catalog.

Every built-in role (org owner, org admin, org member with team role owner/admin/editor/viewer,
org member with no team role) by every route a permission governs → allowed or 403, as
`access.catalog` says: the expected outcome is computed from TEAM_ROLE_PERMISSIONS,
ORG_ROLE_AS_TEAM_ROLE and ORG_MEMBER_PERMISSIONS, never written down by hand. A 403 is
problem+json naming the missing permission and leaves exactly one `denied` audit event. Nobody
grants a role above their own, touches someone ranked above them, or mints an API key with a
permission they do not hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from conftest import Factory
from matrix.routes import (
    INVITEE,
    OPERATOR,
    ROLES,
    SELF,
    Account,
    RouteCase,
    RouteKey,
    World,
    action_of,
    actor,
    assert_problem,
    audit_events,
    call,
    case_for,
    is_mutating,
    keys_where,
    new_events,
    route_id,
    row_counts,
    shared_app,
    success_status,
)
from tenantry.audit.models import AuditEvent
from tenantry.authz.catalog import ORG_ROLE_RANK, TEAM_ROLE_RANK, OrgRole, Permission, TeamRole
from tenantry.kit.db import Database

app = pytest.fixture(scope="module", name="app")(shared_app)


def check_refusal(
    app: FastAPI,
    database: Database,
    world: World,
    case: RouteCase,
    resp: Response,
    before_events: list[AuditEvent],
    before_rows: dict[str, int],
    *,
    who: Account,
    permission: Permission,
) -> None:
    problem = assert_problem(resp, 403)
    assert problem.get("missing_permission") == permission.value, problem
    assert permission.value in problem["detail"], problem
    events = new_events(database, before_events)
    assert [(e.action, e.result) for e in events] == [(action_of(app, case), "denied")], events
    assert events[0].org_id == world.org_id and events[0].actor_id == who.id
    after = row_counts(database)
    after["audit_events"] -= 1
    assert after == before_rows, "a refused request changed something besides its audit event"


PERMISSION_KEYS = keys_where(
    lambda case: case.permission is not None and case.mutating, unknown=is_mutating
)


@pytest.mark.parametrize("role_name", list(ROLES))
@pytest.mark.parametrize("key", PERMISSION_KEYS, ids=route_id)
def test_every_role_on_every_mutating_route(
    app: FastAPI,
    client: TestClient,
    factory: Factory,
    database: Database,
    key: RouteKey,
    role_name: str,
) -> None:
    case = case_for(key)
    role = ROLES[role_name]
    permission = case.permission
    assert permission is not None, f"{case.id}: a mutating route needs a rule"
    world = World(client, factory, "Alpha Industries")
    who = actor(world, role)
    params, body = case.path_params(world), case.json(world)
    before_events, before_rows = audit_events(database), row_counts(database)
    resp = call(client, case, params=params, headers=who.headers, body=body)
    if permission in role.granted(case.scope):
        assert resp.status_code == success_status(app, case), resp.text
    else:
        check_refusal(
            app,
            database,
            world,
            case,
            resp,
            before_events,
            before_rows,
            who=who,
            permission=permission,
        )


READ_KEYS = keys_where(
    lambda case: case.permission is not None and not case.mutating,
    unknown=lambda key: not is_mutating(key),
)


@pytest.mark.parametrize("key", READ_KEYS, ids=route_id)
def test_every_role_on_every_governed_read(
    client: TestClient, factory: Factory, database: Database, key: RouteKey
) -> None:
    case = case_for(key)
    permission = case.permission
    assert permission is not None
    world = World(client, factory, "Alpha Industries")
    params = case.path_params(world)
    actors = {name: actor(world, role) for name, role in ROLES.items()}
    before = row_counts(database)
    for name, who in actors.items():
        resp = call(client, case, params=params, headers=who.headers)
        if permission in ROLES[name].granted(case.scope):
            assert resp.status_code == 200, f"{name}: {resp.text}"
        else:
            problem = assert_problem(resp, 403)
            assert problem.get("missing_permission") == permission.value, f"{name}: {problem}"
    # Reads change nothing, refused ones included (the trail records attempted changes), but
    # for a read log of their own.
    after = row_counts(database)
    if case.read_log is not None:
        after.pop(case.read_log)
        before.pop(case.read_log)
    assert after == before


SELF_KEYS = keys_where(lambda case: case.rule == SELF and case.mutating)


@pytest.mark.parametrize("key", SELF_KEYS, ids=route_id)
def test_every_role_may_manage_its_own_account(
    app: FastAPI, client: TestClient, factory: Factory, database: Database, key: RouteKey
) -> None:
    case = case_for(key)
    world = World(client, factory, "Alpha Industries")
    actors = {name: actor(world, role) for name, role in ROLES.items()}
    for name, who in actors.items():
        params, body = case.path_params(world), case.json(world)
        if case.own is not None:
            params, body = case.own(world, who)
        if "session_id" in params:
            sessions = client.get("/api/v1/me/sessions", headers=who.headers).json()["items"]
            params["session_id"] = next(s["id"] for s in sessions if s["current"])
        resp = call(client, case, params=params, headers=who.headers, body=body)
        assert resp.status_code == success_status(app, case), f"{name}: {resp.text}"


INVITEE_KEYS = keys_where(lambda case: case.rule == INVITEE)


@pytest.mark.parametrize("key", INVITEE_KEYS, ids=route_id)
def test_only_the_invitee_answers_an_invitation(
    app: FastAPI, client: TestClient, factory: Factory, database: Database, key: RouteKey
) -> None:
    case = case_for(key)
    world = World(client, factory, "Alpha Industries")
    params = case.path_params(world)
    actors = {name: actor(world, role) for name, role in ROLES.items()}
    before = row_counts(database)
    for name, who in actors.items():
        resp = call(client, case, params=params, headers=who.headers)
        # Whoever else holds the token learns nothing: it answers like an unknown one.
        assert assert_problem(resp, 404)["code"] == "not_found", f"{name}: {resp.text}"
    assert row_counts(database) == before
    resp = call(client, case, params=params, headers=world.invitee.headers)
    assert resp.status_code == success_status(app, case), resp.text


OPERATOR_KEYS = keys_where(lambda case: case.rule == OPERATOR)


@pytest.mark.parametrize("key", OPERATOR_KEYS, ids=route_id)
def test_only_operators_on_operator_routes(
    app: FastAPI, client: TestClient, factory: Factory, database: Database, key: RouteKey
) -> None:
    """Every role of the org, its owner included, and the owner's API key get 403
    `operator_only` and change nothing (a refused change is audited, nothing else); the
    deployment's operator gets through."""
    case = case_for(key)
    world = World(client, factory, "Alpha Industries")
    actors = {name: actor(world, role).headers for name, role in ROLES.items()}
    actors["owner's API key"] = world.api_key.headers
    params, body = case.path_params(world), case.json(world)
    before = row_counts(database)
    for name, headers in actors.items():
        resp = call(client, case, params=params, headers=headers, body=body)
        code = assert_problem(resp, 403)["code"]
        # A suspended org's keys open nothing at all (the route that resumes it).
        allowed = {"operator_only", "tenant_suspended"} if "key" in name else {"operator_only"}
        assert code in allowed, f"{name}: {resp.text}"
    after = row_counts(database)
    after["audit_events"] = before["audit_events"]
    assert after == before, "a refused request changed something besides the audit trail"
    resp = call(client, case, params=params, headers=world.headers_for(case), body=body)
    assert resp.status_code == success_status(app, case), resp.text


# ---- nobody grants a role above their own ----


@dataclass(frozen=True)
class Grant:
    key: RouteKey
    scope: str  # "org": org roles are granted; "team": team roles on the default team
    permission: Permission


GRANTS: dict[str, Grant] = {
    "org member role": Grant(
        ("PATCH", "/api/v1/orgs/{org}/members/{user}"), "org", Permission.MEMBER_UPDATE
    ),
    "org invitation": Grant(
        ("POST", "/api/v1/orgs/{org}/invitations"), "org", Permission.MEMBER_INVITE
    ),
    "team member added": Grant(
        ("POST", "/api/v1/teams/{team}/members"), "team", Permission.MEMBER_INVITE
    ),
    "team member role": Grant(
        ("PATCH", "/api/v1/teams/{team}/members/{user}"), "team", Permission.MEMBER_UPDATE
    ),
    "team invitation": Grant(
        ("POST", "/api/v1/orgs/{org}/invitations"), "team", Permission.MEMBER_INVITE
    ),
}


def _grant_cases() -> list[tuple[str, str]]:
    """(grant, grantor role): every grantor that holds the permission to grant at all."""
    return [
        (grant_name, role_name)
        for grant_name, grant in GRANTS.items()
        for role_name, role in ROLES.items()
        if grant.permission in role.granted(grant.scope)
    ]


def _grant_body(world: World, grant_name: str, role: str) -> dict[str, object]:
    if grant_name == "org invitation":
        return {"email": world.fresh_email(), "role": role}
    if grant_name == "team invitation":
        return {"email": world.fresh_email(), "role": role, "team_id": world.team_id}
    if grant_name == "team member added":
        return {"user": world.join().id, "role": role}
    return {"role": role}


@pytest.mark.parametrize(("grant_name", "role_name"), _grant_cases())
def test_nobody_grants_a_role_above_their_own(
    app: FastAPI,
    client: TestClient,
    factory: Factory,
    database: Database,
    grant_name: str,
    role_name: str,
) -> None:
    grant, grantor = GRANTS[grant_name], ROLES[role_name]
    case = case_for(grant.key)
    world = World(client, factory, "Alpha Industries")
    who = actor(world, grantor)
    params = case.path_params(world)
    if grant.scope == "org":
        own = ORG_ROLE_RANK[grantor.org_role]
        ladder = sorted(ORG_ROLE_RANK.items(), key=lambda item: item[1])
    else:
        own = grantor.team_rank()
        ladder = sorted(TEAM_ROLE_RANK.items(), key=lambda item: item[1])
    assert ladder, "no roles to grant"
    # Lowest first: a granted role leaves the target able to receive the next one.
    for granted_role, rank in ladder:
        body = _grant_body(world, grant_name, granted_role.value)
        before_events = audit_events(database)
        resp = call(client, case, params=params, headers=who.headers, body=body)
        where = f"{role_name} granting {granted_role.value} via {grant_name}"
        if rank <= own:
            assert resp.status_code == success_status(app, case), f"{where}: {resp.text}"
            continue
        problem = assert_problem(resp, 403)
        assert problem["code"] == "role_above_own", f"{where}: {problem}"
        events = new_events(database, before_events)
        assert [(e.action, e.result) for e in events] == [(action_of(app, case), "denied")]


def _rank_of_target(scope: str, target: str) -> int:
    if scope == "org":
        return ORG_ROLE_RANK[OrgRole(target)]
    return TEAM_ROLE_RANK[TeamRole(target)]


TOUCH_ROUTES: dict[str, tuple[RouteKey, str, Permission]] = {
    "change an org member's role": (
        ("PATCH", "/api/v1/orgs/{org}/members/{user}"),
        "org",
        Permission.MEMBER_UPDATE,
    ),
    "remove an org member": (
        ("DELETE", "/api/v1/orgs/{org}/members/{user}"),
        "org",
        Permission.MEMBER_REMOVE,
    ),
    "change a team member's role": (
        ("PATCH", "/api/v1/teams/{team}/members/{user}"),
        "team",
        Permission.MEMBER_UPDATE,
    ),
    "remove a team member": (
        ("DELETE", "/api/v1/teams/{team}/members/{user}"),
        "team",
        Permission.MEMBER_REMOVE,
    ),
}


def _touch_cases() -> list[tuple[str, str, str]]:
    """(what, actor role, target's role): an actor allowed to do it, a target ranked above."""
    cases = []
    for what, (_, scope, permission) in TOUCH_ROUTES.items():
        targets = [r.value for r in (OrgRole if scope == "org" else TeamRole)]
        for role_name, role in ROLES.items():
            if permission not in role.granted(scope):
                continue
            own = ORG_ROLE_RANK[role.org_role] if scope == "org" else role.team_rank()
            cases += [(what, role_name, t) for t in targets if _rank_of_target(scope, t) > own]
    return cases


@pytest.mark.parametrize(("what", "role_name", "target_role"), _touch_cases())
def test_nobody_changes_or_removes_someone_ranked_above_them(
    client: TestClient,
    factory: Factory,
    database: Database,
    what: str,
    role_name: str,
    target_role: str,
) -> None:
    key, scope, _ = TOUCH_ROUTES[what]
    case = case_for(key)
    world = World(client, factory, "Alpha Industries")
    who = actor(world, ROLES[role_name])
    if scope == "org":
        target = world.owner if target_role == "owner" else world.join(org_role=target_role)
    else:
        target = world.join(team_role=target_role)
    params = {**case.path_params(world), "user": target.id}
    body = {"role": "viewer" if scope == "team" else "member"} if case.method == "PATCH" else None
    before = row_counts(database)
    resp = call(client, case, params=params, headers=who.headers, body=body)
    assert assert_problem(resp, 403)["code"] == "role_above_own", resp.text
    after = row_counts(database)
    assert after["audit_events"] == before["audit_events"] + 1
    assert {t: n for t, n in after.items() if t != "audit_events"} == {
        t: n for t, n in before.items() if t != "audit_events"
    }


# ---- API keys carry at most their creator's permissions ----


def _key_cases() -> list[tuple[str, str]]:
    cases = []
    for role_name, role in ROLES.items():
        if Permission.APIKEY_CREATE in role.granted("org"):
            cases.append((role_name, "org"))
        elif Permission.APIKEY_CREATE in role.granted("team"):
            cases.append((role_name, "team"))
    return cases


@pytest.mark.parametrize(("role_name", "scope"), _key_cases())
def test_api_keys_carry_at_most_their_creators_permissions(
    client: TestClient, factory: Factory, role_name: str, scope: str
) -> None:
    role = ROLES[role_name]
    world = World(client, factory, "Alpha Industries")
    who = actor(world, role)
    url = f"/api/v1/orgs/{world.org_id}/api-keys"
    bound = {"team_id": world.team_id} if scope == "team" else {}
    held = sorted(p.value for p in role.granted(scope))
    resp = client.post(url, headers=who.headers, json={"name": "k", "permissions": held, **bound})
    assert resp.status_code == 201, resp.text
    assert sorted(resp.json()["permissions"]) == held
    beyond = sorted(p.value for p in Permission if p not in role.granted(scope))
    for extra in beyond[:1] + beyond[-1:]:
        resp = client.post(
            url, headers=who.headers, json={"name": "k", "permissions": [*held, extra], **bound}
        )
        problem = assert_problem(resp, 403)
        assert (problem["code"], problem["missing_permission"]) == (
            "permission_escalation",
            extra,
        ), problem
