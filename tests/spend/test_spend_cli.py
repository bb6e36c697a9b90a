"""`tenantry budget|alerts|prices|costs` against the real app."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from cli.test_cli import Cli, people  # noqa: F401 - the fixture
from conftest import Factory, operator_of


def test_budgets_alerts_prices_and_costs_from_the_cli(
    people: dict[str, Cli],
    factory: Factory,
    client: TestClient,
    tmp_path: Path,
) -> None:
    acme = factory.tenant("Acme")
    ann = people["ann"]
    assert ann.login(acme.owner_email).exit_code == 0
    made = ann.json("budget", "set", acme.team_id, "1", "--restrict", "--threshold", "50")
    assert made["scope"] == "team" and made["exceeded_action"] == "restrict"
    org_budget = ann.json(
        "budget", "set", acme.org_slug, "100", "--scope", "org", "--period", "day"
    )
    listed = ann.json("budget", "list", acme.org_slug)
    assert {b["id"] for b in listed["budgets"]} == {made["id"], org_budget["id"]}
    assert "restrict" in ann.ok("budget", "show", made["id"])

    call = {"id": "k1", "team": acme.team_id, "provider": "openai", "model": "gpt-4o"}
    calls = {"calls": [call | {"input_tokens": 100_000, "output_tokens": 40_000}]}
    resp = client.post("/api/v1/llm-calls", headers=acme.headers, json=calls)
    assert resp.json()["results"][0]["cost"] == "0.65"
    by_model = ann.json("costs", acme.team_id, "--by", "model")
    assert by_model["billing_period"]["breakdown_by_model"]["gpt-4o"]["cost"] == "0.65"
    assert "gpt-4o" in ann.ok("costs", acme.team_id, "--by", "model")

    [alert] = ann.json("alerts", "list", acme.org_slug, "--open")["alerts"]
    assert alert["threshold"] == 50
    assert ann.json("alerts", "ack", alert["id"])["alert"]["acknowledged"] is True
    assert ann.json("alerts", "list", acme.org_slug, "--open")["alerts"] == []

    negotiated = tmp_path / "negotiated.json"
    negotiated.write_text(json.dumps({"prices": [{
        "provider": "openai", "model": "gpt-4o", "input_per_million": "2",
        "output_per_million": "8", "effective_from": "2025-01-01T00:00:00Z"}]}))  # fmt: skip
    assert "1 rates set" in ann.ok("prices", "import", str(negotiated), "--org", acme.org_slug)
    ours = ann.json("prices", "list", "--org", acme.org_slug)["prices"]
    assert [p["input_per_million"] for p in ours if p["model"] == "gpt-4o"] == ["2"]
    refused = ann.run("prices", "import", str(negotiated))  # the deployment's: operators only
    assert refused.exit_code == 1 and "operator_only" in refused.stderr
    assert operator_of(client).email
