from fastapi.testclient import TestClient

from conftest import Factory, bearer


def test_onboard_team_invite_accept_member_key_audit(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant("Acme AI")
    assert acme.org_slug == "acme-ai"
    team = client.post(
        f"/api/v1/orgs/{acme.org_slug}/teams", headers=acme.headers, json={"name": "Research"}
    )
    assert team.status_code == 201, team.text
    team_id = team.json()["id"]
    user_id, _token = factory.member(acme)
    added = client.post(
        f"/api/v1/teams/{team_id}/members",
        headers=acme.headers,
        json={"user": user_id, "role": "developer"},
    )
    assert added.status_code == 201, added.text
    assert added.json()["role"] == "editor"
    key = factory.api_key(acme)
    assert key["secret"].startswith("tnt_")
    me = client.get("/api/v1/me", headers=bearer(key["secret"]))
    assert me.status_code == 200, me.text
    events = client.get(f"/api/v1/orgs/{acme.org_id}/audit-events", headers=acme.headers)
    assert events.status_code == 200, events.text
    actions = [e["action"] for e in events.json()["items"]]
    assert actions == [
        "organization.onboarded",
        "team.created",
        "invitation.created",
        "invitation.accepted",
        "team.member.added",
        "api_key.created",
    ]
