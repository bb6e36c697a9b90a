"""API keys: shown once, stored hashed, bound to an org (and optionally a team and permissions),
expiring, touched on use, revocable with effect on the very next request."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from conftest import Factory, Tenant, assert_problem, bearer, count_rows, database_contains
from tenantry.identity.models import ApiKey
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database


def keys_of(client: TestClient, tenant: Tenant) -> Any:
    resp = client.get(f"/api/v1/orgs/{tenant.org_id}/api-keys", headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    return resp


def create_key(client: TestClient, tenant: Tenant, headers: dict[str, str], **body: Any) -> Any:
    return client.post(
        f"/api/v1/orgs/{tenant.org_id}/api-keys", headers=headers, json={"name": "k", **body}
    )


def test_secret_is_shown_once_and_never_listed(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    key = factory.api_key(acme, name="ci")
    secret = key["secret"]
    assert secret.startswith("tnt_")
    assert len(secret) >= 40
    assert key["display_prefix"] == secret[:12]
    assert key["org_id"] == acme.org_id
    listed = keys_of(client, acme)
    items = listed.json()["items"]
    assert [k["id"] for k in items] == [key["id"]]
    assert "secret" not in items[0]
    assert secret not in listed.text
    assert secret[12:] not in listed.text


def test_secret_is_stored_only_as_a_hash(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant()
    key = factory.api_key(acme)
    secret = key["secret"]
    with database.session(write=False) as session:
        row = session.get(ApiKey, key["id"])
        assert row is not None
        values = [str(getattr(row, c.key)) for c in ApiKey.__table__.columns]
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert not any(secret in v or secret[12:] in v for v in values)


def test_secret_is_nowhere_in_the_database_even_when_sent_idempotently(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant()
    headers = {**acme.headers, "Idempotency-Key": "make-key"}
    url = f"/api/v1/orgs/{acme.org_id}/api-keys"
    first = client.post(url, headers=headers, json={"name": "deploy"})
    assert first.status_code == 201, first.text
    secret = first.json()["secret"]
    assert database_contains(database, secret[4:]) == []
    # The replay still hands the caller the secret it missed.
    again = client.post(url, headers=headers, json={"name": "deploy"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["secret"] == secret


def test_a_key_acts_for_its_creator_in_its_org(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    key = factory.api_key(acme)
    resp = client.get("/api/v1/me", headers=bearer(key["secret"]))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["principal_type"] == "api_key"
    assert body["api_key_id"] == key["id"]
    assert body["user"]["id"] == acme.owner_id
    teams = client.get(f"/api/v1/orgs/{acme.org_id}/teams", headers=bearer(key["secret"]))
    assert teams.status_code == 200, teams.text
    assert [t["id"] for t in teams.json()["items"]] == [acme.team_id]


def test_key_is_scoped_to_its_org(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    # The same owner also owns a second org; the key of the first still cannot see it.
    second = client.post("/api/v1/orgs", headers=acme.headers, json={"name": "Second Org"})
    assert second.status_code == 201, second.text
    other_id, other_slug = second.json()["id"], second.json()["slug"]
    key = bearer(factory.api_key(acme)["secret"])
    for ref in (other_id, other_slug):
        assert_problem(client.get(f"/api/v1/orgs/{ref}", headers=key), 404)
        assert_problem(client.get(f"/api/v1/orgs/{ref}/teams", headers=key), 404)
        resp = client.post(f"/api/v1/orgs/{ref}/teams", headers=key, json={"name": "Nope"})
        assert_problem(resp, 404)
    orgs = client.get("/api/v1/orgs", headers=key)
    assert [o["id"] for o in orgs.json()["items"]] == [acme.org_id]
    me = client.get("/api/v1/me", headers=key).json()
    assert [o["org_id"] for o in me["organizations"]] == [acme.org_id]
    # And a key of another tenant sees nothing of this one.
    beta = factory.tenant()
    beta_key = bearer(factory.api_key(beta)["secret"])
    assert_problem(client.get(f"/api/v1/orgs/{acme.org_id}", headers=beta_key), 404)
    assert_problem(client.get(f"/api/v1/teams/{acme.team_id}", headers=beta_key), 404)


def test_team_scoped_key_acts_only_inside_its_team(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    other = client.post(
        f"/api/v1/orgs/{acme.org_id}/teams", headers=acme.headers, json={"name": "Other"}
    )
    assert other.status_code == 201, other.text
    key = factory.api_key(acme, team_id=acme.team_id)
    assert key["team_id"] == acme.team_id
    auth = bearer(key["secret"])
    assert client.get(f"/api/v1/teams/{acme.team_id}", headers=auth).status_code == 200
    assert_problem(client.get(f"/api/v1/teams/{other.json()['id']}", headers=auth), 404)
    listed = client.get(f"/api/v1/orgs/{acme.org_id}/teams", headers=auth)
    assert [t["id"] for t in listed.json()["items"]] == [acme.team_id]
    # Org-level actions are beyond a team-bound key.
    resp = client.post(f"/api/v1/orgs/{acme.org_id}/teams", headers=auth, json={"name": "New"})
    assert_problem(resp, 403)


def test_key_for_a_team_of_another_org_is_refused(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme, beta = factory.tenant(), factory.tenant()
    before = count_rows(database)
    resp = create_key(client, acme, acme.headers, team_id=beta.team_id)
    assert_problem(resp, 404)
    assert count_rows(database) == before


def test_permission_subset_limits_what_a_key_can_do(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    key = factory.api_key(acme, permissions=["team:read", "org:read"])
    assert key["permissions"] == ["org:read", "team:read"]
    auth = bearer(key["secret"])
    assert client.get(f"/api/v1/orgs/{acme.org_id}/teams", headers=auth).status_code == 200
    resp = client.post(f"/api/v1/orgs/{acme.org_id}/teams", headers=auth, json={"name": "X"})
    body = assert_problem(resp, 403, "permission_denied")
    assert "team:create" in body["detail"]
    assert body["missing_permission"] == "team:create"
    # The owner's own credential could have done it: the limit is the key's.
    ok = client.post(f"/api/v1/orgs/{acme.org_id}/teams", headers=acme.headers, json={"name": "X"})
    assert ok.status_code == 201, ok.text


def test_cannot_give_a_key_permissions_one_lacks(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant()
    _, admin_token = factory.member(acme, org_role="admin")
    admin = bearer(admin_token)
    allowed = create_key(client, acme, admin, permissions=["team:read", "apikey:read"])
    assert allowed.status_code == 201, allowed.text
    before = count_rows(database)
    for wanted in (["org:delete"], ["team:read", "billing:manage"], ["org:transfer"]):
        resp = create_key(client, acme, admin, permissions=wanted)
        body = assert_problem(resp, 403, "permission_escalation")
        assert body["missing_permission"] in wanted
    before.pop("audit_events")
    after = count_rows(database)
    after.pop("audit_events")  # refusals are audited as `denied`
    assert after == before


def test_member_without_apikey_create_cannot_create_keys(
    client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant()
    _, token = factory.member(acme, org_role="member", team_role="viewer")
    assert_problem(create_key(client, acme, bearer(token)), 403)
    assert_problem(create_key(client, acme, bearer(token), team_id=acme.team_id), 403)


def test_unknown_permission_is_422(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant()
    before = count_rows(database)
    resp = create_key(client, acme, acme.headers, permissions=["team:read", "team:fly"])
    body = assert_problem(resp, 422, "unknown_permission")
    assert "team:fly" in body["detail"]
    assert count_rows(database) == before


def test_key_expires_when_the_clock_passes_expires_at(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant()
    expires = clock.now() + timedelta(hours=1)
    key = factory.api_key(acme, expires_at=expires.isoformat())
    auth = bearer(key["secret"])
    clock.advance(seconds=3599)
    assert client.get("/api/v1/me", headers=auth).status_code == 200
    clock.advance(seconds=1)
    assert_problem(client.get("/api/v1/me", headers=auth), 401, "api_key_expired")
    resp = client.post(f"/api/v1/orgs/{acme.org_id}/teams", headers=auth, json={"name": "Late"})
    assert_problem(resp, 401)


def test_expiry_in_the_past_is_refused(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    resp = create_key(client, acme, acme.headers, expires_at="2000-01-01T00:00:00Z")
    assert_problem(resp, 422)


def test_expiry_without_a_timezone_is_refused_cleanly(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    resp = create_key(client, acme, acme.headers, expires_at="2099-01-01T00:00:00")
    assert_problem(resp, 422)


def test_last_used_at_is_recorded(client: TestClient, factory: Factory, clock: FrozenClock) -> None:
    acme = factory.tenant()
    key = factory.api_key(acme)
    assert key["last_used_at"] is None
    clock.advance(seconds=30)
    used_at = clock.now()
    assert client.get("/api/v1/me", headers=bearer(key["secret"])).status_code == 200
    listed = keys_of(client, acme).json()["items"][0]
    assert listed["last_used_at"] is not None
    assert listed["last_used_at"].replace("Z", "+00:00").startswith(used_at.isoformat()[:19])
    # A write request touches it too (inside its own transaction).
    clock.advance(seconds=120)
    resp = client.post(
        f"/api/v1/orgs/{acme.org_id}/teams", headers=bearer(key["secret"]), json={"name": "W"}
    )
    assert resp.status_code == 201, resp.text
    later = keys_of(client, acme).json()["items"][0]["last_used_at"]
    assert later.replace("Z", "+00:00").startswith(clock.now().isoformat()[:19])


def test_revocation_takes_effect_on_the_next_request(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    key = factory.api_key(acme)
    auth = bearer(key["secret"])
    assert client.get("/api/v1/me", headers=auth).status_code == 200
    revoked = client.delete(f"/api/v1/api-keys/{key['id']}", headers=acme.headers)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert_problem(client.get("/api/v1/me", headers=auth), 401, "invalid_api_key")
    resp = client.post(f"/api/v1/orgs/{acme.org_id}/teams", headers=auth, json={"name": "After"})
    assert_problem(resp, 401)
    assert keys_of(client, acme).json()["items"][0]["revoked_at"] is not None


def test_another_tenant_cannot_revoke_a_key(client: TestClient, factory: Factory) -> None:
    acme, beta = factory.tenant(), factory.tenant()
    key = factory.api_key(acme)
    assert_problem(client.delete(f"/api/v1/api-keys/{key['id']}", headers=beta.headers), 404)
    assert client.get("/api/v1/me", headers=bearer(key["secret"])).status_code == 200


def test_keys_cannot_mint_keys(client: TestClient, factory: Factory, database: Database) -> None:
    acme = factory.tenant()
    key = factory.api_key(acme)
    keys_before = count_rows(database)["api_keys"]
    resp = create_key(client, acme, bearer(key["secret"]))
    assert_problem(resp, 403, "api_key_cannot_mint")
    assert count_rows(database)["api_keys"] == keys_before


def test_key_of_a_user_removed_from_the_org_stops_working(
    client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant()
    admin_id, admin_token = factory.member(acme, org_role="admin")
    key = create_key(client, acme, bearer(admin_token))
    assert key.status_code == 201, key.text
    auth = bearer(key.json()["secret"])
    assert client.get(f"/api/v1/orgs/{acme.org_id}", headers=auth).status_code == 200
    removed = client.delete(f"/api/v1/orgs/{acme.org_id}/members/{admin_id}", headers=acme.headers)
    assert removed.status_code == 204, removed.text
    assert_problem(client.get(f"/api/v1/orgs/{acme.org_id}", headers=auth), 404)
