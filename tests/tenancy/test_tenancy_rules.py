"""Tenancy rules: slugs, invitations, owners, transfer, deletion, onboarding, team trees."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import PASSWORD, Factory, Tenant, assert_problem, bearer, count_rows
from tenantry.identity.models import ApiKey
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.tenancy.models import Invitation, Organization, OrgMembership, Team, TeamMembership


def invite(
    client: TestClient, tenant: Tenant, email: str, role: str = "member", **extra: Any
) -> Any:
    return client.post(
        f"/api/v1/orgs/{tenant.org_id}/invitations",
        headers=tenant.headers,
        json={"email": email, "role": role, **extra},
    )


def accept(client: TestClient, token: str, access: str) -> Any:
    return client.post(f"/api/v1/invitations/{token}/accept", headers=bearer(access))


def login(client: TestClient, email: str) -> str:
    resp = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def members(client: TestClient, tenant: Tenant, headers: dict[str, str] | None = None) -> Any:
    resp = client.get(f"/api/v1/orgs/{tenant.org_id}/members", headers=headers or tenant.headers)
    assert resp.status_code == 200, resp.text
    return {m["user_id"]: m["role"] for m in resp.json()["items"]}


def delete(client: TestClient, url: str, headers: dict[str, str], body: Any) -> Any:
    return client.request("DELETE", url, headers=headers, json=body)


def new_team(client: TestClient, tenant: Tenant, name: str, **extra: Any) -> dict[str, Any]:
    resp = client.post(
        f"/api/v1/orgs/{tenant.org_id}/teams", headers=tenant.headers, json={"name": name, **extra}
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


# ---- slugs ----


def test_org_slug_is_generated_from_the_name_with_a_numeric_suffix(
    client: TestClient, factory: Factory
) -> None:
    assert factory.tenant("Acme AI").org_slug == "acme-ai"
    assert factory.tenant("Acme AI").org_slug == "acme-ai-2"
    assert factory.tenant("  ACME -- ai!! ").org_slug == "acme-ai-3"
    owner = factory.tenant("Zeta")
    made = client.post("/api/v1/orgs", headers=owner.headers, json={"name": "Acme AI"})
    assert made.status_code == 201, made.text
    assert made.json()["slug"] == "acme-ai-4"
    assert factory.tenant("Acme").org_slug == "acme"
    assert factory.tenant("!!!").org_slug == "org"


def test_duplicate_given_slug_is_409_and_writes_nothing(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme AI")
    before = count_rows(database)
    resp = client.post(
        "/api/v1/orgs", headers=acme.headers, json={"name": "Other", "slug": acme.org_slug}
    )
    assert_problem(resp, 409, "slug_taken")
    assert count_rows(database) == before
    given = client.post("/api/v1/orgs", headers=acme.headers, json={"name": "X", "slug": "mine"})
    assert given.status_code == 201, given.text
    assert given.json()["slug"] == "mine"


def test_team_slug_is_unique_within_its_org_only(client: TestClient, factory: Factory) -> None:
    acme, beta = factory.tenant(), factory.tenant()
    assert new_team(client, acme, "Research")["slug"] == "research"
    assert new_team(client, acme, "Research")["slug"] == "research-2"
    assert new_team(client, beta, "Research")["slug"] == "research"
    clash = client.post(
        f"/api/v1/orgs/{acme.org_id}/teams",
        headers=acme.headers,
        json={"name": "R", "slug": "research"},
    )
    assert_problem(clash, 409, "slug_taken")


def test_renaming_to_a_taken_slug_is_409(client: TestClient, factory: Factory) -> None:
    acme, beta = factory.tenant("Acme"), factory.tenant("Beta")
    resp = client.patch(
        f"/api/v1/orgs/{acme.org_id}", headers=acme.headers, json={"slug": beta.org_slug}
    )
    assert_problem(resp, 409, "slug_taken")
    research = new_team(client, acme, "Research")
    resp = client.patch(
        f"/api/v1/teams/{research['id']}", headers=acme.headers, json={"slug": "default"}
    )
    assert_problem(resp, 409, "slug_taken")
    same = client.patch(
        f"/api/v1/orgs/{acme.org_id}", headers=acme.headers, json={"slug": acme.org_slug}
    )
    assert same.status_code == 200, same.text
    renamed = client.patch(
        f"/api/v1/orgs/{acme.org_id}", headers=acme.headers, json={"slug": "acme-labs"}
    )
    assert renamed.status_code == 200, renamed.text
    assert client.get("/api/v1/orgs/acme-labs", headers=acme.headers).status_code == 200
    assert_problem(client.get("/api/v1/orgs/acme", headers=acme.headers), 404)


# ---- invitations ----


def test_invitation_is_single_use(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    user_id, email, token = factory.user()
    inv = invite(client, acme, email, "admin")
    assert inv.status_code == 201, inv.text
    assert inv.json()["token"] in inv.json()["url"]
    first = accept(client, inv.json()["token"], token)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "accepted"
    assert members(client, acme)[user_id] == "admin"
    assert_problem(accept(client, inv.json()["token"], token), 410, "invitation_accepted")


def test_invitation_expires_after_seven_days(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    acme = factory.tenant()
    _, early_email, _ = factory.user()
    _, late_email, _ = factory.user()
    early = invite(client, acme, early_email).json()
    late = invite(client, acme, late_email).json()
    clock.advance(days=7, seconds=-1)
    assert accept(client, early["token"], login(client, early_email)).status_code == 200
    clock.advance(seconds=1)
    late_token = login(client, late_email)
    before = count_rows(database)
    assert_problem(accept(client, late["token"], late_token), 410, "invitation_expired")
    assert count_rows(database) == before


def test_an_expired_invitation_is_not_pending_and_can_be_sent_again(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant()
    _, email, _ = factory.user()
    first = invite(client, acme, email).json()
    clock.advance(days=7, seconds=1)
    headers = {"Authorization": f"Bearer {login(client, acme.owner_email)}"}
    url = f"/api/v1/orgs/{acme.org_id}/invitations"
    assert client.get(url, headers=headers).json()["items"] == []
    again = client.post(url, headers=headers, json={"email": email, "role": "member"})
    assert again.status_code == 201, again.text
    assert again.json()["id"] != first["id"]
    assert accept(client, again.json()["token"], login(client, email)).status_code == 200


def test_accepting_needs_the_invited_email(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    invited_id, invited_email, invited_token = factory.user()
    stranger_id, _, stranger_token = factory.user()
    inv = invite(client, acme, invited_email.upper()).json()
    # Refused: 403, or 404 so that a token tells a stranger nothing about the invitation.
    refused = accept(client, inv["token"], stranger_token)
    assert_problem(refused, refused.status_code)
    assert refused.status_code in (403, 404)
    declined = client.post(
        f"/api/v1/invitations/{inv['token']}/decline", headers=bearer(stranger_token)
    )
    assert declined.status_code in (403, 404)
    assert stranger_id not in members(client, acme)
    # Still pending, and the invitee (email matched case-insensitively) can accept.
    assert accept(client, inv["token"], invited_token).status_code == 200
    assert members(client, acme)[invited_id] == "member"


def test_unknown_invitation_token_is_404(client: TestClient, factory: Factory) -> None:
    _, _, token = factory.user()
    assert_problem(accept(client, "tni_made-up", token), 404)
    resp = client.post("/api/v1/invitations/tni_made-up/decline", headers=bearer(token))
    assert_problem(resp, 404)


def test_invitation_can_be_declined(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    user_id, email, token = factory.user()
    inv = invite(client, acme, email).json()
    declined = client.post(f"/api/v1/invitations/{inv['token']}/decline", headers=bearer(token))
    assert declined.status_code == 200, declined.text
    assert declined.json()["status"] == "declined"
    assert declined.json()["responded_at"] is not None
    assert_problem(accept(client, inv["token"], token), 410, "invitation_declined")
    assert user_id not in members(client, acme)


def test_invitation_can_be_revoked(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    user_id, email, token = factory.user()
    inv = invite(client, acme, email).json()
    revoked = client.delete(f"/api/v1/invitations/{inv['id']}", headers=acme.headers)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert_problem(accept(client, inv["token"], token), 410, "invitation_revoked")
    assert user_id not in members(client, acme)
    again = client.delete(f"/api/v1/invitations/{inv['id']}", headers=acme.headers)
    assert_problem(again, 409)
    # A fresh invitation for the same email can be sent once the old one is revoked.
    assert invite(client, acme, email).status_code == 201


def test_another_tenant_cannot_revoke_an_invitation(client: TestClient, factory: Factory) -> None:
    acme, beta = factory.tenant(), factory.tenant()
    _, email, token = factory.user()
    inv = invite(client, acme, email).json()
    assert_problem(client.delete(f"/api/v1/invitations/{inv['id']}", headers=beta.headers), 404)
    assert accept(client, inv["token"], token).status_code == 200


def test_list_pending_invitations(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    _, accepted_email, accepted_token = factory.user()
    emails = ["p1@example.com", "p2@example.com", accepted_email, "gone@example.com"]
    made = {e: invite(client, acme, e).json() for e in emails}
    assert accept(client, made[accepted_email]["token"], accepted_token).status_code == 200
    revoked = client.delete(
        f"/api/v1/invitations/{made['gone@example.com']['id']}", headers=acme.headers
    )
    assert revoked.status_code == 200
    pending = client.get(f"/api/v1/orgs/{acme.org_id}/invitations", headers=acme.headers)
    assert pending.status_code == 200, pending.text
    items = pending.json()["items"]
    assert sorted(i["email"] for i in items) == ["p1@example.com", "p2@example.com"]
    assert all("token" not in i for i in items)
    every = client.get(
        f"/api/v1/orgs/{acme.org_id}/invitations", headers=acme.headers, params={"status": "all"}
    )
    assert len(every.json()["items"]) == 4
    duplicate = invite(client, acme, "p1@example.com")
    assert_problem(duplicate, 409, "already_invited")


def test_accepting_a_team_invitation_makes_an_org_and_team_member(
    client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant()
    team = new_team(client, acme, "Research")
    user_id, email, token = factory.user()
    inv = invite(client, acme, email, "developer", team_id=team["id"])
    assert inv.status_code == 201, inv.text
    assert inv.json()["team_id"] == team["id"]
    assert accept(client, inv.json()["token"], token).status_code == 200
    me = client.get("/api/v1/me", headers=bearer(token)).json()
    assert [(o["org_id"], o["role"]) for o in me["organizations"]] == [(acme.org_id, "member")]
    assert [(t["team_id"], t["role"]) for t in me["teams"]] == [(team["id"], "editor")]
    team_members = client.get(f"/api/v1/teams/{team['id']}/members", headers=bearer(token))
    assert team_members.status_code == 200, team_members.text
    assert [m["user_id"] for m in team_members.json()["items"]] == [user_id]
    # The other team of the org stays out of reach beyond reading it.
    assert_problem(client.get(f"/api/v1/teams/{acme.team_id}/members", headers=bearer(token)), 403)


def test_invitations_cannot_grant_above_ones_own_role(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    _, admin_token = factory.member(acme, org_role="admin")
    resp = client.post(
        f"/api/v1/orgs/{acme.org_id}/invitations",
        headers=bearer(admin_token),
        json={"email": "boss@example.com", "role": "owner"},
    )
    assert_problem(resp, 403, "role_above_own")
    _, member_token = factory.member(acme, org_role="member")
    resp = client.post(
        f"/api/v1/orgs/{acme.org_id}/invitations",
        headers=bearer(member_token),
        json={"email": "friend@example.com", "role": "member"},
    )
    assert_problem(resp, 403)


# ---- owners ----


def test_the_last_owner_cannot_be_removed_or_demoted(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    url = f"/api/v1/orgs/{acme.org_id}/members/{acme.owner_id}"
    assert_problem(client.delete(url, headers=acme.headers), 409, "last_owner")
    assert_problem(client.patch(url, headers=acme.headers, json={"role": "admin"}), 409)
    assert members(client, acme)[acme.owner_id] == "owner"
    # With a second owner, the first may leave.
    second_id, second_token = factory.member(acme, org_role="owner")
    assert client.delete(url, headers=acme.headers).status_code == 204
    assert members(client, acme, bearer(second_token)) == {second_id: "owner"}
    last = f"/api/v1/orgs/{acme.org_id}/members/{second_id}"
    assert_problem(client.delete(last, headers=bearer(second_token)), 409, "last_owner")


def test_admin_cannot_remove_an_owner(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    _, admin_token = factory.member(acme, org_role="admin")
    url = f"/api/v1/orgs/{acme.org_id}/members/{acme.owner_id}"
    assert_problem(client.delete(url, headers=bearer(admin_token)), 403)
    assert members(client, acme)[acme.owner_id] == "owner"


def test_ownership_transfer_makes_the_old_owner_admin(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    member_id, member_token = factory.member(acme)
    resp = client.post(
        f"/api/v1/orgs/{acme.org_id}/transfer-ownership",
        headers=acme.headers,
        json={"new_owner": member_id},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["user_id"] == member_id
    assert resp.json()["role"] == "owner"
    assert members(client, acme) == {acme.owner_id: "admin", member_id: "owner"}
    # The old owner lost owner rights on the very next request.
    again = client.post(
        f"/api/v1/orgs/{acme.org_id}/transfer-ownership",
        headers=acme.headers,
        json={"new_owner": acme.owner_id},
    )
    assert_problem(again, 403)
    gone = delete(client, f"/api/v1/orgs/{acme.org_id}", acme.headers, {"confirm": acme.org_slug})
    assert_problem(gone, 403)
    back = client.post(
        f"/api/v1/orgs/{acme.org_id}/transfer-ownership",
        headers=bearer(member_token),
        json={"new_owner": acme.owner_email},
    )
    assert back.status_code == 200, back.text


def test_ownership_goes_only_to_a_member(client: TestClient, factory: Factory) -> None:
    acme, beta = factory.tenant(), factory.tenant()
    resp = client.post(
        f"/api/v1/orgs/{acme.org_id}/transfer-ownership",
        headers=acme.headers,
        json={"new_owner": beta.owner_id},
    )
    assert_problem(resp, 404)
    assert members(client, acme) == {acme.owner_id: "owner"}


# ---- deletion ----


def test_deleting_a_team_needs_its_slug_and_the_owner_role(
    client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant()
    team = new_team(client, acme, "Research")
    url = f"/api/v1/teams/{team['id']}"
    _, admin_token = factory.member(acme, org_role="admin")
    assert_problem(delete(client, url, acme.headers, {"confirm": "wrong"}), 422)
    assert_problem(delete(client, url, acme.headers, {}), 422)
    assert_problem(client.delete(url, headers=acme.headers), 422)
    assert_problem(delete(client, url, bearer(admin_token), {"confirm": "research"}), 403)
    assert client.get(url, headers=acme.headers).status_code == 200
    done = delete(client, url, acme.headers, {"confirm": "research"})
    assert done.status_code == 204, done.text
    assert_problem(client.get(url, headers=acme.headers), 404)


def test_deleting_a_team_keeps_its_children(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    parent = new_team(client, acme, "Parent")
    child = new_team(client, acme, "Child", parent_team_id=parent["id"])
    done = delete(client, f"/api/v1/teams/{parent['id']}", acme.headers, {"confirm": "parent"})
    assert done.status_code == 204, done.text
    kept = client.get(f"/api/v1/teams/{child['id']}", headers=acme.headers)
    assert kept.status_code == 200
    assert kept.json()["parent_team_id"] is None


def test_deleting_an_org_needs_its_slug_and_the_owner_role(
    client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant()
    url = f"/api/v1/orgs/{acme.org_id}"
    _, admin_token = factory.member(acme, org_role="admin")
    assert_problem(delete(client, url, acme.headers, {"confirm": "nope"}), 422)
    assert_problem(delete(client, url, acme.headers, {"confirm": acme.org_slug.upper()}), 422)
    assert_problem(client.delete(url, headers=acme.headers), 422)
    assert_problem(delete(client, url, bearer(admin_token), {"confirm": acme.org_slug}), 403)
    assert client.get(url, headers=acme.headers).status_code == 200


def _org_rows(database: Database, org_id: str) -> dict[str, int]:
    tables = {
        "organizations": (Organization, Organization.id),
        "org_memberships": (OrgMembership, OrgMembership.org_id),
        "teams": (Team, Team.org_id),
        "team_memberships": (TeamMembership, TeamMembership.org_id),
        "api_keys": (ApiKey, ApiKey.org_id),
        "invitations": (Invitation, Invitation.org_id),
    }
    with database.session(write=False) as session:
        return {
            name: int(
                session.scalar(select(func.count()).select_from(model).where(col == org_id)) or 0
            )
            for name, (model, col) in tables.items()
        }


def test_deleting_an_org_removes_its_data(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme, beta = factory.tenant(), factory.tenant()
    team = new_team(client, acme, "Research")
    child = new_team(client, acme, "Child", parent_team_id=team["id"])
    member_id, member_token = factory.member(acme, team_role="editor")
    key = factory.api_key(acme)
    team_key = factory.api_key(acme, team_id=child["id"])
    assert invite(client, acme, "pending@example.com").status_code == 201
    beta_key = factory.api_key(beta)
    beta_before = _org_rows(database, beta.org_id)
    assert all(_org_rows(database, acme.org_id).values())

    done = delete(client, f"/api/v1/orgs/{acme.org_slug}", acme.headers, {"confirm": acme.org_slug})
    assert done.status_code == 204, done.text
    assert _org_rows(database, acme.org_id) == dict.fromkeys(beta_before, 0)
    assert_problem(client.get("/api/v1/me", headers=bearer(key["secret"])), 401)
    assert_problem(client.get("/api/v1/me", headers=bearer(team_key["secret"])), 401)
    assert_problem(client.get(f"/api/v1/orgs/{acme.org_id}", headers=acme.headers), 404)
    assert_problem(client.get(f"/api/v1/teams/{team['id']}", headers=acme.headers), 404)
    # The people keep their accounts; the member simply belongs to no org now.
    me = client.get("/api/v1/me", headers=bearer(member_token))
    assert me.status_code == 200, me.text
    assert me.json()["user"]["id"] == member_id
    assert me.json()["organizations"] == [] and me.json()["teams"] == []
    assert client.get("/api/v1/orgs", headers=acme.headers).json()["items"] == []
    # The slug is free again, and the other tenant is untouched.
    again = client.post("/api/v1/orgs", headers=acme.headers, json={"name": "A", "slug": "x"})
    assert again.status_code == 201, again.text
    assert _org_rows(database, beta.org_id) == beta_before
    assert client.get("/api/v1/me", headers=bearer(beta_key["secret"])).status_code == 200


# ---- onboarding ----


def test_onboarding_returns_org_owner_default_team_and_tokens(client: TestClient) -> None:
    resp = client.post(
        "/api/v1/onboard",
        json={
            "company_name": "Nimbus Labs",
            "admin_email": "founder@nimbus.example",
            "admin_password": PASSWORD,
            "plan": "professional",
        },
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    org, team = body["organization"], body["team"]
    assert (org["name"], org["slug"], org["plan"]) == ("Nimbus Labs", "nimbus-labs", "professional")
    assert org["billing_email"] == "founder@nimbus.example"
    assert (team["name"], team["org_id"]) == ("default", org["id"])
    assert body["expires_in"] > 0
    me = client.get("/api/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["user"]["id"] == body["user_id"]
    assert me.json()["user"]["email"] == "founder@nimbus.example"
    assert [(o["org_id"], o["role"]) for o in me.json()["organizations"]] == [(org["id"], "owner")]
    teams = client.get(f"/api/v1/orgs/{org['id']}/teams", headers=bearer(body["access_token"]))
    assert [t["id"] for t in teams.json()["items"]] == [team["id"]]
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text


@pytest.mark.parametrize(
    "change",
    [
        {"plan": "platinum"},
        {"admin_password": "short"},
        {"admin_email": "not-an-email"},
        {"company_name": ""},
        {"company_name": "x" * 201},
        {"is_admin": True},
    ],
    ids=["plan", "password", "email", "empty-name", "long-name", "unknown-field"],
)
def test_onboarding_refuses_bad_input_and_writes_nothing(
    client: TestClient, database: Database, change: dict[str, Any]
) -> None:
    body = {
        "company_name": "Nimbus",
        "admin_email": "founder@nimbus.example",
        "admin_password": PASSWORD,
        **change,
    }
    before = count_rows(database)
    assert_problem(client.post("/api/v1/onboard", json=body), 422)
    assert count_rows(database) == before


def test_onboarding_an_existing_email_is_409_and_writes_nothing(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant()
    before = count_rows(database)
    resp = client.post(
        "/api/v1/onboard",
        json={
            "company_name": "Copycat",
            "admin_email": acme.owner_email.upper(),
            "admin_password": PASSWORD,
        },
    )
    assert_problem(resp, 409, "email_taken")
    assert count_rows(database) == before


# ---- team trees ----


def test_team_parent_must_be_in_the_same_org(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme, beta = factory.tenant(), factory.tenant()
    before = count_rows(database)
    resp = client.post(
        f"/api/v1/orgs/{acme.org_id}/teams",
        headers=acme.headers,
        json={"name": "Spy", "parent_team_id": beta.team_id},
    )
    assert_problem(resp, 422, "invalid_parent_team")
    assert count_rows(database) == before
    moved = client.patch(
        f"/api/v1/teams/{acme.team_id}",
        headers=acme.headers,
        json={"parent_team_id": beta.team_id},
    )
    assert_problem(moved, 422, "invalid_parent_team")
    assert (
        client.get(f"/api/v1/teams/{acme.team_id}", headers=acme.headers).json()["parent_team_id"]
        is None
    )


def test_team_cycles_are_refused(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    a = new_team(client, acme, "A")
    b = new_team(client, acme, "B", parent_team_id=a["id"])
    c = new_team(client, acme, "C", parent_team_id=b["id"])
    for parent in (c["id"], b["id"], a["id"]):
        resp = client.patch(
            f"/api/v1/teams/{a['id']}", headers=acme.headers, json={"parent_team_id": parent}
        )
        assert_problem(resp, 422, "team_cycle")
    assert (
        client.get(f"/api/v1/teams/{a['id']}", headers=acme.headers).json()["parent_team_id"]
        is None
    )
    # A legal move still works: C under A directly, then detached.
    moved = client.patch(
        f"/api/v1/teams/{c['id']}", headers=acme.headers, json={"parent_team_id": a["id"]}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["parent_team_id"] == a["id"]
    detached = client.patch(
        f"/api/v1/teams/{c['id']}", headers=acme.headers, json={"parent_team_id": None}
    )
    assert detached.status_code == 200, detached.text
    assert detached.json()["parent_team_id"] is None


# ---- races ----


async def _together(app: FastAPI, calls: list[tuple[str, str, dict[str, Any]]]) -> list[Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as ac:
        return list(
            await asyncio.gather(*(ac.request(method, url, **kw) for method, url, kw in calls))
        )


def test_two_owners_removing_each_other_at_once_leave_one_owner(
    app: FastAPI, factory: Factory, database: Database
) -> None:
    acme = factory.tenant()
    second_id, second_token = factory.member(acme, org_role="owner")
    base = f"/api/v1/orgs/{acme.org_id}/members"
    calls = [
        ("DELETE", f"{base}/{second_id}", {"headers": acme.headers}),
        ("DELETE", f"{base}/{acme.owner_id}", {"headers": bearer(second_token)}),
        ("PATCH", f"{base}/{second_id}", {"headers": acme.headers, "json": {"role": "member"}}),
        (
            "PATCH",
            f"{base}/{acme.owner_id}",
            {"headers": bearer(second_token), "json": {"role": "member"}},
        ),
    ]
    answers = asyncio.run(_together(app, calls))
    assert all(a.status_code in (200, 204, 403, 404, 409) for a in answers), [
        a.text for a in answers
    ]
    with database.session(write=False) as session:
        owners = session.scalar(
            select(func.count()).where(
                OrgMembership.org_id == acme.org_id, OrgMembership.role == "owner"
            )
        )
    assert owners >= 1, [a.text for a in answers]


def test_concurrent_accepts_of_one_invitation_add_one_membership(
    app: FastAPI, client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant()
    user_id, email, token = factory.user()
    inv = invite(client, acme, email, "developer", team_id=acme.team_id).json()
    calls = [
        ("POST", f"/api/v1/invitations/{inv['token']}/accept", {"headers": bearer(token)})
    ] * 10
    answers = asyncio.run(_together(app, calls))
    assert [a.status_code for a in answers].count(200) == 1, [a.text for a in answers]
    assert all(a.status_code in (200, 409, 410) for a in answers), [a.text for a in answers]
    with database.session(write=False) as session:
        org_rows = session.scalar(
            select(func.count()).where(
                OrgMembership.org_id == acme.org_id, OrgMembership.user_id == user_id
            )
        )
        team_rows = session.scalar(
            select(func.count()).where(
                TeamMembership.team_id == acme.team_id, TeamMembership.user_id == user_id
            )
        )
    assert (org_rows, team_rows) == (1, 1)
