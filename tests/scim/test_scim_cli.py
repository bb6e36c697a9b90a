"""`tenantry scim ...` against the real app: an admin creates a token for the directory, sees
its last use, writes the rules, and revokes it."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from cli.test_cli import Cli, one_error_line, people  # noqa: F401 - the CLI as each person
from conftest import Factory, bearer


def test_an_admin_manages_scim_from_the_command_line(
    people: dict[str, Cli],
    factory: Factory,
    client: TestClient,
) -> None:
    acme = factory.tenant("Acme AI", plan="enterprise")
    admin = people["owner"]
    assert admin.login(acme.owner_email).exit_code == 0

    printed = admin.ok("scim", "token", "create", "acme-ai", "--name", "Okta")
    assert "/scim/v2" in printed and "shown once" in printed
    secret = printed.rsplit(": ", 1)[1].strip()
    assert secret.startswith("scim_")
    assert client.get("/scim/v2/Users", headers=bearer(secret)).status_code == 200

    listed = admin.json("scim", "token", "list", "acme-ai")
    assert [t["name"] for t in listed] == ["Okta"] and listed[0]["last_used_at"] is not None
    assert "secret" not in listed[0]
    assert "Okta" in admin.ok("scim", "token", "list", "acme-ai")

    rules = {"rules": [{"when": {"group": "ML"}, "org_role": "admin"}], "default": None}
    written = json.loads(
        admin.ok("scim", "mapping", "acme-ai", "--file", "-", input=json.dumps(rules))
    )
    assert written["default"] is None and written["rules"][0]["org_role"] == "admin"
    assert json.loads(admin.ok("scim", "mapping", "acme-ai"))["rules"][0]["when"]["group"] == "ML"

    revoked = admin.json("scim", "token", "revoke", "acme-ai", listed[0]["id"])
    assert revoked["revoked_at"] is not None
    assert client.get("/scim/v2/Users", headers=bearer(secret)).status_code == 401
    missing = admin.run("scim", "token", "revoke", "acme-ai", "sct_nothing")
    assert one_error_line(missing).startswith("error: 404")
