"""A team's admins read, export and follow their own team's audit events (`/teams/{team}/
audit-events…`), filtered to the team, without any right on the organization's whole trail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from cli.test_cli import Cli, one_error_line, people  # noqa: F401 - `people` is a fixture
from conftest import Factory, Tenant, assert_problem, bearer
from support.audit_support import lines_of, outcome
from tenantry.audit import offline


def _team(client: TestClient, tenant: Tenant, name: str) -> str:
    resp = client.post(
        f"/api/v1/orgs/{tenant.org_id}/teams", headers=tenant.headers, json={"name": name}
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _join(client: TestClient, tenant: Tenant, team_id: str, user_id: str, role: str) -> None:
    resp = client.post(
        f"/api/v1/teams/{team_id}/members",
        headers=tenant.headers,
        json={"user": user_id, "role": role},
    )
    assert resp.status_code == 201, resp.text


def _setting(client: TestClient, headers: dict[str, str], team_id: str, value: str) -> None:
    resp = client.patch(f"/api/v1/teams/{team_id}", headers=headers, json={"description": value})
    assert resp.status_code == 200, resp.text


def world(client: TestClient, factory: Factory) -> dict[str, Any]:
    """An org with two teams: research, whose admin and editor are plain org members, and
    vision; events in both and at org level."""
    acme = factory.tenant("Acme AI")
    research, vision = _team(client, acme, "Research"), _team(client, acme, "Vision")
    admin_id, admin_token = factory.member(acme)
    editor_id, editor_token = factory.member(acme)
    _join(client, acme, research, admin_id, "admin")
    _join(client, acme, research, editor_id, "editor")
    _setting(client, bearer(admin_token), research, "by its admin")
    _setting(client, acme.headers, vision, "elsewhere")
    return {
        "acme": acme,
        "research": research,
        "vision": vision,
        "admin": bearer(admin_token),
        "admin_id": admin_id,
        "editor": bearer(editor_token),
    }


def test_a_team_admin_reads_the_teams_events_and_only_those(
    client: TestClient, factory: Factory
) -> None:
    w = world(client, factory)
    acme: Tenant = w["acme"]
    resp = client.get(f"/api/v1/teams/{w['research']}/audit-events", headers=w["admin"])
    assert resp.status_code == 200, resp.text
    events = resp.json()["items"]
    assert events and {e["team_id"] for e in events} == {w["research"]}
    actions = [e["action"] for e in events]
    assert "team.created" in actions and "team.updated" in actions
    assert any(e["actor_id"] == w["admin_id"] for e in events)
    # The same events the org's admins see with the team filter.
    as_owner = client.get(
        f"/api/v1/orgs/{acme.org_id}/audit-events?team={w['research']}&limit=200",
        headers=acme.headers,
    ).json()["items"]
    assert [e["id"] for e in events] == [e["id"] for e in as_owner]
    # Filters work as on the org's list.
    only = client.get(
        f"/api/v1/teams/{w['research']}/audit-events?action=team.updated", headers=w["admin"]
    ).json()["items"]
    assert [e["action"] for e in only] == ["team.updated"]


def test_the_team_scope_opens_nothing_else(client: TestClient, factory: Factory) -> None:
    w = world(client, factory)
    acme: Tenant = w["acme"]
    other = factory.tenant("Someone Else")
    # Not the org's trail, not another team's, not as an editor.
    org_wide = client.get(f"/api/v1/orgs/{acme.org_id}/audit-events", headers=w["admin"])
    assert_problem(org_wide, 403, "permission_denied")
    for path in ("", "/export", "/stream?follow=false"):
        base = f"/api/v1/teams/{{}}/audit-events{path}"
        vision = client.get(base.format(w["vision"]), headers=w["admin"])
        assert_problem(vision, 403, "permission_denied")
        editor = client.get(base.format(w["research"]), headers=w["editor"])
        assert_problem(editor, 403, "permission_denied")
        stranger = client.get(base.format(w["research"]), headers=other.headers)
        assert_problem(stranger, 404, "not_found")
    # The team filter of the org's routes is not a way round: it needs audit:read on the org.
    filtered = client.get(
        f"/api/v1/orgs/{acme.org_id}/audit-events?team={w['research']}", headers=w["admin"]
    )
    assert_problem(filtered, 403, "permission_denied")


def test_a_team_export_is_filtered_and_verifies_offline(
    client: TestClient, factory: Factory, tmp_path: Path
) -> None:
    w = world(client, factory)
    resp = client.get(f"/api/v1/teams/{w['research']}/audit-events/export", headers=w["admin"])
    assert resp.status_code == 200, resp.text
    assert 'filename="audit-team-research-' in resp.headers["content-disposition"]
    records = lines_of(resp.content)
    header = records[0]
    assert header["filtered"] is True and header["filters"]["team_id"] == w["research"]
    assert header["chain_id"] == w["acme"].org_id
    events = [r for r in records if r["type"] == "event"]
    assert events and {e["team_id"] for e in events} == {w["research"]}
    path = tmp_path / "team.ndjson"
    path.write_bytes(resp.content)
    assert outcome(offline.verify_file(path)) == (True, None, None)
    as_csv = client.get(
        f"/api/v1/teams/{w['research']}/audit-events/export?format=csv", headers=w["admin"]
    )
    assert as_csv.status_code == 200 and w["vision"] not in as_csv.text


def test_a_team_stream_shows_the_teams_events_and_resumes_by_seq(
    client: TestClient, factory: Factory
) -> None:
    w = world(client, factory)
    path = f"/api/v1/teams/{w['research']}/audit-events/stream"
    resp = client.get(f"{path}?follow=false", headers=w["admin"])
    assert resp.status_code == 200, resp.text
    frames = [
        json.loads(line.removeprefix("data: "))
        for line in resp.text.splitlines()
        if line.startswith("data: ")
    ]
    assert frames and {f["team_id"] for f in frames} == {w["research"]}
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(seqs)
    resumed = client.get(
        f"{path}?follow=false", headers={**w["admin"], "Last-Event-ID": str(seqs[0])}
    )
    later = [
        json.loads(line.removeprefix("data: "))["seq"]
        for line in resumed.text.splitlines()
        if line.startswith("data: ")
    ]
    assert later == seqs[1:]


def test_the_cli_and_sdk_read_a_teams_trail_with_team(
    people: dict[str, Cli],
    factory: Factory,
    tmp_path: Path,
) -> None:
    acme = factory.tenant("Acme AI")
    owner, admin = people["owner"], people["admin"]
    assert owner.login(acme.owner_email).exit_code == 0
    owner.ok("team", "create", "acme-ai", "Research")
    factory.user("lead@example.com")
    invited = owner.json(
        "team", "add-member", "acme-ai/research", "lead@example.com", "--role", "admin"
    )
    assert admin.login("lead@example.com").exit_code == 0
    admin.ok("invite", "accept", invited["token"])

    listed = admin.json("audit", "list", "acme-ai", "--team", "acme-ai/research")
    assert listed and {e["team_id"] for e in listed} == {invited["team_id"]}
    assert "invitation.accepted" in [e["action"] for e in listed]
    denied = admin.run("audit", "list", "acme-ai")
    assert one_error_line(denied).startswith("error: 403 permission_denied")
    target = tmp_path / "research.ndjson"
    admin.ok("audit", "export", "acme-ai", "--team", "acme-ai/research", "-o", str(target))
    assert outcome(offline.verify_file(target)) == (True, None, None)
    streamed = admin.ok(
        "audit", "stream", "acme-ai", "--team", "acme-ai/research", "--no-follow", "--json"
    )
    assert [json.loads(line)["id"] for line in streamed.splitlines()] == [e["id"] for e in listed]
