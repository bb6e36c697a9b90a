"""The access questions' query parameters are typed as the bodies they build: an empty or blank
id is a 422 naming the parameter. `who-can` with `team_id=` (or an empty `resource_id`) was a
500: the handler built its `ResourceIn` from the raw strings and pydantic refused them there."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from conftest import Factory, Tenant, assert_problem


@pytest.fixture
def acme(factory: Factory) -> Tenant:
    return factory.tenant("Acme")


def _who_can(client: TestClient, acme: Tenant, **params: str) -> dict[str, object]:
    resp = client.get(
        f"/api/v1/orgs/{acme.org_id}/access/who-can",
        headers=acme.headers,
        params={"permission": "team:read", **params},
    )
    return assert_problem(resp, 422, "validation_error")


def test_who_can_with_an_empty_team_id_is_422_not_500(client: TestClient, acme: Tenant) -> None:
    body = _who_can(client, acme, team_id="")
    assert body["errors"][0]["loc"] == ["query", "team_id"], body


def test_who_can_with_an_empty_resource_id_is_422_not_500(client: TestClient, acme: Tenant) -> None:
    body = _who_can(client, acme, resource_id="")
    assert body["errors"][0]["loc"] == ["query", "resource_id"], body


def test_who_can_for_a_team_with_an_empty_resource_id_is_422_not_500(
    client: TestClient, acme: Tenant
) -> None:
    body = _who_can(client, acme, resource_type="team", resource_id="")
    assert body["errors"][0]["loc"] == ["query", "resource_id"], body


def test_who_can_with_a_blank_resource_type_is_422_not_500(
    client: TestClient, acme: Tenant
) -> None:
    body = _who_can(client, acme, resource_type="  ")
    assert body["errors"][0]["loc"] == ["query", "resource_type"], body


def test_what_can_with_an_empty_subject_id_is_422_not_500(client: TestClient, acme: Tenant) -> None:
    resp = client.get(
        f"/api/v1/orgs/{acme.org_id}/access/what-can",
        headers=acme.headers,
        params={"permission": "team:read", "subject_type": "user", "subject_id": " "},
    )
    body = assert_problem(resp, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["query", "subject_id"], body


def test_who_can_with_real_ids_still_answers(client: TestClient, acme: Tenant) -> None:
    resp = client.get(
        f"/api/v1/orgs/{acme.org_id}/access/who-can",
        headers=acme.headers,
        params={"permission": "team:read", "resource_type": "team", "resource_id": acme.team_id},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["items"], resp.json()
