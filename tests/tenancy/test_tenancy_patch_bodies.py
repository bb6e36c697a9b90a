"""PATCH bodies of orgs and teams say exactly what is nullable: a field left out is unchanged,
`null` clears only where clearing means something (an org's billing email, a team's parent), and
`null` on any other field is a 422 naming it, written nowhere. These were a 500 (`TypeError` on
`{"slug": null}` and `{"settings": null}`) and a 409 `concurrent_conflict` "Retry." (a NOT NULL
violation on `{"name": null}` and `{"description": null}`), which looped clients."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import Factory, Tenant, assert_problem, count_rows
from tenantry.kit.db import Database


@pytest.fixture
def acme(factory: Factory) -> Tenant:
    return factory.tenant("Acme")


def _refused_naming(resp: Any, field: str) -> None:
    body = assert_problem(resp, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["body", field], body
    assert field in body["detail"], body


def _patch_team(client: TestClient, acme: Tenant, body: dict[str, Any]) -> Any:
    return client.patch(f"/api/v1/teams/{acme.team_id}", headers=acme.headers, json=body)


def _patch_org(client: TestClient, acme: Tenant, body: dict[str, Any]) -> Any:
    return client.patch(f"/api/v1/orgs/{acme.org_id}", headers=acme.headers, json=body)


def test_patch_team_with_a_null_slug_is_422_not_500(
    client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    _refused_naming(_patch_team(client, acme, {"slug": None}), "slug")
    assert count_rows(database) == before


def test_patch_team_with_null_settings_is_422_not_500(
    client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    _refused_naming(_patch_team(client, acme, {"settings": None}), "settings")
    assert count_rows(database) == before


def test_patch_org_with_a_null_slug_is_422_not_500(
    client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    _refused_naming(_patch_org(client, acme, {"slug": None}), "slug")
    assert count_rows(database) == before


def test_patch_org_with_null_settings_is_422_not_500(
    client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    _refused_naming(_patch_org(client, acme, {"settings": None}), "settings")
    assert count_rows(database) == before


def test_patch_team_with_a_null_name_is_422_not_a_retryable_conflict(
    client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    resp = _patch_team(client, acme, {"name": None})
    assert "Retry" not in resp.text
    _refused_naming(resp, "name")
    assert count_rows(database) == before


def test_patch_team_with_a_null_description_is_422_not_a_retryable_conflict(
    client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    resp = _patch_team(client, acme, {"description": None})
    assert "Retry" not in resp.text
    _refused_naming(resp, "description")
    assert count_rows(database) == before


def test_patch_org_with_a_null_name_is_422_not_a_retryable_conflict(
    client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    resp = _patch_org(client, acme, {"name": None})
    assert "Retry" not in resp.text
    _refused_naming(resp, "name")
    assert count_rows(database) == before


def test_null_clears_the_billing_email_and_a_teams_parent(client: TestClient, acme: Tenant) -> None:
    set_email = _patch_org(client, acme, {"billing_email": "billing@example.com"})
    assert set_email.json()["billing_email"] == "billing@example.com"
    cleared = _patch_org(client, acme, {"billing_email": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["billing_email"] is None

    child = client.post(
        f"/api/v1/orgs/{acme.org_id}/teams",
        headers=acme.headers,
        json={"name": "Child", "parent_team_id": acme.team_id},
    ).json()
    assert child["parent_team_id"] == acme.team_id
    top = client.patch(
        f"/api/v1/teams/{child['id']}", headers=acme.headers, json={"parent_team_id": None}
    )
    assert top.status_code == 200, top.text
    assert top.json()["parent_team_id"] is None


def test_a_field_left_out_of_a_patch_is_unchanged(client: TestClient, acme: Tenant) -> None:
    before = client.get(f"/api/v1/teams/{acme.team_id}", headers=acme.headers).json()
    after = _patch_team(client, acme, {"description": "Only this"}).json()
    assert after["description"] == "Only this"
    for field in ("name", "slug", "settings", "parent_team_id"):
        assert after[field] == before[field], field


def test_the_schemas_say_what_is_nullable(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]

    def nullable(model: str, field: str) -> bool:
        spec = schemas[model]["properties"][field]
        return any(option.get("type") == "null" for option in spec.get("anyOf", []))

    assert nullable("OrgUpdateIn", "billing_email")
    assert nullable("TeamUpdateIn", "parent_team_id")
    for model, field in [("OrgUpdateIn", "name"), ("OrgUpdateIn", "slug"),
                         ("OrgUpdateIn", "settings"), ("TeamUpdateIn", "name"),
                         ("TeamUpdateIn", "slug"), ("TeamUpdateIn", "description"),
                         ("TeamUpdateIn", "settings")]:  # fmt: skip
        assert not nullable(model, field), (model, field)
        # and no `null` default that would say otherwise
        assert "default" not in schemas[model]["properties"][field], (model, field)
