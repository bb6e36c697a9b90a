"""What a request leaves behind: its session is freed as the request ends (no reference cycle
keeps it for the garbage collector), and what it worked out lazily is still right."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from conftest import Factory
from tenantry.app import create_app
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database


def invitation_url(client: TestClient, factory: Factory, host: str | None = None) -> str:
    acme = factory.tenant()
    _, email, _ = factory.user()
    resp = client.post(
        f"/api/v1/orgs/{acme.org_id}/invitations",
        headers={**acme.headers, **({"Host": host} if host else {})},
        json={"email": email, "role": "member"},
    )
    assert resp.status_code == 201, resp.text
    token = resp.json()["token"]
    url = str(resp.json()["url"])
    assert url.endswith(f"/invitations/{token}")
    return url.removesuffix(f"/invitations/{token}")


def test_an_invitation_link_names_the_address_the_request_reached(
    client: TestClient, factory: Factory
) -> None:
    assert invitation_url(client, factory) == "http://testserver"
    assert invitation_url(client, factory, host="tenantry.example:8443").endswith(
        "://tenantry.example:8443"
    )


@pytest.fixture
def configured(settings: Settings, clock: FrozenClock, database: Database) -> Iterator[TestClient]:
    app = create_app(
        settings.model_copy(update={"base_url": "https://id.example.com/"}),
        clock=clock,
        database=database,
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_a_configured_base_url_wins(configured: TestClient) -> None:
    assert invitation_url(configured, Factory(configured)) == "https://id.example.com"


def test_a_requests_session_is_freed_when_the_request_ends(
    app: FastAPI, client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant()
    key = client.post(
        f"/api/v1/orgs/{acme.org_id}/api-keys", headers=acme.headers, json={"name": "k"}
    ).json()["secret"]
    sessions: list[weakref.ref[Session]] = []
    database: Database = app.state.db
    opened = database.session

    def remembered(*, write: bool) -> Session:
        session = opened(write=write)
        sessions.append(weakref.ref(session))
        return session

    body = {"team": acme.team_id, "action": "llm.generate", "estimate": {"compute_hours": "1"}}
    gc.collect()
    gc.disable()  # only reference counting frees anything now
    try:
        database.session = remembered  # type: ignore[method-assign]
        for path, kw in (
            ("/api/v1/admission", {"json": body}),
            (f"/api/v1/orgs/{acme.org_id}/invitations", {"json": {"email": "x@example.com"}}),
        ):
            resp = client.post(path, headers={"Authorization": f"Bearer {key}"}, **kw)
            assert resp.status_code in (200, 201), resp.text
        assert sessions, "no session was opened"
        assert [ref() for ref in sessions] == [None] * len(sessions)
    finally:
        database.session = opened  # type: ignore[method-assign]
        gc.enable()
