"""`tenantry policy|approvals|governance` against the real app (through the SDK)."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from cli.test_cli import Cli, people  # noqa: F401 - the fixture
from conftest import Factory
from governance.test_governance import SEED_POLICY, admit, join


def test_policies_approvals_and_explain_from_the_cli(
    people: dict[str, Cli], factory: Factory, client: TestClient, tmp_path: Path
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    ann, lead = people["ann"], people["lead"]
    assert ann.login(acme.owner_email).exit_code == 0
    seed = tmp_path / "policy.json"
    seed.write_text(json.dumps(SEED_POLICY))  # seed 001's request body, as written
    made = ann.json("policy", "create", acme.org_slug, "--file", str(seed), "--team", acme.team_id)
    assert made["status"] == "draft" and made["name"] == "High Cost Request Approval"
    assert [p["id"] for p in ann.json("policy", "list", acme.org_slug)["policies"]] == [made["id"]]
    assert ann.json("policy", "activate", made["id"])["status"] == "active"
    assert len(ann.json("policy", "show", made["id"])["versions"]) == 2
    assert "would require_approval: 0 calls" in ann.ok("policy", "dry-run", made["id"])

    join(client, factory, acme, "team-lead@company.com", team_role=None)
    _, dev = join(client, factory, acme)
    asked = admit(client, dev, acme.team_id, "150")
    [pending] = ann.json("approvals", "list", acme.org_slug, "--status", "pending")["approvals"]
    assert pending["id"] == asked["approval_id"]
    refused = ann.run("approvals", "approve", pending["id"])  # the owner is no approver here
    assert refused.exit_code == 1 and "not_an_approver" in refused.stderr
    assert lead.login("team-lead@company.com").exit_code == 0
    assert lead.json("approvals", "approve", pending["id"])["status"] == "approved"
    assert admit(client, dev, acme.team_id, "150", approval_id=pending["id"])["decision"] == "allow"

    assert ann.json("policy", "disable", made["id"])["status"] == "disabled"
    explained = ann.json("governance", "explain", acme.org_slug, acme.team_id, "--cost", "500")
    assert explained["decision"] == "allow" and explained["evaluated"] == 0
    assert "decision: allow" in ann.ok("governance", "explain", acme.org_slug, acme.team_id)


def test_classification_levels_from_the_cli(
    people: dict[str, Cli], factory: Factory, tmp_path: Path
) -> None:
    acme = factory.tenant("Acme")
    ann = people["ann"]
    assert ann.login(acme.owner_email).exit_code == 0
    assert "defined by: defaults" in ann.ok("governance", "classification", "show", acme.org_slug)
    seed = tmp_path / "levels.json"
    seed.write_text(json.dumps({"data_classification": {"levels": {"restricted": {
        "categories": ["medical", "legal", "security"],
        "handling_requirements": {"encryption_required": True, "access_logging": True,
                                  "retention_period_days": 90,
                                  "geographic_restrictions": ["US"],
                                  "approval_required": True}}}}}))  # fmt: skip
    saved = ann.json("governance", "classification", "set", acme.org_slug, "--file", str(seed))
    assert saved["levels"]["restricted"]["handling_requirements"]["retention_period_days"] == 90
    shown = ann.ok("governance", "classification", "show", acme.org_slug)
    assert "restricted: categories medical, legal, security" in shown
    assert "geographic_restrictions=US" in shown
    seed.write_text(json.dumps({"levels": {"restricted": {"handling_requirements": {"x": 1}}}}))
    refused = ann.run("governance", "classification", "set", acme.org_slug, "--file", str(seed))
    assert refused.exit_code == 1
    out = ann.ok("governance", "explain", acme.org_slug, acme.team_id,
                 "--classification", "restricted", "--region", "EU")  # fmt: skip
    assert "decision: deny" in out and "data_classification_region_denied" in out
