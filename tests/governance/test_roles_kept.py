"""The member's roles that policies read are kept per org version: a role changed shows on
the member's very next admission."""

from __future__ import annotations

from fastapi.testclient import TestClient

from conftest import Factory
from governance.test_governance import admit, join, policy


def test_a_changed_team_role_is_seen_by_the_next_admission(
    client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    dev_id, dev = join(client, factory, acme)
    policy(client, acme, [{"field": "model", "operator": "equals", "value": "gpt-4o"}],
           [{"type": "deny"}], "No 4o but for admins", exceptions={"roles": ["admin"]})  # fmt: skip
    assert admit(client, dev, acme.team_id)["decision"] == "deny"
    assert admit(client, dev, acme.team_id)["decision"] == "deny"  # kept, still an editor
    changed = client.patch(
        f"/api/v1/teams/{acme.team_id}/members/{dev_id}",
        headers=acme.headers,
        json={"role": "admin"},
    )
    assert changed.status_code == 200, changed.text
    allowed = admit(client, dev, acme.team_id)
    assert allowed["decision"] == "allow", allowed
    assert allowed["governance"]["excepted"][0]["exception"] == {"kind": "role", "value": "admin"}
