"""Personal data: the export (a person's own, an org's of a member) and erasure of an account.

Erasure is proven the way an auditor would: after it, the whole database is searched for the
person's email, username and names, and every audit chain they touched still verifies.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from conftest import PASSWORD, Factory, Tenant, assert_problem, bearer, database_contains
from tenantry.audit import service as audit
from tenantry.audit.models import AuditEvent, AuditEventPersonal, AuditSubjectKey
from tenantry.cli import connection
from tenantry.cli.main import app as cli_app
from tenantry.client import AsyncClient, Client, Conflict, Forbidden, Unauthenticated
from tenantry.config import Settings
from tenantry.kit.db import Database
from tenantry.kit.security import token_hash
from tenantry.tenancy.models import Invitation, Organization

BASE = "http://testserver"
# Distinctive, so that a search of the whole database finds them only where they are kept.
EMAIL = "wilhelmina.quarrington@example.org"
USERNAME = "wilhelmina.quarrington"  # derived from the email at sign-up
FULL_NAME = "Wilhelmina Zephyrine Quarrington"
NEW_FULL_NAME = "Mina Zephyrine Quarrington-Vale"


@dataclass
class Person:
    id: str
    email: str
    token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


def sign_up(client: TestClient, email: str = EMAIL, full_name: str = FULL_NAME) -> Person:
    # With an Idempotency-Key: the stored answer (email, names, tokens) must be unreadable too.
    resp = client.post(
        "/api/v1/auth/signup",
        json={"email": email, "password": PASSWORD, "full_name": full_name},
        headers={"Idempotency-Key": "signup-1", "User-Agent": "Quarrington-Laptop/1.0"},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["user"]["username"] == email.split("@")[0]
    return Person(body["user"]["id"], email, body["access_token"], body["refresh_token"])


def invite(
    client: TestClient, org_id: str, headers: dict[str, str], email: str, role: str = "member"
) -> str:
    resp = client.post(
        f"/api/v1/orgs/{org_id}/invitations", headers=headers, json={"email": email, "role": role}
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["token"])


def join(client: TestClient, tenant: Tenant, person: Person, role: str = "member") -> None:
    token = invite(client, tenant.org_id, tenant.headers, person.email, role)
    resp = client.post(f"/api/v1/invitations/{token}/accept", headers=person.headers)
    assert resp.status_code == 200, resp.text


def add_to_team(client: TestClient, tenant: Tenant, person: Person, role: str = "editor") -> None:
    resp = client.post(
        f"/api/v1/teams/{tenant.team_id}/members",
        headers=tenant.headers,
        json={"user": person.id, "role": role},
    )
    assert resp.status_code == 201, resp.text


def make_api_key(client: TestClient, tenant: Tenant, person: Person) -> dict[str, Any]:
    resp = client.post(
        f"/api/v1/orgs/{tenant.org_id}/api-keys", headers=person.headers, json={"name": "laptop"}
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def fail_login(client: TestClient, email: str) -> None:
    resp = client.post("/api/v1/auth/login", json={"email": email, "password": "not it at all"})
    assert resp.status_code == 401


@dataclass
class Busy:
    """A person who has done a bit of everything in Acme (as an admin, on the default team)."""

    person: Person
    acme: Tenant
    other: Tenant
    key: dict[str, Any]
    friend_email: str


def busy_person(client: TestClient, factory: Factory) -> Busy:
    acme, other = factory.tenant("Acme AI"), factory.tenant("Other Corp")
    person = sign_up(client)
    join(client, acme, person, role="admin")
    add_to_team(client, acme, person)
    key = make_api_key(client, acme, person)
    friend = "friend.of.someone@example.net"
    invite(client, acme.org_id, person.headers, friend)
    resp = client.patch("/api/v1/me", headers=person.headers, json={"full_name": NEW_FULL_NAME})
    assert resp.status_code == 200, resp.text
    fail_login(client, EMAIL)
    return Busy(person, acme, other, key, friend)


# ---- export ----


def test_export_holds_everything_about_the_caller_and_nothing_about_anyone_else(
    client: TestClient, factory: Factory
) -> None:
    busy = busy_person(client, factory)
    person, acme, other = busy.person, busy.acme, busy.other
    resp = client.get("/api/v1/users/me/export", headers=person.headers)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["format"] == "tenantry-personal-data/1"
    assert data["scope"] == {"kind": "account", "org_id": None, "team_id": None}
    user = data["user"]
    assert (user["id"], user["email"], user["username"], user["full_name"]) == (
        person.id,
        EMAIL,
        USERNAME,
        NEW_FULL_NAME,
    )
    assert user["created_at"] and user["status"] == "active"
    assert [(o["org_id"], o["role"]) for o in data["organizations"]] == [(acme.org_id, "admin")]
    assert [(t["team_id"], t["role"]) for t in data["teams"]] == [(acme.team_id, "editor")]

    # Sessions say when and from where, never with token material.
    assert len(data["sessions"]) == 1
    assert data["sessions"][0]["user_agent"] == "Quarrington-Laptop/1.0"
    assert data["sessions"][0]["ip"]
    for secret in (person.token, person.refresh_token, token_hash(person.refresh_token)):
        assert secret not in resp.text
    # API keys: metadata only.
    assert [k["id"] for k in data["api_keys"]] == [busy.key["id"]]
    assert busy.key["secret"] not in resp.text
    assert token_hash(busy.key["secret"]) not in resp.text
    assert "secret_hash" not in resp.text and "token_hash" not in resp.text

    # Invitations: received (their own address), sent (not the invitee's address).
    received = data["invitations_received"]
    assert [(i["org_id"], i["email"], i["status"]) for i in received] == [
        (acme.org_id, EMAIL, "accepted")
    ]
    assert [(i["org_id"], i["email"]) for i in data["invitations_sent"]] == [(acme.org_id, None)]
    assert busy.friend_email not in resp.text

    # Audit events they acted in, with their own personal details.
    actions = [e["action"] for e in data["audit_events"]]
    for action in ("auth.signup", "invitation.accepted", "api_key.created", "user.updated"):
        assert action in actions, actions
    update = next(e for e in data["audit_events"] if e["action"] == "user.updated")
    assert update["personal"] == {
        "before": {"full_name": FULL_NAME},
        "after": {"full_name": NEW_FULL_NAME},
    }
    assert update["user_agent"] == "testclient"
    assert all(e["actor_id"] in (person.id, busy.key["id"]) for e in data["audit_events"]), (
        "an event someone else acted in"
    )
    assert [(t["email_normalized"], t["failures"]) for t in data["login_throttles"]] == [(EMAIL, 1)]

    # Nobody else's data, no other org's.
    for foreign in (other.org_id, other.owner_id, other.owner_email, acme.owner_email):
        assert foreign not in resp.text, foreign


def test_an_api_key_exports_only_its_orgs_part(client: TestClient, factory: Factory) -> None:
    busy = busy_person(client, factory)
    join(client, busy.other, busy.person)
    resp = client.get("/api/v1/users/me/export", headers=bearer(busy.key["secret"]))
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["scope"] == {"kind": "organization", "org_id": busy.acme.org_id, "team_id": None}
    assert [o["org_id"] for o in data["organizations"]] == [busy.acme.org_id]
    assert data["sessions"] == [] and data["login_throttles"] == []
    assert {e["chain_id"] for e in data["audit_events"]} == {busy.acme.org_id}
    assert busy.other.org_id not in resp.text
    assert data["user"]["last_login_at"] is None  # an account fact, not the org's


def test_an_admin_exports_what_their_org_holds_about_a_member(
    client: TestClient, factory: Factory
) -> None:
    busy = busy_person(client, factory)
    acme, other, person = busy.acme, busy.other, busy.person
    join(client, other, person)  # a second org, which Acme must not see
    url = f"/api/v1/orgs/{acme.org_id}/members/{person.id}/export"
    resp = client.get(url, headers=acme.headers)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["scope"] == {"kind": "organization", "org_id": acme.org_id, "team_id": None}
    assert data["user"]["email"] == EMAIL and data["user"]["status"] is None
    assert [o["org_id"] for o in data["organizations"]] == [acme.org_id]
    assert [k["id"] for k in data["api_keys"]] == [busy.key["id"]]
    assert data["sessions"] == [] and data["login_throttles"] == []
    assert data["audit_events"] and {e["chain_id"] for e in data["audit_events"]} == {acme.org_id}
    assert "user.updated" not in [e["action"] for e in data["audit_events"]]  # account-level
    assert other.org_id not in resp.text and NEW_FULL_NAME in resp.text
    # By email too; the same document.
    by_email = client.get(
        f"/api/v1/orgs/{acme.org_id}/members/{EMAIL}/export", headers=acme.headers
    )
    assert by_email.json()["user"]["id"] == person.id

    # Someone who is not a member answers like nobody: 404.
    for stranger in (other.owner_id, other.owner_email, "usr_nobody"):
        resp = client.get(
            f"/api/v1/orgs/{acme.org_id}/members/{stranger}/export", headers=acme.headers
        )
        assert_problem(resp, 404, "not_found")
    # Another org's admin asking about Acme answers 404 as well.
    resp = client.get(url, headers=other.headers)
    assert_problem(resp, 404, "not_found")


# ---- erasure ----


def verify_all(database: Database, settings: Settings, chain_ids: list[str]) -> None:
    notary = audit.Notary(settings.server_secret())
    with database.session(write=False) as session:
        for chain_id in chain_ids:
            verdict = audit.verify_chain(session, notary, chain_id=chain_id)
            assert verdict.ok, (chain_id, verdict)
            assert verdict.events_checked > 0, chain_id


def chains_touched_by(database: Database, user_id: str) -> list[str]:
    with database.session(write=False) as session:
        acted = select(AuditEvent.chain_id).where(AuditEvent.actor_id == user_id)
        subject = select(AuditEventPersonal.chain_id).where(
            AuditEventPersonal.subject_id == user_id
        )
        return sorted(set(session.scalars(acted)) | set(session.scalars(subject)))


def test_erasure_leaves_no_personal_data_and_every_chain_verifies(
    client: TestClient, factory: Factory, database: Database, settings: Settings
) -> None:
    busy = busy_person(client, factory)
    person, acme, other = busy.person, busy.acme, busy.other
    # Their own org, billed to their address, and a pending invitation from Other Corp.
    solo = client.post(
        "/api/v1/orgs",
        headers=person.headers,
        json={"name": "Solo Lab", "billing_email": EMAIL},
    )
    assert solo.status_code == 201, solo.text
    invite(client, other.org_id, other.headers, EMAIL)
    second = client.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert second.status_code == 200
    fail_login(client, EMAIL)  # after the sign-in, which clears the count
    touched = chains_touched_by(database, person.id)
    assert {acme.org_id, solo.json()["id"], person.id} <= set(touched)
    for needle in (EMAIL, USERNAME, FULL_NAME, NEW_FULL_NAME):
        assert database_contains(database, needle), f"{needle} should be stored before erasure"

    # The last owner of an org cannot leave it ownerless.
    url = f"/api/v1/users/{person.id}"
    resp = client.request("DELETE", url, headers=person.headers, json={"confirm": EMAIL})
    problem = assert_problem(resp, 409, "last_owner")
    assert problem["orgs"] == [{"id": solo.json()["id"], "slug": "solo-lab"}]
    assert "solo-lab" in problem["detail"]
    co_owner = factory.user()
    token = invite(client, solo.json()["id"], person.headers, co_owner[1], "owner")
    accepted = client.post(f"/api/v1/invitations/{token}/accept", headers=bearer(co_owner[2]))
    assert accepted.status_code == 200, accepted.text

    # Confirmation, identity and credential are checked before anything happens.
    resp = client.request("DELETE", url, headers=person.headers, json={"confirm": "nope@x.org"})
    assert_problem(resp, 422, "confirmation_mismatch")
    resp = client.request(
        "DELETE", f"/api/v1/users/{acme.owner_id}", headers=person.headers, json={"confirm": EMAIL}
    )
    assert_problem(resp, 404, "not_found")
    resp = client.request(
        "DELETE", url, headers=bearer(busy.key["secret"]), json={"confirm": EMAIL}
    )
    assert_problem(resp, 403, "users_only")

    resp = client.request("DELETE", url, headers=person.headers, json={"confirm": EMAIL.upper()})
    assert resp.status_code == 204, resp.text

    # Nothing left anywhere that names them.
    for needle in (EMAIL, USERNAME, FULL_NAME, NEW_FULL_NAME, "Quarrington"):
        assert database_contains(database, needle) == [], needle
    # The trail keeps a pseudonymous actor; its personal details and their key are gone.
    with database.session(write=False) as session:
        kept = list(session.scalars(select(AuditEvent).where(AuditEvent.actor_id == person.id)))
        assert {e.chain_id for e in kept} >= {acme.org_id, person.id}
        assert session.get(AuditSubjectKey, person.id) is None
        assert (
            session.scalars(
                select(AuditEventPersonal).where(AuditEventPersonal.subject_id == person.id)
            ).first()
            is None
        )
        erased = [e for e in kept if e.action == "user.erased"]
        assert len(erased) == 1 and erased[0].chain_id == person.id
        assert erased[0].summary == {"org_memberships": 2, "team_memberships": 1, "api_keys": 1}
        # Invitations they sent stay, as the org's, without a sender.
        sent = session.scalars(select(Invitation).where(Invitation.org_id == acme.org_id)).all()
        assert any(i.invited_by is None and i.email != EMAIL for i in sent)
        assert session.get(Organization, solo.json()["id"]).billing_email is None  # type: ignore[union-attr]
    verify_all(database, settings, [*touched, other.org_id])
    verdict = client.get(f"/api/v1/orgs/{acme.org_id}/audit-events/verify", headers=acme.headers)
    assert verdict.json()["ok"] is True, verdict.text

    # Every credential they had is dead.
    assert_problem(client.get("/api/v1/me", headers=person.headers), 401)
    assert_problem(client.get("/api/v1/me", headers=bearer(busy.key["secret"])), 401)
    resp = client.post("/api/v1/auth/refresh", json={"refresh_token": person.refresh_token})
    assert_problem(resp, 401)
    resp = client.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert_problem(resp, 401)
    # Everyone else carries on.
    members = client.get(f"/api/v1/orgs/{solo.json()['id']}/members", headers=bearer(co_owner[2]))
    assert [m["user_id"] for m in members.json()["items"]] == [co_owner[0]]
    assert client.get(f"/api/v1/orgs/{acme.org_id}", headers=acme.headers).status_code == 200


def test_erasure_of_a_member_keeps_the_events_others_read(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme AI")
    person = sign_up(client)
    join(client, acme, person)
    url = f"/api/v1/users/{person.id}"
    resp = client.request("DELETE", url, headers=person.headers, json={"confirm": EMAIL})
    assert resp.status_code == 204, resp.text
    events = client.get(f"/api/v1/orgs/{acme.org_id}/audit-events", headers=acme.headers).json()
    accepted = [e for e in events["items"] if e["action"] == "invitation.accepted"]
    assert [(e["actor_id"], e["ip"], e["user_agent"]) for e in accepted] == [
        (person.id, None, None)
    ]
    assert database_contains(database, EMAIL) == []


# ---- SDK and CLI ----


def test_sdk_exports_and_erases(app: FastAPI, client: TestClient, factory: Factory) -> None:
    acme = factory.tenant("Acme AI")
    owner = Client(BASE, acme.token, http=client)
    person = sign_up(client)
    join(client, acme, person)
    api = Client(BASE, person.token, http=client)
    mine = api.export_my_data()
    assert mine["user"]["email"] == EMAIL
    theirs = owner.export_member_data(acme.org_slug, EMAIL)
    assert theirs["scope"]["org_id"] == acme.org_id
    with pytest.raises(Conflict) as refused:
        owner.erase_account(acme.owner_id, confirm=acme.owner_email)
    assert refused.value.code == "last_owner"
    key = Client(BASE, factory.api_key(acme)["secret"], http=client)
    with pytest.raises(Forbidden):
        key.erase_account(acme.owner_id, confirm=acme.owner_email)

    async def erase() -> None:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http,
            AsyncClient(BASE, person.token, http=http) as async_api,
        ):
            assert (await async_api.export_my_data())["user"]["id"] == person.id
            await async_api.erase_account(person.id, confirm=EMAIL)
            assert async_api.token is None

    asyncio.run(erase())
    with pytest.raises(Unauthenticated):
        api.me()


def test_cli_exports_to_a_private_file_and_deletes_the_account(
    client: TestClient, factory: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "http_override", client)
    for name in ("TENANTRY_SERVER", "TENANTRY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    person = sign_up(client)
    runner = CliRunner()
    env = {"TENANTRY_CONFIG_DIR": str(tmp_path / "config")}

    def run(*args: str, input: str | None = None) -> Any:
        return runner.invoke(cli_app, list(args), input=input, env=env)

    login = run(
        "login", "--server", BASE, "--email", EMAIL, "--password-stdin", input=PASSWORD + "\n"
    )
    assert login.exit_code == 0, login.output
    target = tmp_path / "me.json"
    exported = run("account", "export", "-o", str(target))
    assert exported.exit_code == 0, exported.output
    assert json.loads(target.read_text())["user"]["id"] == person.id
    assert target.stat().st_mode & 0o777 == 0o600
    to_stdout = run("account", "export")
    assert json.loads(to_stdout.stdout)["user"]["email"] == EMAIL

    wrong = run("account", "delete", "--confirm", "someone@else.org")
    assert wrong.exit_code == 1
    assert "422 confirmation_mismatch" in wrong.stderr
    deleted = run("account", "delete", "--confirm", EMAIL, "--json")
    assert deleted.exit_code == 0, deleted.output
    assert json.loads(deleted.stdout) == {"erased": person.id}
    after = run("whoami")
    assert after.exit_code == 3  # not signed in any more
