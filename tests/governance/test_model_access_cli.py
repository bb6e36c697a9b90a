"""`tenantry model-access show|set` against the real app (through the SDK), with seed 003's
`ai_configuration` file as written."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from cli.test_cli import Cli, people  # noqa: F401 - the fixture
from conftest import Factory
from governance.test_model_access import SEED, admit, decided


def test_set_and_show_model_access_from_the_cli(
    people: dict[str, Cli], factory: Factory, client: TestClient, tmp_path: Path
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    ann = people["ann"]
    assert ann.login(acme.owner_email).exit_code == 0
    seed = tmp_path / "access.json"
    seed.write_text(json.dumps({"ai_configuration": SEED}))  # as a tenant template holds it
    org = ann.json("model-access", "set", acme.org_slug, "--file", str(seed))
    assert org["scope"] == "org" and org["model_access"] == SEED["model_access"]
    narrower = tmp_path / "team.json"
    narrower.write_text(json.dumps({"model_access": {"gpt-4": False},
                                    "rate_limits": {"concurrent_requests": 3}}))  # fmt: skip
    team = ann.json(
        "model-access", "set", acme.org_slug, "--team", acme.team_id, "--file", str(narrower)
    )
    assert team["scope"] == "team" and team["rate_limits"]["concurrent_requests"] == 3
    key = factory.api_key(acme)
    keyed = ann.json(
        "model-access", "set", acme.org_slug, "--api-key", key["id"], "--file", str(narrower)
    )
    assert keyed["subject_id"] == key["id"]
    shown = ann.ok("model-access", "show", acme.org_slug, "--team", acme.team_id)
    assert "models: deny gpt-4" in shown and "concurrent_requests: 3" in shown
    effective = ann.ok(
        "model-access", "show", acme.org_slug, "--effective", "--team", acme.team_id,
        "--model", "gpt-4", "--provider", "openai",
    )  # fmt: skip
    assert "concurrent_requests: 3 (team" in effective
    assert "decision: deny: The model 'gpt-4' is denied by 'gpt-4'" in effective
    assert decided(admit(client, acme.headers, acme.team_id, "gpt-4")) == (
        "deny", "model_denied", "team",
    )  # fmt: skip
    explained = ann.ok(
        "governance", "explain", acme.org_slug, acme.team_id, "--model", "gpt-4",
        "--provider", "openai",
    )  # fmt: skip
    assert (
        "decision: deny" in explained and "model access: The model 'gpt-4' is denied" in explained
    )
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model_access": {"gpt-4": True}, "quotas": {}}))
    refused = ann.run("model-access", "set", acme.org_slug, "--file", str(bad))
    assert refused.exit_code != 0 and "unknown model access fields: quotas" in refused.stderr
    both = ann.run("model-access", "show", acme.org_slug, "--team", "t", "--api-key", "k")
    assert both.exit_code != 0
