"""One rule for every body, the hot lanes included (http/body.py): JSON only with a JSON content
type (415 otherwise, saying what to send), no byte order mark, UTF-8 only (400 `malformed_json`,
a code the error table lists as 400). Each refusal is problem+json and writes nothing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from conftest import PASSWORD, Factory, Tenant, assert_problem, count_rows
from tenantry.http.body import BODY_PROBLEMS, JsonBodyRoute, body_problems, media_types_taken
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


@pytest.fixture
def acme(factory: Factory) -> Tenant:
    return factory.tenant("Acme")


def _bodies(acme: Tenant, clock: FrozenClock) -> list[tuple[str, str, bytes, bool]]:
    """(method, path, a valid JSON body, authenticated) of a route of each kind: FastAPI's own
    body parameter, and the hot lanes that parse their bodies themselves."""
    now = clock.now().isoformat()
    event = f'{{"id": "e1", "meter": "llm_input_tokens", "quantity": "1", "timestamp": "{now}", '
    event += f'"team": "{acme.team_id}"}}'
    return [
        ("POST", f"/api/v1/orgs/{acme.org_id}/teams", b'{"name": "Research"}', True),
        ("PATCH", f"/api/v1/teams/{acme.team_id}", b'{"name": "Renamed"}', True),
        ("POST", "/api/v1/auth/signup", b'{"email": "n@example.com", "password": "pw"}', False),
        ("POST", "/api/v1/usage/events", event.encode(), True),
        (
            "POST",
            "/api/v1/admission",
            f'{{"team": "{acme.team_id}", "action": "x"}}'.encode(),
            True,
        ),
    ]


def _send(client: TestClient, acme: Tenant, method: str, path: str, raw: bytes, auth: bool,
          content_type: str | None) -> Any:  # fmt: skip
    headers = dict(acme.headers) if auth else {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.request(method, path, content=raw, headers=headers)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/xml", "application/json-seq", None],
    ids=["text", "form", "multipart", "xml", "json-seq", "none"],
)  # fmt: skip
def test_a_json_body_without_a_json_content_type_is_415_and_writes_nothing(
    client: TestClient,
    acme: Tenant,
    clock: FrozenClock,
    database: Database,
    content_type: str | None,
) -> None:
    before = count_rows(database)
    for method, path, raw, auth in _bodies(acme, clock):
        resp = _send(client, acme, method, path, raw, auth, content_type)
        body = assert_problem(resp, 415, "unsupported_media_type")
        assert "application/json" in body["detail"], body  # says what to send
    assert count_rows(database) == before


def test_json_and_json_subtypes_are_read(
    client: TestClient, acme: Tenant, clock: FrozenClock
) -> None:
    kinds = [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
        'application/vnd.tenantry+json; charset="UTF-8"',
    ]
    for n, content_type in enumerate(kinds):
        team = f'{{"name": "Team {n}"}}'.encode()
        path = f"/api/v1/orgs/{acme.org_id}/teams"
        resp = _send(client, acme, "POST", path, team, True, content_type)
        assert resp.status_code == 201, (content_type, resp.text)
        now = clock.now().isoformat()
        event = f'{{"id": "e{n}", "meter": "llm_input_tokens", "quantity": "1", '
        event += f'"timestamp": "{now}", "team": "{acme.team_id}"}}'
        resp = _send(client, acme, "POST", "/api/v1/usage/events", event.encode(), True,
                     content_type)  # fmt: skip
        assert resp.status_code == 200 and resp.json()["accepted"] == 1, (content_type, resp.text)


def test_json_in_another_charset_is_415(
    client: TestClient, acme: Tenant, clock: FrozenClock, database: Database
) -> None:
    before = count_rows(database)
    for method, path, raw, auth in _bodies(acme, clock):
        resp = _send(client, acme, method, path, raw, auth, "application/json; charset=latin-1")
        body = assert_problem(resp, 415, "unsupported_media_type")
        assert "UTF-8" in body["detail"], body
    assert count_rows(database) == before


def test_a_utf8_byte_order_mark_is_refused_alike_on_every_route(
    client: TestClient, acme: Tenant, clock: FrozenClock, database: Database
) -> None:
    # One policy: refused everywhere (it was accepted by FastAPI's parser and refused by the hot
    # lanes'), as 400 malformed_json naming the mark.
    before = count_rows(database)
    for method, path, raw, auth in _bodies(acme, clock):
        resp = _send(client, acme, method, path, b"\xef\xbb\xbf" + raw, auth, "application/json")
        body = assert_problem(resp, 400, "malformed_json")
        assert "byte order mark" in body["detail"], body
    assert count_rows(database) == before


@pytest.mark.parametrize(
    "raw",
    [b'{"name": "caf\xe9"}', b'{"name": "\xff\xfe"}', b"\xff\xfe{\x00}\x00",
     b'{"name": "\xed\xa0\x80"}', b'{"name": "\xc0\xaf"}'],
    ids=["latin-1", "bad-bytes", "utf-16", "surrogate-bytes", "overlong"],
)  # fmt: skip
def test_invalid_utf8_is_400_malformed_json_on_every_route(
    client: TestClient, acme: Tenant, clock: FrozenClock, database: Database, raw: bytes
) -> None:
    before = count_rows(database)
    for method, path, _, auth in _bodies(acme, clock):
        resp = _send(client, acme, method, path, raw, auth, "application/json")
        body = assert_problem(resp, 400, "malformed_json")
        assert "UTF-8" in body["detail"], body
    assert count_rows(database) == before


def test_the_error_table_lists_the_body_layers_codes_with_their_status() -> None:
    # invalid UTF-8 used to answer `http_error`, a code the table listed as a 500.
    found = re.findall(r"^\| ([0-9, ]+) \| `([a-z_{}]+)` \|", API_DOC.read_text(), re.M)
    rows = {code: status for status, code in found}
    assert rows["malformed_json"] == "400"
    assert rows["unsupported_media_type"] == "415"
    assert rows["payload_too_large"] == "413"
    assert rows["validation_error"] == "422"
    assert "http_error" not in rows


def test_the_sign_in_also_takes_a_form_and_names_it_when_refusing(
    client: TestClient, factory: Factory, database: Database
) -> None:
    _, email, _ = factory.user()
    form = f"username={email}&password={PASSWORD.replace(' ', '+')}"
    resp = client.post(
        "/api/v1/auth/login",
        content=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200, resp.text
    before = count_rows(database)
    refused = client.post(
        "/api/v1/auth/login", content=form, headers={"Content-Type": "text/plain"}
    )
    body = assert_problem(refused, 415, "unsupported_media_type")
    assert "application/x-www-form-urlencoded" in body["detail"], body
    # A JSON body with no content type: the clear 415, not a 422 about the body's shape.
    bare = client.post(
        "/api/v1/auth/login",
        content=f'{{"email": "{email}", "password": "{PASSWORD}"}}',
        headers={"Content-Type": ""},
    )
    assert_problem(bare, 415, "unsupported_media_type")
    assert count_rows(database) == before


def test_an_empty_body_is_left_to_the_route(client: TestClient, acme: Tenant) -> None:
    resp = client.post(f"/api/v1/orgs/{acme.org_id}/teams", headers=acme.headers)
    body = assert_problem(resp, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["body"]


def test_every_api_route_checks_its_body_and_says_what_it_can_answer(app: FastAPI) -> None:
    found = [(str(c.path_format), c.original_route) for c in iter_route_contexts(app.routes)]
    api = [r for path, r in found if path.startswith("/api/") and isinstance(r, APIRoute)]
    assert len(api) > 100
    unchecked = [f"{sorted(r.methods)} {r.path}" for r in api if not isinstance(r, JsonBodyRoute)]
    assert unchecked == []
    with_bodies = [r for r in api if media_types_taken(r)]
    assert any(r.name == "usage.recorded" for r in with_bodies)  # a hot lane reads its own
    for route in with_bodies:
        assert set(body_problems(route)) == set(BODY_PROBLEMS) == {400, 413, 415, 422}
