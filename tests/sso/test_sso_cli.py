"""`tenantry sso ...` and `tenantry domain ...` against the real app, with the OIDC provider and
DNS server of these tests."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

from cli.test_cli import Cli, one_error_line
from conftest import Factory
from support.dns_server import LocalDns
from support.oidc_provider import OidcProvider
from support.sso import oidc_sign_in, through_provider


def test_an_admin_sets_up_sso_from_the_command_line(
    people: dict[str, Cli],
    factory: Factory,
    client: TestClient,
    provider: OidcProvider,
    dns: LocalDns,
) -> None:
    acme = factory.tenant("Acme AI")
    admin = people["owner"]
    assert admin.login(acme.owner_email).exit_code == 0
    conn = admin.json(
        "sso", "add", "acme-ai", "--name", "Okta", "--protocol", "oidc", "--preset", "okta",
        "--issuer", provider.issuer, "--client-id", provider.client_id, "--client-secret-stdin",
        input=provider.client_secret + "\n",
    )  # fmt: skip
    assert (conn["enabled"], conn["preset"], conn["has_client_secret"]) == (False, "okta", True)
    assert "Okta" in admin.ok("sso", "list", "acme-ai")
    refused = admin.run("sso", "enable", "acme-ai", conn["id"])
    assert one_error_line(refused).startswith("error: 409 sso_test_required")

    printed = admin.ok("sso", "test", "acme-ai", conn["id"])
    url = re.search(r"^  (http\S+)$", printed, re.M)
    assert url is not None, printed
    provider.person("okta|it", "it@example.com", groups=["ml"])
    assert through_provider(client, url.group(1)).status_code == 200
    result = admin.json("sso", "test", "acme-ai", conn["id"], "--result")
    assert result["tested"] is True
    assert result["result"]["profile"]["groups"] == ["ml"]
    admin.ok("sso", "enable", "acme-ai", conn["id"])

    rules = {"rules": [{"when": {"group": "ml"}, "org_role": "admin"}], "default": None}
    mapped = admin.json(
        "sso", "mapping", "acme-ai", conn["id"], "--file", "-", input=json.dumps(rules)
    )
    assert mapped["mapping"]["default"] is None
    assert json.loads(admin.ok("sso", "mapping", "acme-ai", conn["id"]))["rules"][0][
        "org_role"
    ] == ("admin")
    tokens = oidc_sign_in(client, conn["id"])
    assert tokens.status_code == 200, tokens.text

    added = admin.ok("domain", "add", "acme-ai", "acme.example.com")
    record = re.search(r"^  (\S+)  TXT  \"(\S+)\"$", added, re.M)
    assert record is not None, added
    dns.publish_txt(record.group(1), record.group(2))
    assert admin.ok("domain", "verify", "acme-ai", "acme.example.com") == (
        "acme.example.com is verified.\n"
    )
    listed = admin.json("domain", "list", "acme-ai")
    assert [(d["domain"], d["status"]) for d in listed] == [("acme.example.com", "verified")]
    policy = admin.json("sso", "policy", "acme-ai", "--require", "--break-glass", acme.owner_id)
    assert policy == {
        "enforced": True, "break_glass": [acme.owner_id], "verified_domains": ["acme.example.com"]
    }  # fmt: skip
