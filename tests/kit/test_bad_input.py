"""Bad input gets a clear problem+json answer and writes nothing; every answer has a request id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import PASSWORD, Factory, Tenant, assert_problem, count_rows
from tenantry.kit.db import Database

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def acme(factory: Factory) -> Tenant:
    return factory.tenant("Acme")


def _send(
    client: TestClient,
    tenant: Tenant,
    method: str,
    path: str,
    *,
    body: Any = None,
    raw: bytes | None = None,
    auth: bool = True,
) -> Any:
    url = path.format(org=tenant.org_id, team=tenant.team_id)
    headers = dict(tenant.headers) if auth else {}
    if raw is not None:
        return client.request(method, url, headers={**headers, **JSON}, content=raw)
    return client.request(method, url, headers=headers, json=body)


# (method, path, needs auth) of every route that takes a JSON body.
BODY_ROUTES = [
    ("POST", "/api/v1/auth/signup", False),
    ("POST", "/api/v1/auth/login", False),
    ("POST", "/api/v1/auth/refresh", False),
    ("POST", "/api/v1/onboard", False),
    ("PATCH", "/api/v1/me", True),
    ("POST", "/api/v1/me/password", True),
    ("POST", "/api/v1/orgs", True),
    ("PATCH", "/api/v1/orgs/{org}", True),
    ("DELETE", "/api/v1/orgs/{org}", True),
    ("POST", "/api/v1/orgs/{org}/transfer-ownership", True),
    ("POST", "/api/v1/orgs/{org}/teams", True),
    ("PATCH", "/api/v1/teams/{team}", True),
    ("DELETE", "/api/v1/teams/{team}", True),
    ("POST", "/api/v1/teams/{team}/members", True),
    ("POST", "/api/v1/orgs/{org}/invitations", True),
    ("POST", "/api/v1/orgs/{org}/api-keys", True),
]
ROUTE_IDS = [f"{m} {p}" for m, p, _ in BODY_ROUTES]

MALFORMED = [
    b'{"name": ',
    b"{'name': 'single quotes'}",
    b'{"name": "x",}',
    b"not json at all",
    b'{"name": "x"} trailing',
]


@pytest.mark.parametrize(("method", "path", "auth"), BODY_ROUTES, ids=ROUTE_IDS)
def test_malformed_json_is_400_and_writes_nothing(
    client: TestClient,
    acme: Tenant,
    database: Database,
    method: str,
    path: str,
    auth: bool,
) -> None:
    before = count_rows(database)
    for raw in MALFORMED:
        resp = _send(client, acme, method, path, raw=raw, auth=auth)
        assert_problem(resp, 400, "malformed_json")
    assert count_rows(database) == before


@pytest.mark.parametrize(("method", "path", "auth"), BODY_ROUTES, ids=ROUTE_IDS)
def test_a_body_that_is_not_an_object_is_422(
    client: TestClient,
    acme: Tenant,
    database: Database,
    method: str,
    path: str,
    auth: bool,
) -> None:
    before = count_rows(database)
    for raw in (b"[]", b'"text"', b"42", b"null"):
        resp = _send(client, acme, method, path, raw=raw, auth=auth)
        assert_problem(resp, 422, "validation_error")
    assert count_rows(database) == before


# Bodies that are valid apart from one field the caller may not set.
VALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/auth/signup"): {"email": "new@example.com", "password": PASSWORD},
    ("POST", "/api/v1/auth/login"): {"email": "x@example.com", "password": PASSWORD},
    ("POST", "/api/v1/auth/refresh"): {"refresh_token": "tnr_x"},
    ("POST", "/api/v1/onboard"): {
        "company_name": "New Co",
        "admin_email": "new@example.com",
        "admin_password": PASSWORD,
    },
    ("PATCH", "/api/v1/me"): {"full_name": "New Name"},
    ("POST", "/api/v1/me/password"): {"current_password": PASSWORD, "new_password": PASSWORD + "!"},
    ("POST", "/api/v1/orgs"): {"name": "New Org"},
    ("PATCH", "/api/v1/orgs/{org}"): {"name": "Renamed"},
    ("DELETE", "/api/v1/orgs/{org}"): {"confirm": "acme"},
    ("POST", "/api/v1/orgs/{org}/transfer-ownership"): {"new_owner": "x@example.com"},
    ("POST", "/api/v1/orgs/{org}/teams"): {"name": "New Team"},
    ("PATCH", "/api/v1/teams/{team}"): {"name": "Renamed"},
    ("DELETE", "/api/v1/teams/{team}"): {"confirm": "default"},
    ("POST", "/api/v1/teams/{team}/members"): {"user": "x@example.com", "role": "viewer"},
    ("POST", "/api/v1/orgs/{org}/invitations"): {"email": "x@example.com", "role": "member"},
    ("POST", "/api/v1/orgs/{org}/api-keys"): {"name": "key"},
}
SNEAKY_FIELDS = {"id": "usr_mine", "org_id": "org_other", "role": "owner", "is_admin": True}


@pytest.mark.parametrize(("method", "path", "auth"), BODY_ROUTES, ids=ROUTE_IDS)
def test_unknown_fields_are_422_and_write_nothing(
    client: TestClient,
    acme: Tenant,
    database: Database,
    method: str,
    path: str,
    auth: bool,
) -> None:
    valid = VALID_BODIES[(method, path)]
    before = count_rows(database)
    for field, value in SNEAKY_FIELDS.items():
        if field in valid:
            continue
        resp = _send(client, acme, method, path, body={**valid, field: value}, auth=auth)
        body = assert_problem(resp, 422, "validation_error")
        assert field in body["detail"], body
        assert any(field in e["loc"] for e in body["errors"]), body
    assert count_rows(database) == before


LONG = "x" * 10_001

BAD_FIELDS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/api/v1/auth/signup", {"email": "a@example.com", "password": "p" * 257}),
    (
        "POST",
        "/api/v1/auth/signup",
        {"email": "a@example.com", "password": PASSWORD, "full_name": "f" * 201},
    ),
    (
        "POST",
        "/api/v1/auth/signup",
        {"email": "a@example.com", "password": PASSWORD, "username": "u" * 65},
    ),
    (
        "POST",
        "/api/v1/auth/signup",
        {"email": "a@example.com", "password": PASSWORD, "username": "no spaces"},
    ),
    ("POST", "/api/v1/auth/signup", {"email": "a" * 250 + "@example.com", "password": PASSWORD}),
    ("POST", "/api/v1/auth/refresh", {"refresh_token": "t" * 201}),
    (
        "POST",
        "/api/v1/onboard",
        {"company_name": "n" * 201, "admin_email": "a@example.com", "admin_password": PASSWORD},
    ),
    ("POST", "/api/v1/orgs", {"name": "n" * 201}),
    ("POST", "/api/v1/orgs", {"name": "   "}),
    ("POST", "/api/v1/orgs", {"name": "Org", "slug": "s" * 65}),
    ("POST", "/api/v1/orgs", {"name": "Org", "settings": {"blob": "b" * 17_000}}),
    ("POST", "/api/v1/orgs", {"name": "Org", "plan": "unlimited"}),
    ("PATCH", "/api/v1/orgs/{org}", {"name": LONG}),
    ("POST", "/api/v1/orgs/{org}/teams", {"name": "n" * 201}),
    ("POST", "/api/v1/orgs/{org}/teams", {"name": "Team", "description": "d" * 2001}),
    ("POST", "/api/v1/orgs/{org}/teams", {"name": "Team", "parent_team_id": "t" * 41}),
    ("PATCH", "/api/v1/teams/{team}", {"description": "d" * 2001}),
    ("POST", "/api/v1/teams/{team}/members", {"user": "u" * 255, "role": "viewer"}),
    ("POST", "/api/v1/teams/{team}/members", {"user": "x@example.com", "role": "r" * 17}),
    ("POST", "/api/v1/orgs/{org}/invitations", {"email": "x@example.com", "role": "r" * 17}),
    ("POST", "/api/v1/orgs/{org}/api-keys", {"name": "n" * 201}),
    ("POST", "/api/v1/orgs/{org}/api-keys", {"name": "k", "permissions": ["team:read"] * 101}),
    ("POST", "/api/v1/orgs/{org}/api-keys", {"name": "k", "team_id": "t" * 41}),
    ("POST", "/api/v1/orgs/{org}/api-keys", {"name": "k", "expires_at": "next tuesday"}),
    ("PATCH", "/api/v1/me", {"full_name": "f" * 201}),
]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    BAD_FIELDS,
    ids=[f"{m} {p} #{i}" for i, (m, p, _) in enumerate(BAD_FIELDS)],
)
def test_over_long_or_invalid_values_are_422_and_write_nothing(
    client: TestClient,
    acme: Tenant,
    database: Database,
    method: str,
    path: str,
    body: dict[str, Any],
) -> None:
    before = count_rows(database)
    auth = not path.startswith(("/api/v1/auth", "/api/v1/onboard"))
    assert_problem(_send(client, acme, method, path, body=body, auth=auth), 422)
    assert count_rows(database) == before


BAD_EMAILS = [
    "not-an-email",
    "@example.com",
    "a@",
    "a@@example.com",
    "a b@example.com",
    "a@exa mple.com",
    "",
    "a@example.com\nBcc: b@example.com",
]


@pytest.mark.parametrize("email", BAD_EMAILS)
def test_bad_emails_are_422_and_write_nothing(
    client: TestClient, acme: Tenant, database: Database, email: str
) -> None:
    before = count_rows(database)
    sends = [
        ("POST", "/api/v1/auth/signup", {"email": email, "password": PASSWORD}, False),
        ("POST", "/api/v1/auth/login", {"email": email, "password": PASSWORD}, False),
        (
            "POST",
            "/api/v1/onboard",
            {"company_name": "Co", "admin_email": email, "admin_password": PASSWORD},
            False,
        ),
        ("POST", "/api/v1/orgs/{org}/invitations", {"email": email, "role": "member"}, True),
        ("POST", "/api/v1/orgs", {"name": "Org", "billing_email": email}, True),
        ("PATCH", "/api/v1/orgs/{org}", {"billing_email": email}, True),
    ]
    for method, path, body, auth in sends:
        resp = _send(client, acme, method, path, body=body, auth=auth)
        assert_problem(resp, 422, "validation_error")
    assert count_rows(database) == before


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "Team", "settings": {"x": NaN}}',
        b'{"name": "Team", "settings": {"x": Infinity}}',
        b'{"name": "Team", "settings": {"x": 1e999}}',
        b'{"name": "nul\\u0000byte"}',
        b'{"name": "Team", "settings": {"nul\\u0000key": 1}}',
        b'{"name": "Team", "description": "lone \\ud800 surrogate"}',
        b'{"name": "Team", "settings": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"name": "Team", "settings": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
        b'{"name": "Team", "settings": {"a": ' + b"[" * 900 + b"NaN" + b"]" * 900 + b"}}",
    ],
    ids=[
        "nan",
        "infinity",
        "overflow",
        "nul-in-string",
        "nul-in-settings",
        "surrogate",
        "deep",
        "deep-in-settings",
        "nan-deep-in-settings",
    ],
)
def test_values_json_or_the_database_cannot_hold_are_refused(
    client: TestClient, acme: Tenant, database: Database, raw: bytes
) -> None:
    before = count_rows(database)
    resp = _send(client, acme, "POST", "/api/v1/orgs/{org}/teams", raw=raw)
    assert_problem(resp, resp.status_code)
    assert resp.status_code in (400, 422), resp.text
    assert count_rows(database) == before


def test_naive_timestamps_in_queries_are_taken_as_utc_or_refused(
    client: TestClient, acme: Tenant
) -> None:
    url = f"/api/v1/orgs/{acme.org_id}/audit-events"
    resp = client.get(url, headers=acme.headers, params={"since": "2020-01-01T00:00:00"})
    assert resp.status_code in (200, 422), resp.text
    bad = client.get(url, headers=acme.headers, params={"since": "yesterday"})
    assert_problem(bad, 422, "validation_error")


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "100000"}, {"limit": "ten"}, {"cursor": "c" * 201}],
    ids=["zero", "huge", "text", "long-cursor"],
)
def test_bad_paging_is_422(client: TestClient, acme: Tenant, params: dict[str, str]) -> None:
    resp = client.get(f"/api/v1/orgs/{acme.org_id}/teams", headers=acme.headers, params=params)
    assert_problem(resp, 422, "validation_error")


def test_garbage_cursor_is_a_problem_not_a_crash(client: TestClient, acme: Tenant) -> None:
    for cursor in ("!!!", "%%%", "\u00ff\u00fe", "a"):
        resp = client.get(
            f"/api/v1/orgs/{acme.org_id}/teams", headers=acme.headers, params={"cursor": cursor}
        )
        assert resp.status_code in (200, 400), resp.text
        if resp.status_code == 400:
            assert_problem(resp, 400, "invalid_cursor")


def test_a_bad_request_with_an_idempotency_key_leaves_the_key_unused(
    client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    headers = {**acme.headers, "Idempotency-Key": "k1"}
    url = f"/api/v1/orgs/{acme.org_id}/teams"
    assert_problem(client.post(url, headers=headers, json={"name": "n" * 201}), 422)
    assert count_rows(database) == before
    assert client.post(url, headers=headers, json={"name": "Fine"}).status_code == 201


# ---- the shape of every answer ----


def test_unknown_route_is_404_problem(client: TestClient) -> None:
    for path in ("/api/v1/nope", "/nope", "/api/v2/orgs"):
        resp = client.get(path)
        body = assert_problem(resp, 404, "not_found")
        assert body["instance"] == path
        assert resp.headers["X-Request-ID"]


def test_wrong_method_is_405_problem(client: TestClient) -> None:
    resp = client.put("/api/v1/orgs")
    assert_problem(resp, 405, "method_not_allowed")
    assert resp.headers["Allow"]


def test_unknown_ids_are_404_problems(client: TestClient, acme: Tenant) -> None:
    for path in (
        "/api/v1/orgs/org_doesnotexist",
        "/api/v1/orgs/no-such-slug/teams",
        "/api/v1/teams/team_doesnotexist",
        "/api/v1/teams/" + "t" * 5000,
    ):
        assert_problem(client.get(path, headers=acme.headers), 404)


def test_every_error_carries_problem_members_and_a_request_id(
    client: TestClient, acme: Tenant
) -> None:
    answers = [
        client.get("/api/v1/me"),  # 401
        client.post("/api/v1/auth/signup", content=b"{", headers=JSON),  # 400
        client.post("/api/v1/orgs", headers=acme.headers, json={"nme": "typo"}),  # 422
        client.get("/api/v1/orgs/org_unknown", headers=acme.headers),  # 404
        client.post("/api/v1/orgs", headers=acme.headers, json={"name": "A", "slug": "acme"}),
    ]
    for resp in answers:
        body = assert_problem(resp, resp.status_code)
        assert resp.status_code >= 400
        assert body["type"].startswith("https://")
        assert body["title"] and body["detail"]
        assert resp.headers["X-Request-ID"] == body["request_id"]


def test_every_response_has_a_request_id(client: TestClient, acme: Tenant) -> None:
    answers = [
        client.get("/healthz"),
        client.get("/readyz"),
        client.get("/metrics"),
        client.get("/openapi.json"),
        client.get("/api/v1/me", headers=acme.headers),
        client.post(f"/api/v1/orgs/{acme.org_id}/teams", headers=acme.headers, json={"name": "T"}),
        client.get("/api/v1/me"),
        client.get("/nowhere"),
    ]
    ids = [resp.headers.get("X-Request-ID") for resp in answers]
    assert all(ids), ids
    assert len(set(ids)) == len(ids)


def test_a_sane_incoming_request_id_is_kept_and_a_bad_one_replaced(client: TestClient) -> None:
    kept = client.get("/healthz", headers={"X-Request-ID": "trace-123.abc"})
    assert kept.headers["X-Request-ID"] == "trace-123.abc"
    for bad in ("has spaces", "x" * 65, "semi;colon"):
        replaced = client.get("/healthz", headers={"X-Request-ID": bad})
        assert replaced.headers["X-Request-ID"] not in (bad, "")


def test_an_unexpected_error_is_a_500_problem_with_a_request_id(
    app: FastAPI, client: TestClient
) -> None:
    def explode() -> None:
        raise RuntimeError("boom: secret internals")

    app.add_api_route("/test-only/explode", explode)
    resp = client.get("/test-only/explode")
    body = assert_problem(resp, 500, "internal_error")
    assert "secret internals" not in resp.text
    assert resp.headers.get("X-Request-ID"), resp.headers
    assert resp.headers["X-Request-ID"] == body["request_id"]


def test_problem_bodies_are_json_with_the_problem_media_type(client: TestClient) -> None:
    resp = client.get("/api/v1/me")
    assert resp.headers["content-type"] == "application/problem+json"
    assert json.loads(resp.content)["status"] == 401


def test_nul_characters_in_paths_and_queries_are_refused_cleanly(
    client: TestClient, acme: Tenant
) -> None:
    nul = "%00"
    answers = [
        client.get(f"/api/v1/orgs/acme{nul}x", headers=acme.headers),
        client.get(f"/api/v1/orgs/org_{nul}", headers=acme.headers),
        client.get(f"/api/v1/teams/team_{nul}", headers=acme.headers),
        client.get(f"/api/v1/orgs/{acme.org_id}/members/x{nul}", headers=acme.headers),
        client.delete(f"/api/v1/api-keys/key_{nul}", headers=acme.headers),
        client.delete(f"/api/v1/invitations/inv_{nul}", headers=acme.headers),
        client.delete(f"/api/v1/me/sessions/ses_{nul}", headers=acme.headers),
        client.post(f"/api/v1/invitations/tni_{nul}/accept", headers=acme.headers),
        client.get(
            f"/api/v1/orgs/{acme.org_id}/audit-events?action=a{nul}&actor=b{nul}",
            headers=acme.headers,
        ),
        client.get(f"/api/v1/orgs/{acme.org_id}/teams?cursor=AA", headers=acme.headers),
        client.delete(f"/api/v1/teams/{acme.team_id}/members/x{nul}", headers=acme.headers),
    ]
    for resp in answers:
        assert resp.status_code < 500, (resp.request.url, resp.text)
        if resp.status_code >= 400:
            assert_problem(resp, resp.status_code)


def test_request_body_over_the_limit_is_refused_with_413_and_writes_nothing(
    client: TestClient, database: Database
) -> None:
    before = count_rows(database)
    huge = {"company_name": "x" * (1024 * 1024 + 10)}
    resp = client.post("/api/v1/onboard", json=huge)
    assert resp.status_code == 413
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["code"] == "payload_too_large"
    assert count_rows(database) == before


def test_chunked_request_body_over_the_limit_is_refused(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 65536

    resp = client.post(
        "/api/v1/onboard", content=chunks(), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 413
    assert resp.json()["code"] == "payload_too_large"
