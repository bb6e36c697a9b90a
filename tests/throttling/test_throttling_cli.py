"""Throttling through the SDK and the `tenantry` CLI (`lease ...`, `ratelimit ...`), against the
real app (the CLI's `http_override` seam points it at the in-process TestClient)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from conftest import Factory, Tenant
from tenantry.cli import connection
from tenantry.cli.main import app
from tenantry.client import Client, PaymentRequired, RateLimited
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The plans' own rate limits (the suite otherwise multiplies them, see conftest)."""
    return settings.model_copy(update={"rate_limit_multiplier": 1.0})


@pytest.fixture
def sdk(client: TestClient) -> Client:
    return Client("http://testserver", http=client)


def test_sdk_rate_limits_and_leases(sdk: Client, factory: Factory, clock: FrozenClock) -> None:
    acme = factory.tenant("Acme")
    sdk.token = acme.token
    shown = sdk.get_rate_limits(acme.org_slug)
    assert shown.plan == "free" and shown.effective.org_burst == 60 and shown.override is None
    tightened = sdk.set_rate_limits(acme.org_id, org_burst=10, key_burst=5)
    assert tightened.effective.org_burst == 10 and tightened.override is not None
    assert sdk.set_rate_limits(acme.org_id).override is None

    leases = [sdk.acquire_lease(acme.team_id, run_id=f"run-{i}") for i in range(5)]
    assert leases[-1].concurrent_runs.in_use == 5
    with pytest.raises(PaymentRequired) as refused:
        sdk.acquire_lease(acme.team_id)
    assert refused.value.body["upgrade_to"] == "starter"
    beat = sdk.heartbeat_lease(acme.team_id, leases[0].id, ttl_seconds=60)
    assert beat.ttl_seconds == 60
    sdk.release_lease(acme.team_id, leases[0].id)
    assert sorted(x.run_id or "" for x in sdk.iter_leases(acme.team_id)) == [
        f"run-{i}" for i in range(1, 5)
    ]


def test_sdk_raises_rate_limited_with_retry_after(sdk: Client, factory: Factory) -> None:
    acme = factory.tenant("Acme")
    sdk.token = acme.token
    sdk.set_rate_limits(acme.org_id, org_burst=1)  # this call spent the only one
    with pytest.raises(RateLimited) as limited:
        sdk.get_rate_limits(acme.org_id)
    assert limited.value.retry_after == 1


def _cli(runner: CliRunner, tmp_path: Path, tenant: Tenant, *args: str) -> Result:
    result = runner.invoke(
        app,
        list(args),
        env={"TENANTRY_CONFIG_DIR": str(tmp_path / "cli"), "TENANTRY_TOKEN": tenant.token},
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_cli_lease_and_ratelimit_commands(
    client: TestClient, factory: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "http_override", client)
    monkeypatch.delenv("TENANTRY_SERVER", raising=False)
    runner = CliRunner()
    acme = factory.tenant("Acme")

    def ok(*args: str) -> str:
        result = _cli(runner, tmp_path, acme, *args)
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result.stdout

    team = client.get(f"/api/v1/teams/{acme.team_id}", headers=acme.headers).json()
    team_ref = f"{acme.org_slug}/{team['slug']}"  # the ORG/TEAM-SLUG form people type
    acquired = json.loads(ok("lease", "acquire", team_ref, "--run-id", "nightly", "--json"))
    assert acquired["run_id"] == "nightly" and acquired["concurrent_runs"]["limit"] == 5
    assert "Concurrent runs in use: 2 of 5" in ok("lease", "acquire", acme.team_id, "--ttl", "60")
    listed = json.loads(ok("lease", "list", acme.team_id, "--json"))
    assert len(listed) == 2
    assert "nightly" in ok("lease", "list", team_ref)
    beat = json.loads(
        ok("lease", "heartbeat", acme.team_id, acquired["id"], "--ttl", "90", "--json")
    )
    assert beat["ttl_seconds"] == 90
    assert ok("lease", "release", acme.team_id, acquired["id"]) == (
        f"Released lease {acquired['id']}.\n"
    )

    table = ok("ratelimit", "show", acme.org_slug)
    assert "org_burst" in table and "API calls today" in table
    changed = json.loads(ok("ratelimit", "set", acme.org_id, "--org-burst", "40", "--json"))
    assert changed["effective"]["org_burst"] == 40
    refused = _cli(runner, tmp_path, acme, "ratelimit", "set", acme.org_id, "--org-burst", "999")
    assert refused.exit_code != 0 and "above_plan_limit" in refused.stderr
    assert json.loads(ok("ratelimit", "set", acme.org_id, "--json"))["override"] is None
