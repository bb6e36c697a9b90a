"""`Idempotency-Key`: replays, mismatches, concurrent duplicates, per-credential scope."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import PASSWORD, Factory, Tenant, assert_problem, bearer, count_rows
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.tenancy.models import Team


def create_team(
    client: TestClient, tenant: Tenant, key: str | None, body: dict[str, Any], **headers: str
) -> Any:
    sent = {**tenant.headers, **headers}
    if key is not None:
        sent["Idempotency-Key"] = key
    return client.post(f"/api/v1/orgs/{tenant.org_id}/teams", headers=sent, json=body)


def teams_in(database: Database, org_id: str) -> int:
    with database.session(write=False) as session:
        return int(session.scalar(select(func.count()).where(Team.org_id == org_id)) or 0)


def test_same_key_and_body_replays_the_stored_response(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant()
    first = create_team(client, acme, "key-1", {"name": "Research"})
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = create_team(client, acme, "key-1", {"name": "Research"})
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert teams_in(database, acme.org_id) == 2  # "default" and Research, once


def test_same_key_with_another_body_is_an_error(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant()
    assert create_team(client, acme, "key-1", {"name": "Research"}).status_code == 201
    before = count_rows(database)
    resp = create_team(client, acme, "key-1", {"name": "Different"})
    assert_problem(resp, 422, "idempotency_key_reused")
    assert count_rows(database) == before


def test_same_key_on_another_path_is_an_error(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    assert create_team(client, acme, "key-1", {"name": "Research"}).status_code == 201
    resp = client.post(
        "/api/v1/orgs",
        headers={**acme.headers, "Idempotency-Key": "key-1"},
        json={"name": "Research"},
    )
    assert_problem(resp, 422, "idempotency_key_reused")


def test_without_a_key_each_request_creates(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant()
    first = create_team(client, acme, None, {"name": "Research"})
    second = create_team(client, acme, None, {"name": "Research"})
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert teams_in(database, acme.org_id) == 3


def test_a_failed_request_does_not_use_up_its_key(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant()
    failed = create_team(client, acme, "key-1", {"name": "Research", "slug": "Not A Slug"})
    assert_problem(failed, 422, "invalid_slug")
    retried = create_team(client, acme, "key-1", {"name": "Research", "slug": "research"})
    assert retried.status_code == 201, retried.text
    assert "Idempotent-Replayed" not in retried.headers
    assert teams_in(database, acme.org_id) == 2


def test_a_refused_request_does_not_use_up_its_key(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant()
    assert create_team(client, acme, None, {"name": "Research"}).status_code == 201
    clash = create_team(client, acme, "key-1", {"name": "Other", "slug": "research"})
    assert_problem(clash, 409, "slug_taken")
    again = create_team(client, acme, "key-1", {"name": "Other", "slug": "research"})
    assert_problem(again, 409, "slug_taken")


def test_keys_are_scoped_per_credential(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant()
    _, admin_token = factory.member(acme, org_role="admin")
    owner = create_team(client, acme, "shared", {"name": "Alpha"})
    admin = create_team(
        client, acme, "shared", {"name": "Beta"}, Authorization=f"Bearer {admin_token}"
    )
    assert owner.status_code == admin.status_code == 201, admin.text
    assert "Idempotent-Replayed" not in admin.headers
    assert owner.json()["id"] != admin.json()["id"]
    # Even with the same body, another credential's request is its own.
    key = factory.api_key(acme)
    by_key = create_team(
        client, acme, "shared", {"name": "Alpha"}, Authorization=f"Bearer {key['secret']}"
    )
    assert by_key.status_code == 201, by_key.text
    assert "Idempotent-Replayed" not in by_key.headers
    assert by_key.json()["id"] != owner.json()["id"]
    assert teams_in(database, acme.org_id) == 4


def test_anonymous_requests_do_not_share_keys(client: TestClient) -> None:
    def signup(email: str) -> Any:
        return client.post(
            "/api/v1/auth/signup",
            headers={"Idempotency-Key": "signup-1"},
            json={"email": email, "password": PASSWORD},
        )

    first = signup("ann@example.com")
    assert first.status_code == 201, first.text
    replay = signup("ann@example.com")
    assert replay.status_code == 201, replay.text
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["user"]["id"] == first.json()["user"]["id"]
    # A stranger using the same key is neither refused nor handed Ann's tokens.
    other = signup("ben@example.com")
    assert other.status_code == 201, other.text
    assert "Idempotent-Replayed" not in other.headers
    assert other.json()["user"]["email"] == "ben@example.com"


def test_keys_expire_after_their_lifetime(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    acme = factory.tenant()
    key = factory.api_key(acme)  # an API key does not expire with the clock, unlike a session
    auth = {"Authorization": f"Bearer {key['secret']}"}
    first = create_team(client, acme, "key-1", {"name": "Research"}, **auth)
    assert first.status_code == 201, first.text
    clock.advance(hours=23)
    assert create_team(client, acme, "key-1", {"name": "Research"}, **auth).headers[
        "Idempotent-Replayed"
    ]
    clock.advance(hours=2)
    fresh = create_team(client, acme, "key-1", {"name": "Research"}, **auth)
    assert fresh.status_code == 201, fresh.text
    assert "Idempotent-Replayed" not in fresh.headers
    assert fresh.json()["id"] != first.json()["id"]
    assert teams_in(database, acme.org_id) == 3


def test_over_long_key_is_refused(client: TestClient, factory: Factory, database: Database) -> None:
    acme = factory.tenant()
    before = count_rows(database)
    resp = create_team(client, acme, "k" * 256, {"name": "Research"})
    assert_problem(resp, 422, "invalid_idempotency_key")
    assert count_rows(database) == before


async def _concurrently(app: FastAPI, n: int, url: str, **kw: Any) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as ac:
        return list(await asyncio.gather(*(ac.post(url, **kw) for _ in range(n))))


def test_twenty_concurrent_duplicates_create_one_team(
    app: FastAPI, factory: Factory, database: Database
) -> None:
    acme = factory.tenant()
    responses = asyncio.run(
        _concurrently(
            app,
            20,
            f"/api/v1/orgs/{acme.org_id}/teams",
            headers={**acme.headers, "Idempotency-Key": "burst"},
            json={"name": "Burst"},
        )
    )
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1
    assert teams_in(database, acme.org_id) == 2
    with database.session(write=False) as session:
        created = session.scalars(
            select(Team).where(Team.org_id == acme.org_id, Team.name == "Burst")
        ).all()
    assert len(created) == 1


def test_twenty_concurrent_duplicates_with_an_api_key_create_one_key(
    app: FastAPI, client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant()
    responses = asyncio.run(
        _concurrently(
            app,
            20,
            f"/api/v1/orgs/{acme.org_id}/api-keys",
            headers={**acme.headers, "Idempotency-Key": "one-key"},
            json={"name": "deploy"},
        )
    )
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    assert len({r.json()["secret"] for r in responses}) == 1
    assert count_rows(database)["api_keys"] == 1
    listed = client.get(f"/api/v1/orgs/{acme.org_id}/api-keys", headers=bearer(acme.token))
    assert len(listed.json()["items"]) == 1


def test_no_replay_for_a_revoked_key_or_an_ended_session(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant()
    key = factory.api_key(acme)
    by_key = {"Authorization": f"Bearer {key['secret']}"}
    assert create_team(client, acme, "k1", {"name": "By Key"}, **by_key).status_code == 201
    assert client.delete(f"/api/v1/api-keys/{key['id']}", headers=acme.headers).status_code == 200
    assert_problem(create_team(client, acme, "k1", {"name": "By Key"}, **by_key), 401)

    assert create_team(client, acme, "k2", {"name": "By Session"}).status_code == 201
    assert client.post("/api/v1/auth/logout", headers=acme.headers).status_code == 204
    assert_problem(create_team(client, acme, "k2", {"name": "By Session"}), 401)
    assert teams_in(database, acme.org_id) == 3


def test_replay_with_a_credential_on_a_route_that_does_not_authenticate(
    client: TestClient, acme_signup_headers: dict[str, str], database: Database
) -> None:
    # Sign-up ignores an Authorization header, but its key is still scoped by it.
    body = {"email": "quinn@example.com", "password": PASSWORD}
    first = client.post("/api/v1/auth/signup", headers=acme_signup_headers, json=body)
    assert first.status_code == 201, first.text
    before = count_rows(database)
    again = client.post("/api/v1/auth/signup", headers=acme_signup_headers, json=body)
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["user"]["id"] == first.json()["user"]["id"]
    assert count_rows(database) == before


@pytest.fixture
def acme_signup_headers(factory: Factory) -> dict[str, str]:
    return {**factory.tenant().headers, "Idempotency-Key": "signup"}
