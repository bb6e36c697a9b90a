"""`tenantry usage record|summary` and `tenantry quota show` through the CLI, and the SDK's
metering calls, against the real app."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from fastapi.testclient import TestClient

from cli.test_cli import Cli, people  # noqa: F401 - the fixture
from conftest import Factory, operator_of
from tenantry.client import Client
from tenantry.client.metering import usage_event
from tenantry.kit.clock import FrozenClock


def test_usage_and_quotas_from_the_cli(
    people: dict[str, Cli],
    factory: Factory,
    clock: FrozenClock,
) -> None:
    clock.set(datetime.now(UTC))  # the CLI stamps events with the real time
    acme = factory.tenant("Acme")
    ann = people["ann"]
    assert ann.login(acme.owner_email).exit_code == 0
    tokens = ("usage", "record", acme.team_id, "llm_input_tokens", "1200", "--id", "cli-1")
    assert "Recorded cli-1" in ann.ok(*tokens, "-d", "provider=openai")
    assert "Already recorded" in ann.ok(*tokens)
    ann.ok("usage", "record", f"{acme.org_slug}/default", "compute_hours", "2.5")
    refused = ann.run("usage", "record", acme.team_id, "gpu_seconds", "1")
    assert refused.exit_code == 1 and "unknown_meter" in refused.stderr
    summary = ann.json("usage", "summary", acme.team_id, "--days", "7")
    assert summary["totals"] == {"compute_hours": "2.5", "llm_input_tokens": "1200"}
    by_provider = ann.json("usage", "summary", acme.team_id, "--by", "provider")
    assert {(r["meter"], r["group"]) for r in by_provider["rows"]} == {
        ("compute_hours", ""),
        ("llm_input_tokens", "openai"),
    }
    table = ann.ok("usage", "summary", acme.team_id, "--by", "provider")
    assert "openai" in table and "1200" in table
    quotas = ann.json("quota", "show", acme.org_slug)
    compute = next(q for q in quotas["quotas"] if q["key"] == "compute_hours")
    assert (compute["used"], compute["remaining"], compute["limit"]) == ("2.5", "97.5", "100")
    team = ann.json("quota", "show", acme.team_id)
    assert team["team_id"] == acme.team_id
    assert "team_members" in ann.ok("quota", "show", acme.org_id)


def test_the_sdk_admits_settles_and_summarizes(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme")
    api = Client("http://testserver", acme.token, http=client)
    recorded = api.record_usage(
        [usage_event("s-1", "llm_output_tokens", 42, timestamp=clock.now(), team=acme.team_id)]
    )
    assert recorded.accepted == 1
    admitted = api.admit(acme.team_id, "llm.generate", estimate={"compute_hours": Decimal("3")})
    assert admitted.allowed and admitted.reservation_id
    settled = api.settle(admitted.reservation_id, {"compute_hours": "1.25"})
    assert settled.status == "settled" and settled.remaining["compute_hours"] == "98.75"
    assert api.team_usage(acme.team_id).totals == {
        "compute_hours": "1.25",
        "llm_output_tokens": "42",
    }
    assert api.org_usage(acme.org_id, group_by="model").org_id == acme.org_id
    # A custom plan is the operator's to give (the owner's own try is refused).
    operator = Client("http://testserver", operator_of(client).token, http=client)
    plan = operator.set_tenant_overrides(acme.org_id, quotas={"models": {"limit": "3"}})
    assert plan.custom and api.org_plan(acme.org_id).quotas[0].limit == "3"
    assert api.org_quotas(acme.org_id).custom
    assert api.team_quotas(acme.team_id).team_id == acme.team_id
    assert api.quota_alerts(acme.org_id).alerts == []
