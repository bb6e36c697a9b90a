"""Access control through the HTTP API: custom roles, grants, expiry, hierarchy, templates, bulk
changes, the questions, and the rules that keep them inside one org and below one's own rights.

Everything runs on the real app with caching on (the process-local snapshot cache is always on);
the clock is a FrozenClock moved by the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from conftest import Factory, Tenant, assert_problem, bearer, count_rows
from tenantry.access import policy_source, tasks
from tenantry.access.models import Grant
from tenantry.app import create_app
from tenantry.audit.models import AuditEvent
from tenantry.authz import policy
from tenantry.authz.catalog import Permission
from tenantry.authz.engine import Resource, Snapshot
from tenantry.config import Settings
from tenantry.kit import stamps
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.kit.ids import new_id
from tenantry.kit.stamps import OrgVersion

API = "/api/v1"
PLAN = "enterprise"  # room for the members these tests make


@pytest.fixture
def acme(factory: Factory) -> Tenant:
    return factory.tenant("Acme AI", plan=PLAN)


def member(factory: Factory, tenant: Tenant, **kw: Any) -> tuple[str, dict[str, str]]:
    user_id, token = factory.member(tenant, **kw)
    return user_id, bearer(token)


def grant(
    client: TestClient, tenant: Tenant, team_id: str, body: dict[str, Any], status: int = 201
) -> dict[str, Any]:
    resp = client.post(f"{API}/teams/{team_id}/grants", headers=tenant.headers, json=body)
    assert resp.status_code == status, resp.text
    return dict(resp.json())


def user(user_id: str) -> dict[str, str]:
    return {"type": "user", "id": user_id}


def check(
    client: TestClient, org_id: str, headers: dict[str, str], permission: str, **body: Any
) -> dict[str, Any]:
    resp = client.post(
        f"{API}/orgs/{org_id}/access/check",
        headers=headers,
        json={"permission": permission, **body},
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def events(database: Database, action: str) -> list[AuditEvent]:
    with database.session(write=False) as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )


def rename_team(client: TestClient, team_id: str, headers: dict[str, str]) -> int:
    resp = client.patch(f"{API}/teams/{team_id}", headers=headers, json={"description": "x"})
    return resp.status_code


# ---- custom roles ----


def test_a_custom_role_gives_access_and_an_edit_changes_it_on_the_next_request(
    client: TestClient, factory: Factory, acme: Tenant, database: Database
) -> None:
    resp = client.post(
        f"{API}/orgs/{acme.org_id}/roles",
        headers=acme.headers,
        json={"name": "Model-Curator", "permissions": ["model:delete"], "inherits": ["viewer"]},
    )
    assert resp.status_code == 201, resp.text
    role = resp.json()
    assert role["name"] == "model-curator" and not role["builtin"]
    assert {"model:delete", "model:read", "team:read"} <= set(role["effective_permissions"])
    curator_id, curator = member(factory, acme)
    resp = client.post(
        f"{API}/teams/{acme.team_id}/members",
        headers=acme.headers,
        json={"user": curator_id, "role": "model-curator"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["role"] == role["id"]
    model = {"type": "model", "id": new_id("mdl"), "team_id": acme.team_id}
    decision = check(client, acme.org_id, curator, "model:delete", resource=model)
    assert decision["allowed"] and decision["via"] == f"team_role:{role['id']}@{acme.team_id}"
    resp = client.patch(
        f"{API}/orgs/{acme.org_id}/roles/{role['id']}",
        headers=acme.headers,
        json={"permissions": []},
    )
    assert resp.status_code == 200, resp.text
    assert not check(client, acme.org_id, curator, "model:delete", resource=model)["allowed"]
    assert check(client, acme.org_id, curator, "model:read", resource=model)["allowed"]
    assert [e.target_id for e in events(database, "role.updated")] == [role["id"]]
    listed = client.get(
        f"{API}/orgs/{acme.org_id}/roles?include_builtin=true", headers=acme.headers
    ).json()
    names = [r["name"] for r in listed["items"]]
    assert names[:4] == ["viewer", "editor", "admin", "owner"] and "model-curator" in names


def test_an_empty_role_update_is_refused_and_changes_nothing(
    client: TestClient, acme: Tenant, database: Database, clock: FrozenClock
) -> None:
    url = f"{API}/orgs/{acme.org_id}/roles"
    role = client.post(url, headers=acme.headers, json={"name": "analyst", "permissions": []})
    assert role.status_code == 201, role.text
    clock.advance(seconds=60)
    resp = client.patch(f"{url}/analyst", headers=acme.headers, json={})
    assert_problem(resp, 422, "nothing_to_update")
    # A field left out changes nothing; null is not "left out" but a value no field takes.
    resp = client.patch(f"{url}/analyst", headers=acme.headers, json={"name": None})
    assert assert_problem(resp, 422, "validation_error")["errors"][0]["loc"] == ["body", "name"]
    shown = client.get(f"{url}/analyst", headers=acme.headers).json()
    assert shown["updated_at"] == role.json()["updated_at"]
    assert events(database, "role.updated") == []


def test_role_inheritance_cycles_are_refused(client: TestClient, acme: Tenant) -> None:
    url = f"{API}/orgs/{acme.org_id}/roles"
    first = client.post(url, headers=acme.headers, json={"name": "first"}).json()
    second = client.post(
        url, headers=acme.headers, json={"name": "second", "inherits": ["first"]}
    ).json()
    third = client.post(
        url, headers=acme.headers, json={"name": "third", "inherits": [second["id"]]}
    ).json()
    resp = client.patch(f"{url}/{first['id']}", headers=acme.headers, json={"inherits": ["third"]})
    assert assert_problem(resp, 422, "role_cycle")
    resp = client.patch(f"{url}/first", headers=acme.headers, json={"inherits": ["first"]})
    assert assert_problem(resp, 422, "role_cycle")
    assert client.get(f"{url}/{third['id']}", headers=acme.headers).json()["inherits"] == [
        second["id"]
    ]
    resp = client.post(url, headers=acme.headers, json={"name": "x", "inherits": ["nobody"]})
    assert_problem(resp, 422, "unknown_role")
    assert_problem(client.post(url, headers=acme.headers, json={"name": "first"}), 409)
    assert_problem(client.post(url, headers=acme.headers, json={"name": "editor"}), 422)


def test_deleting_a_role_in_use_needs_somewhere_to_move_its_holders(
    client: TestClient, factory: Factory, acme: Tenant, database: Database
) -> None:
    url = f"{API}/orgs/{acme.org_id}/roles"
    role = client.post(
        url, headers=acme.headers, json={"name": "labeler", "permissions": ["model:update"]}
    ).json()
    child = client.post(
        url, headers=acme.headers, json={"name": "senior-labeler", "inherits": ["labeler"]}
    ).json()
    holder_id, _ = member(factory, acme, team_role=None)
    client.post(
        f"{API}/teams/{acme.team_id}/members",
        headers=acme.headers,
        json={"user": holder_id, "role": "labeler"},
    )
    grantee_id, _ = member(factory, acme)
    grant(client, acme, acme.team_id, {"subject": user(grantee_id), "role": "labeler"})
    before = count_rows(database)
    problem = assert_problem(client.delete(f"{url}/labeler", headers=acme.headers), 409)
    assert problem["code"] == "role_in_use"
    assert problem["holders"] == {
        "team_members": 1,
        "grants": 1,
        "templates": 0,
        "invitations": 0,
        "roles": 1,
    }
    assert count_rows(database) == before
    resp = client.delete(f"{url}/labeler?reassign_to=editor", headers=acme.headers)
    assert resp.status_code == 204, resp.text
    members = client.get(f"{API}/teams/{acme.team_id}/members", headers=acme.headers).json()
    assert {m["user_id"]: m["role"] for m in members["items"]}[holder_id] == "editor"
    grants = client.get(f"{API}/orgs/{acme.org_id}/grants", headers=acme.headers).json()
    assert [g["role"] for g in grants["items"]] == ["editor"]
    assert client.get(f"{url}/{child['id']}", headers=acme.headers).json()["inherits"] == ["editor"]
    assert_problem(client.get(f"{url}/{role['id']}", headers=acme.headers), 404)
    assert len(events(database, "role.deleted")) == 1


# ---- grants on the real routes ----


def test_a_team_grant_lets_someone_without_membership_use_the_teams_routes(
    client: TestClient, factory: Factory, acme: Tenant
) -> None:
    outsider_id, outsider = member(factory, acme)
    problem = assert_problem(
        client.patch(f"{API}/teams/{acme.team_id}", headers=outsider, json={}), 403
    )
    assert problem["missing_permission"] == "team:update"
    made = grant(client, acme, acme.team_id, {"subject": user(outsider_id), "role": "admin"})
    assert rename_team(client, acme.team_id, outsider) == 200
    decision = check(
        client, acme.org_id, outsider, "team:update", resource={"type": "team", "id": acme.team_id}
    )
    assert decision["via"] == f"grant:{made['id']}"
    assert client.delete(f"{API}/grants/{made['id']}", headers=acme.headers).status_code == 204
    assert rename_team(client, acme.team_id, outsider) == 403


def test_a_grant_to_a_team_reaches_each_of_its_members(
    client: TestClient, factory: Factory, acme: Tenant
) -> None:
    research = client.post(
        f"{API}/orgs/{acme.org_id}/teams", headers=acme.headers, json={"name": "Research"}
    ).json()
    researcher_id, researcher = member(factory, acme)
    client.post(
        f"{API}/teams/{research['id']}/members",
        headers=acme.headers,
        json={"user": researcher_id, "role": "viewer"},
    )
    assert rename_team(client, acme.team_id, researcher) == 403
    grant(
        client,
        acme,
        acme.team_id,
        {"subject": {"type": "team", "id": research["id"]}, "role": "admin"},
    )
    assert rename_team(client, acme.team_id, researcher) == 200


def test_grants_can_be_listed_by_a_users_email(
    client: TestClient, factory: Factory, acme: Tenant
) -> None:
    analyst_id, analyst = member(factory, acme)
    email = client.get(f"{API}/me", headers=analyst).json()["user"]["email"]
    made = grant(client, acme, acme.team_id, {"subject": user(email), "role": "viewer"})
    assert made["subject_id"] == analyst_id
    for path in (f"orgs/{acme.org_id}", f"teams/{acme.team_id}"):
        for ref in (email, email.upper(), analyst_id):
            resp = client.get(
                f"{API}/{path}/grants",
                headers=acme.headers,
                params={"subject_type": "user", "subject_id": ref},
            )
            assert resp.status_code == 200, resp.text
            assert [g["id"] for g in resp.json()["items"]] == [made["id"]], (path, ref)
    stranger = "someone-who-is-not-a-member-of-this-organization@example.com"
    resp = client.get(
        f"{API}/orgs/{acme.org_id}/grants",
        headers=acme.headers,
        params={"subject_type": "user", "subject_id": stranger},
    )
    assert_problem(resp, 404, "subject_not_found")


def test_an_expired_grant_stops_at_its_instant_with_the_cache_warm(
    client: TestClient, factory: Factory, acme: Tenant, clock: FrozenClock, database: Database
) -> None:
    holder_id, holder = member(factory, acme)
    ends = clock.now() + timedelta(minutes=10)  # within the access token's lifetime
    grant(
        client,
        acme,
        acme.team_id,
        {"subject": user(holder_id), "role": "admin", "expires_at": ends.isoformat()},
    )
    assert rename_team(client, acme.team_id, holder) == 200
    # The cache of the engine that served the renames (on SQLite, writes have an engine of their
    # own): it must be warm whichever tests ran before.
    with database.session(write=True) as session:
        version = stamps.version_of(session, acme.org_id)
        cached = policy.cache_for(session)
    clock.set(ends - timedelta(microseconds=1))
    assert rename_team(client, acme.team_id, holder) == 200
    clock.set(ends)
    assert rename_team(client, acme.team_id, holder) == 403
    # Nothing about the org changed meanwhile: the cached snapshot answered, at the right time.
    with database.session(write=False) as session:
        assert stamps.version_of(session, acme.org_id) == version
    assert len(cached) >= 1
    listed = client.get(f"{API}/teams/{acme.team_id}/grants", headers=acme.headers).json()
    assert listed["items"] == []
    every = client.get(
        f"{API}/teams/{acme.team_id}/grants?include_expired=true", headers=acme.headers
    ).json()
    assert len(every["items"]) == 1


def test_the_worker_records_each_expiry_once(
    client: TestClient, factory: Factory, acme: Tenant, clock: FrozenClock, database: Database
) -> None:
    holder_id, _ = member(factory, acme)
    ends = clock.now() + timedelta(minutes=5)
    made = grant(
        client,
        acme,
        acme.team_id,
        {"subject": user(holder_id), "role": "viewer", "expires_at": ends.isoformat()},
    )
    assert tasks.record_expired_grants(database, now=clock.now()).recorded == []
    clock.advance(minutes=5)
    assert tasks.record_expired_grants(database, now=clock.now()).recorded == [made["id"]]
    assert tasks.record_expired_grants(database, now=clock.now()).recorded == []
    recorded = events(database, "grant.expired")
    assert [(e.target_id, e.actor_type, e.org_id) for e in recorded] == [
        (made["id"], "system", acme.org_id)
    ]


@pytest.fixture
def second_app(settings: Settings, clock: FrozenClock, database_url: str) -> Iterator[FastAPI]:
    """Another process on the same database: its own engine, pool and snapshot cache."""
    other = Database(database_url)
    yield create_app(settings, clock=clock, database=other)
    other.dispose()


def test_a_second_process_sees_a_revocation_on_its_next_request(
    client: TestClient, factory: Factory, acme: Tenant, second_app: FastAPI, database: Database
) -> None:
    holder_id, holder = member(factory, acme)
    made = grant(client, acme, acme.team_id, {"subject": user(holder_id), "role": "admin"})
    with TestClient(second_app, raise_server_exceptions=False) as elsewhere:
        assert rename_team(elsewhere, acme.team_id, holder) == 200  # cached there now
        assert rename_team(elsewhere, acme.team_id, holder) == 200
        assert client.delete(f"{API}/grants/{made['id']}", headers=acme.headers).status_code == 204
        assert rename_team(elsewhere, acme.team_id, holder) == 403
        # A change of membership made here is seen there too.
        client.post(
            f"{API}/teams/{acme.team_id}/members",
            headers=acme.headers,
            json={"user": holder_id, "role": "admin"},
        )
        assert rename_team(elsewhere, acme.team_id, holder) == 200
    with database.session(write=False) as session:
        assert session.get(OrgVersion, acme.org_id) is not None


def test_a_parent_teams_role_applies_on_its_children_unless_a_child_says_otherwise(
    client: TestClient, factory: Factory, acme: Tenant
) -> None:
    teams = f"{API}/orgs/{acme.org_id}/teams"
    research = client.post(teams, headers=acme.headers, json={"name": "Research"}).json()
    vision = client.post(
        teams, headers=acme.headers, json={"name": "Vision", "parent_team_id": research["id"]}
    ).json()
    lead_id, lead = member(factory, acme)
    client.post(
        f"{API}/teams/{research['id']}/members",
        headers=acme.headers,
        json={"user": lead_id, "role": "admin"},
    )
    assert rename_team(client, vision["id"], lead) == 200
    decision = check(
        client, acme.org_id, lead, "team:update", resource={"type": "team", "id": vision["id"]}
    )
    assert decision["via"] == f"team_role:admin@{research['id']}"
    resp = client.patch(
        f"{API}/teams/{vision['id']}",
        headers=acme.headers,
        json={"settings": {"inherit_access": False}},
    )
    assert resp.status_code == 200, resp.text
    assert rename_team(client, vision["id"], lead) == 403


# ---- never across orgs ----


def test_a_grant_never_names_a_subject_or_resource_of_another_org(
    client: TestClient, factory: Factory, acme: Tenant, database: Database
) -> None:
    other = factory.tenant("Bravo Labs", plan=PLAN)
    stranger_id, _ = member(factory, other)
    other_key = factory.api_key(other)
    before = count_rows(database)
    unknown = {
        "user": assert_problem(
            client.post(
                f"{API}/teams/{acme.team_id}/grants",
                headers=acme.headers,
                json={"subject": user(new_id("usr")), "role": "viewer"},
            ),
            404,
        ),
    }
    for subject in (
        user(stranger_id),
        user(other.owner_email),
        {"type": "team", "id": other.team_id},
        {"type": "api_key", "id": other_key["id"]},
    ):
        resp = client.post(
            f"{API}/teams/{acme.team_id}/grants",
            headers=acme.headers,
            json={"subject": subject, "role": "viewer"},
        )
        assert assert_problem(resp, 404)["code"] == unknown["user"]["code"] == "subject_not_found"
    # Another org's team as the place of the grant, or as the team of the resource.
    resp = client.post(
        f"{API}/teams/{other.team_id}/grants",
        headers=acme.headers,
        json={"subject": user(acme.owner_id), "role": "viewer"},
    )
    assert_problem(resp, 404)
    resp = client.post(
        f"{API}/teams/{acme.team_id}/grants",
        headers=acme.headers,
        json={
            "subject": user(acme.owner_id),
            "resource": {"type": "model", "id": new_id("mdl"), "team_id": other.team_id},
            "role": "viewer",
        },
    )
    assert_problem(resp, 422, "resource_team_mismatch")
    resp = client.post(
        f"{API}/teams/{acme.team_id}/grants",
        headers=acme.headers,
        json={
            "subject": user(acme.owner_id),
            "resource": {"type": "team", "id": other.team_id},
            "role": "viewer",
        },
    )
    assert_problem(resp, 422, "resource_team_mismatch")
    # Questions about another org's people or things answer as unknown ones do.
    resp = client.post(
        f"{API}/orgs/{acme.org_id}/access/check",
        headers=acme.headers,
        json={"permission": "team:read", "subject": user(stranger_id)},
    )
    assert_problem(resp, 404, "subject_not_found")
    resp = client.post(
        f"{API}/orgs/{acme.org_id}/access/check",
        headers=acme.headers,
        json={"permission": "team:read", "resource": {"type": "team", "id": other.team_id}},
    )
    assert_problem(resp, 404)
    assert count_rows(database) == before


# ---- nobody gives more than they hold ----


def test_escalation_attempts_are_refused(
    client: TestClient, factory: Factory, acme: Tenant, database: Database
) -> None:
    admin_id, admin = member(factory, acme, org_role="admin")
    roles = f"{API}/orgs/{acme.org_id}/roles"
    resp = client.post(
        roles, headers=admin, json={"name": "payer", "permissions": ["billing:manage"]}
    )
    assert (
        assert_problem(resp, 403, "permission_escalation")["missing_permission"] == "billing:manage"
    )
    resp = client.post(roles, headers=admin, json={"name": "payer", "inherits": ["owner"]})
    assert_problem(resp, 403, "permission_escalation")
    assert (
        client.post(roles, headers=admin, json={"name": "ok", "inherits": ["admin"]}).status_code
        == 201
    )
    owners_role = client.post(
        roles, headers=acme.headers, json={"name": "finance", "permissions": ["billing:manage"]}
    ).json()
    resp = client.patch(f"{roles}/finance", headers=admin, json={"description": "mine now"})
    assert_problem(resp, 403, "permission_escalation")
    assert_problem(client.delete(f"{roles}/finance", headers=admin), 403, "permission_escalation")
    # Built-in roles are not editable by anyone, owners included.
    assert_problem(
        client.patch(f"{roles}/viewer", headers=acme.headers, json={"name": "v"}),
        403,
        "builtin_role",
    )
    assert_problem(client.delete(f"{roles}/admin", headers=acme.headers), 403, "builtin_role")
    # A team admin grants up to admin on the team, and nothing above it.
    _, lead = member(factory, acme, team_role="admin")
    target_id, _ = member(factory, acme)
    url = f"{API}/teams/{acme.team_id}/grants"
    for body in (
        {"subject": user(target_id), "role": "owner"},
        {"subject": user(target_id), "permissions": ["team:delete"]},
        {"subject": user(target_id), "role": owners_role["id"]},
    ):
        assert_problem(client.post(url, headers=lead, json=body), 403, "permission_escalation")
    assert (
        client.post(
            url, headers=lead, json={"subject": user(target_id), "role": "admin"}
        ).status_code
        == 201
    )
    above = grant(client, acme, acme.team_id, {"subject": user(admin_id), "role": "owner"})
    assert_problem(
        client.delete(f"{API}/grants/{above['id']}", headers=lead), 403, "permission_escalation"
    )
    # Nor can the team admin hand a custom role above their own through a membership.
    resp = client.post(
        f"{API}/teams/{acme.team_id}/members",
        headers=lead,
        json={"user": target_id, "role": "finance"},
    )
    assert_problem(resp, 403, "role_above_own")
    assert [e.result for e in events(database, "grant.revoked")] == ["denied"]


# ---- templates and bulk changes ----


def test_a_template_grants_many_subjects_for_its_duration(
    client: TestClient, factory: Factory, acme: Tenant, clock: FrozenClock, database: Database
) -> None:
    resp = client.post(
        f"{API}/orgs/{acme.org_id}/grant-templates",
        headers=acme.headers,
        json={
            "name": "model-reviewers",
            "role": "viewer",
            "resource_type": "model",
            "resource_id": "*",
            "duration_seconds": 600,
        },
    )
    assert resp.status_code == 201, resp.text
    people = [member(factory, acme) for _ in range(3)]
    resp = client.post(
        f"{API}/teams/{acme.team_id}/grant-templates/model-reviewers/apply",
        headers=acme.headers,
        json={"subjects": [user(p[0]) for p in people]},
    )
    assert resp.status_code == 201, resp.text
    made = resp.json()["grants"]
    assert {(g["resource_type"], g["resource_id"]) for g in made} == {("model", "*")}
    assert {g["expires_at"][:19] for g in made} == {
        (clock.now() + timedelta(minutes=10)).isoformat()[:19]
    }
    assert len(events(database, "grant_template.applied")) == 3
    model = {"type": "model", "id": new_id("mdl"), "team_id": acme.team_id}
    reviewer = people[0][1]
    assert check(client, acme.org_id, reviewer, "model:read", resource=model)["allowed"]
    clock.advance(minutes=10)
    assert not check(client, acme.org_id, reviewer, "model:read", resource=model)["allowed"]


def test_bulk_changes_are_all_or_nothing_with_one_event_per_change(
    client: TestClient, factory: Factory, acme: Tenant, database: Database
) -> None:
    people = [member(factory, acme)[0] for _ in range(3)]
    url = f"{API}/teams/{acme.team_id}/grants/bulk"
    before = count_rows(database)
    resp = client.post(
        url,
        headers=acme.headers,
        json={
            "action": "grant",
            "subjects": [user(p) for p in people] + [user(new_id("usr"))],
            "role": "editor",
        },
    )
    problem = assert_problem(resp, 404, "subject_not_found")
    assert problem["index"] == 3
    assert count_rows(database) == before
    too_many = [user(new_id("usr")) for _ in range(1001)]
    resp = client.post(
        url, headers=acme.headers, json={"action": "grant", "subjects": too_many, "role": "viewer"}
    )
    assert_problem(resp, 422)
    resp = client.post(
        url,
        headers=acme.headers,
        json={"action": "grant", "subjects": [user(p) for p in people], "role": "viewer"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["changed"] == 3
    assert len(events(database, "grant.bulk_changed")) == 3
    resp = client.post(
        url,
        headers=acme.headers,
        json={"action": "change_role", "subjects": [user(p) for p in people[:2]], "role": "editor"},
    )
    assert resp.status_code == 200, resp.text
    assert {g["role"] for g in resp.json()["grants"]} == {"editor"}
    resp = client.post(
        url, headers=acme.headers, json={"action": "revoke", "subjects": [user(p) for p in people]}
    )
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["revoked"]) == 3
    assert len(events(database, "grant.bulk_changed")) == 3 + 2 + 3
    with database.session(write=False) as session:
        assert session.scalars(select(Grant)).all() == []


def test_bulk_of_a_thousand_subjects(
    client: TestClient, factory: Factory, acme: Tenant, database: Database
) -> None:
    team = client.post(
        f"{API}/orgs/{acme.org_id}/teams", headers=acme.headers, json={"name": "Crowd"}
    ).json()
    # A team subject per team: make 1,000 teams' worth of subjects cheaply with nested teams is
    # slow; the org's one team plus 999 unknown ids shows the limit and the all-or-nothing rule.
    subjects = [{"type": "team", "id": team["id"]}] + [
        {"type": "team", "id": new_id("team")} for _ in range(999)
    ]
    before = count_rows(database)
    resp = client.post(
        f"{API}/teams/{acme.team_id}/grants/bulk",
        headers=acme.headers,
        json={"action": "grant", "subjects": subjects, "role": "viewer"},
    )
    assert assert_problem(resp, 404, "subject_not_found")["index"] == 1
    assert count_rows(database) == before


# ---- the questions ----


def test_explain_who_can_and_what_can(client: TestClient, factory: Factory, acme: Tenant) -> None:
    viewer_id, viewer = member(factory, acme, team_role="viewer")
    model_id = new_id("mdl")
    made = grant(
        client,
        acme,
        acme.team_id,
        {
            "subject": user(viewer_id),
            "resource": {"type": "model", "id": model_id},
            "role": "editor",
        },
    )
    resp = client.post(
        f"{API}/orgs/{acme.org_id}/access/explain",
        headers=viewer,
        json={"permission": "model:delete", "resource": {"type": "model", "id": model_id}},
    )
    assert resp.status_code == 200, resp.text
    found = resp.json()
    assert (found["allowed"], found["missing"], found["reason"]) == (
        False,
        "model:delete",
        "not_granted",
    )
    assert found["resource"]["team_id"] == acme.team_id  # learned from the grant on it
    assert {r["id"] for r in found["remedies"] if r["kind"] == "role"} == {"admin", "owner"}
    allowed = check(
        client, acme.org_id, viewer, "model:update", resource={"type": "model", "id": model_id}
    )
    assert allowed["via"] == f"grant:{made['id']}"
    resp = client.get(
        f"{API}/orgs/{acme.org_id}/access/who-can?permission=model:update&resource_type=model&resource_id={model_id}",
        headers=acme.headers,
    )
    assert resp.status_code == 200, resp.text
    who = {(i["subject"]["type"], i["subject"]["id"]): i["via"] for i in resp.json()["items"]}
    assert who[("user", viewer_id)] == f"grant:{made['id']}"
    assert who[("user", acme.owner_id)] == "org_role:owner"
    page = client.get(
        f"{API}/orgs/{acme.org_id}/access/who-can?permission=model:update&resource_type=model&resource_id={model_id}&limit=1",
        headers=acme.headers,
    ).json()
    second = client.get(
        f"{API}/orgs/{acme.org_id}/access/who-can?permission=model:update&resource_type=model&resource_id={model_id}&limit=1&cursor={page['next_cursor']}",
        headers=acme.headers,
    ).json()
    assert len(page["items"]) == len(second["items"]) == 1
    assert page["items"][0] != second["items"][0]
    resp = client.get(
        f"{API}/orgs/{acme.org_id}/access/what-can?permission=model:update&resource_type=model",
        headers=viewer,
    )
    assert [(i["resource"]["id"], i["via"]) for i in resp.json()["items"]] == [
        (model_id, f"grant:{made['id']}")
    ]
    # A member may ask about themselves, not about others.
    resp = client.post(
        f"{API}/orgs/{acme.org_id}/access/check",
        headers=viewer,
        json={"permission": "org:read", "subject": user(acme.owner_id)},
    )
    assert assert_problem(resp, 403)["missing_permission"] == "grant:read"
    assert_problem(
        client.get(f"{API}/orgs/{acme.org_id}/access/who-can?permission=org:read", headers=viewer),
        403,
    )


def test_an_api_key_is_checked_within_its_team_and_permissions(
    client: TestClient, factory: Factory, acme: Tenant
) -> None:
    key = factory.api_key(
        acme, team_id=acme.team_id, permissions=["org:read", "team:read", "model:read"]
    )
    headers = bearer(key["secret"])
    decision = check(
        client,
        acme.org_id,
        headers,
        "model:read",
        resource={"type": "model", "id": new_id("mdl"), "team_id": acme.team_id},
    )
    assert decision["allowed"] and decision["subject"] == {"type": "api_key", "id": key["id"]}
    resp = client.post(
        f"{API}/orgs/{acme.org_id}/access/explain",
        headers=acme.headers,
        json={
            "permission": "model:update",
            "subject": {"type": "api_key", "id": key["id"]},
            "resource": {"type": "team", "id": acme.team_id},
        },
    )
    assert resp.json()["reason"] == "key_permissions"


def test_a_principals_slice_decides_as_the_whole_orgs_snapshot(
    client: TestClient, factory: Factory, acme: Tenant, database: Database, clock: FrozenClock
) -> None:
    """The request path compiles only what concerns the caller when the org is not cached; it
    must answer exactly as the whole org's snapshot does."""
    teams = f"{API}/orgs/{acme.org_id}/teams"
    child = client.post(
        teams, headers=acme.headers, json={"name": "Child", "parent_team_id": acme.team_id}
    ).json()
    people = [member(factory, acme, team_role=role)[0] for role in ("viewer", "editor", None)]
    client.post(
        f"{API}/orgs/{acme.org_id}/roles",
        headers=acme.headers,
        json={"name": "auditor", "permissions": ["audit:read"], "inherits": ["viewer"]},
    )
    grant(client, acme, child["id"], {"subject": user(people[0]), "role": "auditor"})
    grant(
        client,
        acme,
        acme.team_id,
        {"subject": {"type": "team", "id": acme.team_id}, "permissions": ["grant:read"]},
    )
    ends = (clock.now() + timedelta(minutes=1)).isoformat()
    grant(
        client,
        acme,
        child["id"],
        {"subject": user(people[2]), "role": "admin", "expires_at": ends},
    )
    resources = [Resource("team", acme.team_id), Resource("team", child["id"])]
    with database.session(write=False) as session:
        whole = policy.snapshot_for(session, acme.org_id)
        for person in [acme.owner_id, *people]:
            part = policy_source.load_principal_policy(session, acme.org_id, person, None)
            sliced = Snapshot(part)
            for moment in (clock.now(), clock.now() + timedelta(minutes=2)):
                for resource in resources:
                    for permission in Permission:
                        expected = whole.check_user(person, permission, resource, moment)
                        assert sliced.check_user(person, permission, resource, moment) == expected
