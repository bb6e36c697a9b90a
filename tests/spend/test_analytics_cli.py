"""`tenantry analytics|anomalies|cost-centres` against the real app (seed 001's commands)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from cli.test_cli import Cli, people  # noqa: F401 - the fixture
from conftest import Factory
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.worker import run_once


def test_analytics_anomalies_and_cost_centres_from_the_cli(
    people: dict[str, Cli],
    factory: Factory,
    client: TestClient,
    clock: FrozenClock,
    settings: Settings,
    database: Database,
    tmp_path: Path,
) -> None:
    clock.set(datetime(2026, 3, 2, 6, tzinfo=UTC))
    acme = factory.tenant("Acme")
    ann = people["ann"]
    assert ann.login(acme.owner_email).exit_code == 0
    calls = [
        {"id": f"d{day}", "team": acme.team_id, "provider": "openai", "model": "gpt-4o",
         "input_tokens": 4000, "output_tokens": 100, "latency_ms": 900,
         "cost": "30" if day == 29 else "2", "timestamp": f"2026-02-{day:02d}T10:00:00Z"}
        for day in range(15, 30) if day != 29
    ] + [{"id": "spike", "team": acme.team_id, "provider": "openai", "model": "gpt-4o",
          "input_tokens": 4000, "output_tokens": 100, "cost": "30",
          "timestamp": "2026-03-01T10:00:00Z"}]  # fmt: skip
    resp = client.post("/api/v1/llm-calls", headers=acme.headers, json={"calls": calls})
    assert resp.status_code == 200 and resp.json()["accepted"] == len(calls), resp.text

    usage = ann.json("analytics", "usage", acme.team_id, "--days", "30")
    assert usage["usage"]["total_cost"] == "58"  # 14 x 2 + 30
    assert usage["usage"]["total_requests"] == 15
    assert "openai/gpt-4o" in ann.ok("analytics", "usage", acme.team_id)

    out = tmp_path / "dashboard.json"
    said = ann.ok("analytics", "dashboard", acme.team_id, "--output", str(out))
    assert "efficiency score" in said
    dashboard = json.loads(out.read_text())
    assert set(dashboard) >= {"usage", "insights", "compliance"}
    assert dashboard["insights"]["cost_optimization_opportunities"]["recommendations"]
    advice = ann.json("analytics", "recommendations", acme.team_id)
    opportunities = advice["insights"]["cost_optimization_opportunities"]
    assert opportunities["potential_savings"] != "0"
    assert "provider_switch" in ann.ok("analytics", "recommendations", acme.team_id)

    run_once(settings, clock=clock, database=database)
    found = ann.json("anomalies", "list", acme.org_slug, "--open")["anomalies"]
    assert {a["dimension"] for a in found} == {"team", "member", "model"}
    team_only = ann.json("anomalies", "list", acme.org_slug, "--team", acme.team_id)
    assert len(team_only["anomalies"]) == 3
    assert ann.json("anomalies", "ack", found[0]["id"])["acknowledged"] is True
    assert len(ann.json("anomalies", "list", acme.org_slug, "--open")["anomalies"]) == 2

    made = ann.json(
        "cost-centres", "add", acme.org_slug, "--name", "R&D", "--code", "CC-1",
        "--team", acme.team_id,
    )  # fmt: skip
    assert made["teams"] == [acme.team_id]
    assert "CC-1" in ann.ok("cost-centres", "list", acme.org_slug)
    report = ann.json("cost-centres", "chargeback", acme.org_slug, "--period", "2026-02")
    assert report["cost_centres"][0]["charged"] == "28"
    focus = tmp_path / "focus.csv"
    assert "14 charge rows" in ann.ok(
        "cost-centres", "focus", acme.org_slug, "--period", "2026-02", "--output", str(focus)
    )
    rows = list(csv.DictReader(io.StringIO(focus.read_text())))
    assert {r["x_CostCentre"] for r in rows} == {"CC-1"}
    emptied = ann.json("cost-centres", "assign", acme.org_slug, made["id"])
    assert emptied["teams"] == []
    assert "Removed" in ann.ok("cost-centres", "remove", acme.org_slug, made["id"])
