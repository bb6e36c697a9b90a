"""A private team is seen (listed, resolved, named) only by its members and the organization's
admins and owners; to every other member it answers exactly as another tenant's team does."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from cli.test_cli import Cli, one_error_line, people  # noqa: F401 - `people` is a fixture
from conftest import Factory, Tenant, assert_problem, bearer


def _team(client: TestClient, tenant: Tenant, name: str, **extra: Any) -> dict[str, Any]:
    resp = client.post(
        f"/api/v1/orgs/{tenant.org_id}/teams",
        headers=tenant.headers,
        json={"name": name, **extra},
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def _join(client: TestClient, tenant: Tenant, team_id: str, user_id: str, role: str) -> None:
    resp = client.post(
        f"/api/v1/teams/{team_id}/members",
        headers=tenant.headers,
        json={"user": user_id, "role": role},
    )
    assert resp.status_code == 201, resp.text


def _listed(client: TestClient, tenant: Tenant, headers: dict[str, str]) -> set[str]:
    resp = client.get(f"/api/v1/orgs/{tenant.org_id}/teams", headers=headers)
    assert resp.status_code == 200, resp.text
    return {t["slug"] for t in resp.json()["items"]}


def test_only_members_and_org_admins_see_a_private_team(
    client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant("Acme AI")
    secret = _team(client, acme, "Skunkworks", private=True)
    assert secret["private"] is True
    member_id, member_token = factory.member(acme)
    outsider_id, outsider_token = factory.member(acme, team_role="admin")  # of the default team
    _, admin_token = factory.member(acme, org_role="admin")
    _join(client, acme, secret["id"], member_id, "viewer")
    member, outsider, admin = bearer(member_token), bearer(outsider_token), bearer(admin_token)
    other = factory.tenant("Someone Else")
    theirs = _team(client, other, "Theirs")

    assert _listed(client, acme, acme.headers) == {"default", "skunkworks"}
    assert _listed(client, acme, admin) == {"default", "skunkworks"}
    assert _listed(client, acme, member) == {"default", "skunkworks"}
    assert _listed(client, acme, outsider) == {"default"}

    for path in ("", "/members", "/audit-events"):
        hidden = client.get(f"/api/v1/teams/{secret['id']}{path}", headers=outsider)
        foreign = client.get(f"/api/v1/teams/{theirs['id']}{path}", headers=outsider)
        assert_problem(hidden, 404, "not_found")
        assert_problem(foreign, 404, "not_found")
        assert hidden.json()["detail"] == foreign.json()["detail"]
    assert client.get(f"/api/v1/teams/{secret['id']}", headers=member).status_code == 200
    assert client.get(f"/api/v1/teams/{secret['id']}", headers=admin).status_code == 200
    # Named in a body, as in a path: an invitation to it, an API key bound to it.
    invited = client.post(
        f"/api/v1/orgs/{acme.org_id}/invitations",
        headers=outsider,
        json={"email": "x@example.com", "role": "viewer", "team_id": secret["id"]},
    )
    assert_problem(invited, 404, "not_found")
    joined = client.post(
        f"/api/v1/teams/{secret['id']}/members",
        headers=outsider,
        json={"user": outsider_id, "role": "viewer"},
    )
    assert_problem(joined, 404, "not_found")


def test_roles_on_a_parent_team_stop_at_a_private_sub_team(
    client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant("Acme AI")
    sub = _team(client, acme, "Inner", parent_team_id=acme.team_id, private=True)
    parent_admin_id, token = factory.member(acme, team_role="admin")  # admin of the parent
    assert client.get(f"/api/v1/teams/{sub['id']}", headers=bearer(token)).status_code == 404
    _join(client, acme, sub["id"], parent_admin_id, "viewer")
    # A member now: it sees the team, with its own role there and nothing from the parent.
    assert client.get(f"/api/v1/teams/{sub['id']}", headers=bearer(token)).status_code == 200
    edit = client.patch(
        f"/api/v1/teams/{sub['id']}", headers=bearer(token), json={"description": "x"}
    )
    assert_problem(edit, 403, "permission_denied")


def test_making_a_team_private_or_public_takes_effect_at_once(
    client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant("Acme AI")
    team = _team(client, acme, "Research")
    _, token = factory.member(acme)
    reader = bearer(token)
    key = factory.api_key(acme)  # the owner's key: the owner sees every team
    path = f"/api/v1/teams/{team['id']}"
    assert client.get(path, headers=reader).status_code == 200  # decided, and cached

    hidden = client.patch(path, headers=acme.headers, json={"private": True})
    assert hidden.status_code == 200 and hidden.json()["private"] is True
    assert_problem(client.get(path, headers=reader), 404, "not_found")
    assert "research" not in _listed(client, acme, reader)
    assert client.get(path, headers=bearer(key["secret"])).status_code == 200
    event = client.get(
        f"/api/v1/orgs/{acme.org_id}/audit-events?action=team.updated", headers=acme.headers
    ).json()["items"][-1]
    assert event["summary"] == {"before": {"private": False}, "after": {"private": True}}

    shown = client.patch(path, headers=acme.headers, json={"private": False})
    assert shown.json()["private"] is False
    assert client.get(path, headers=reader).status_code == 200
    refused = client.patch(path, headers=acme.headers, json={"private": "yes please"})
    assert_problem(refused, 422, "validation_error")


def test_an_api_key_sees_what_its_creator_sees(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant("Acme AI")
    secret = _team(client, acme, "Skunkworks", private=True)
    user_id, token = factory.member(acme, org_role="admin")
    key = client.post(
        f"/api/v1/orgs/{acme.org_id}/api-keys",
        headers=bearer(token),
        json={"name": "admin key", "team_id": secret["id"]},
    )
    assert key.status_code == 201, key.text
    secret_key = bearer(key.json()["secret"])
    assert client.get(f"/api/v1/teams/{secret['id']}", headers=secret_key).status_code == 200
    # Demoted to a plain member outside the team: the key sees nothing of it any more.
    demoted = client.patch(
        f"/api/v1/orgs/{acme.org_id}/members/{user_id}",
        headers=acme.headers,
        json={"role": "member"},
    )
    assert demoted.status_code == 200, demoted.text
    assert_problem(client.get(f"/api/v1/teams/{secret['id']}", headers=secret_key), 404)


def test_a_private_team_named_as_a_subject_is_not_there_either(
    client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant("Acme AI")
    secret = _team(client, acme, "Skunkworks", private=True)
    _, token = factory.member(acme, team_role="admin")  # may grant on the default team
    admin_of_default = bearer(token)
    subject = {"type": "team", "id": secret["id"]}
    granted = client.post(
        f"/api/v1/teams/{acme.team_id}/grants",
        headers=admin_of_default,
        json={"subject": subject, "role": "viewer", "reason": "try"},
    )
    nowhere = client.post(
        f"/api/v1/teams/{acme.team_id}/grants",
        headers=admin_of_default,
        json={"subject": {"type": "team", "id": "team_nope"}, "role": "viewer", "reason": "try"},
    )
    assert_problem(granted, 404, "subject_not_found")
    assert granted.json()["detail"] == nowhere.json()["detail"]
    asked = client.post(
        f"/api/v1/orgs/{acme.org_id}/access/check",
        headers=admin_of_default,
        json={"permission": "team:read", "subject": subject, "resource": {"type": "org"}},
    )
    assert_problem(asked, 404, "subject_not_found")
    # The org's owner sees it, and may make it a subject.
    as_owner = client.post(
        f"/api/v1/teams/{acme.team_id}/grants",
        headers=acme.headers,
        json={"subject": subject, "role": "viewer", "reason": "sharing"},
    )
    assert as_owner.status_code == 201, as_owner.text


def test_the_cli_makes_teams_private_and_public(
    people: dict[str, Cli],
    factory: Factory,
) -> None:
    acme = factory.tenant("Acme AI")
    owner = people["owner"]
    assert owner.login(acme.owner_email).exit_code == 0
    created = owner.json("team", "create", "acme-ai", "Skunkworks", "--private")
    assert created["private"] is True
    assert "private" in owner.ok("team", "show", "acme-ai/skunkworks")
    shown = owner.json("team", "update", "acme-ai/skunkworks", "--public")
    assert shown["private"] is False
    hidden = owner.json("team", "update", "acme-ai/skunkworks", "--private", "--name", "Skunk")
    assert (hidden["private"], hidden["name"]) == (True, "Skunk")
    nothing = owner.run("team", "update", "acme-ai/skunkworks")
    assert one_error_line(nothing) == (
        "error: nothing to change: give --name, --description, --private or --public"
    )
