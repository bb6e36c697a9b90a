"""`POST /api/v1/auth/login` also takes OAuth2's password grant as a form (RFC 6749 §4.3), as
`/docs`' Authorize sends it, and answers with OAuth2's token response fields beside ours."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import PASSWORD, assert_problem, bearer, count_rows
from tenantry.kit.db import Database

LOGIN = "/api/v1/auth/login"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def email(client: TestClient) -> str:
    address = "grant@example.com"
    resp = client.post("/api/v1/auth/signup", json={"email": address, "password": PASSWORD})
    assert resp.status_code == 201, resp.text
    return address


def form(client: TestClient, body: str | bytes) -> Any:
    return client.post(LOGIN, content=body, headers={"Content-Type": FORM})


def test_a_password_grant_signs_in_and_answers_as_oauth2_says(
    client: TestClient, email: str
) -> None:
    # What Swagger UI's Authorize sends for the password flow.
    resp = form(client, f"grant_type=password&username={email}&password={PASSWORD}&scope=")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["access_token"] and body["refresh_token"]
    assert body["user"]["email"] == email  # ours, beside OAuth2's
    assert resp.headers["cache-control"] == "no-store"
    me = client.get("/api/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.json()["user"]["email"] == email


def test_grant_type_client_fields_and_encoding_are_those_of_a_form(
    client: TestClient, email: str
) -> None:
    plus = "correct+horse+battery+staple"  # a form's spaces, as a browser encodes them
    without_grant_type = form(client, f"username={email.replace('@', '%40')}&password={plus}")
    assert without_grant_type.status_code == 200, without_grant_type.text
    with_client = form(
        client, f"grant_type=password&username={email}&password={plus}&client_id=docs"
    )
    assert with_client.status_code == 200, with_client.text
    charset = client.post(
        LOGIN,
        content=f"username={email}&password={plus}",
        headers={"Content-Type": f"{FORM}; charset=UTF-8"},
    )
    assert charset.status_code == 200, charset.text


def test_json_sign_in_is_unchanged_and_carries_the_same_fields(
    client: TestClient, email: str
) -> None:
    resp = client.post(LOGIN, json={"email": email, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "bearer" and resp.json()["access_token"]
    # A form's field names are not ours: JSON keeps `email`.
    refused = client.post(LOGIN, json={"username": email, "password": PASSWORD})
    assert_problem(refused, 422, "validation_error")


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [
        ("grant_type=client_credentials&username=grant@example.com&password=x", "grant_type",
         "literal_error"),
        ("grant_type=password&password=" + PASSWORD, "username", "missing"),
        ("grant_type=password&username=grant@example.com", "password", "missing"),
        ("username=not-an-email&password=" + PASSWORD, "username", "value_error"),
        ("username=grant@example.com&password=" + PASSWORD + "&role=admin", "role",
         "extra_forbidden"),
        ("username=grant@example.com&username=other@example.com&password=x", "username",
         "value_error"),
    ],
)  # fmt: skip
def test_a_bad_grant_is_refused_naming_the_field_and_writes_nothing(
    client: TestClient, email: str, database: Database, body: str, field: str, kind: str
) -> None:
    before = count_rows(database)
    problem = assert_problem(form(client, body), 422, "validation_error")
    assert problem["errors"][0]["loc"] == ["body", field]
    assert problem["errors"][0]["type"] == kind
    assert field in problem["detail"]
    assert count_rows(database) == before


def test_a_form_that_is_not_one_is_refused(client: TestClient, email: str) -> None:
    too_many = "&".join(f"f{i}=x" for i in range(40))
    assert_problem(form(client, too_many), 422, "validation_error")
    not_utf8 = form(client, b"username=grant@example.com&password=\xff\xfe")
    assert_problem(not_utf8, 422, "validation_error")


def test_a_wrong_password_is_refused_with_oauth2s_error_too(client: TestClient, email: str) -> None:
    resp = form(client, f"grant_type=password&username={email}&password=wrong-password-123")
    problem = assert_problem(resp, 401, "invalid_credentials")
    assert problem["error"] == "invalid_grant"
    # A JSON sign-in's refusal is as before: no OAuth2 member.
    as_json = client.post(LOGIN, json={"email": email, "password": "wrong-password-123"})
    assert "error" not in assert_problem(as_json, 401, "invalid_credentials")


def test_the_openapi_document_offers_both_bodies(app: FastAPI) -> None:
    operation = app.openapi()["paths"][LOGIN]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {"application/json", FORM}
    grant = content[FORM]["schema"]
    assert grant["required"] == ["username", "password"]
    assert grant["properties"]["grant_type"]["enum"] == ["password"]
    assert set(content["application/json"]["schema"]["required"]) == {"email", "password"}
