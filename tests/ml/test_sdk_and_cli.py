"""The SDK's `client.experiments…` and `client.models…` (seed 000's operations) and the
`tenantry models|experiments|mlflow` commands, against the real app."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import Factory
from tenantry.cli import connection
from tenantry.cli.main import app
from tenantry.client import Client, PaymentRequired


def test_the_sdk_tracks_a_run_and_registers_its_model(client: TestClient, factory: Factory) -> None:
    tenant = factory.tenant("Vision Lab")
    with Client("http://testserver", tenant.token, http=client) as api:
        team = tenant.team_id
        experiment = api.experiments.create(team, "digits", tags={"owner": "vision"})
        run = api.experiments.start_run(team, experiment.id, name="baseline")
        assert run.status == "running"
        api.experiments.log_hyperparameters(team, experiment.id, run.id, {"lr": 0.01, "deep": True})
        for step in range(3):
            api.experiments.log_metrics(
                team, experiment.id, run.id, {"loss": 1 / (step + 1), "acc": step / 3}, step=step
            )
        done = api.experiments.update_status(team, experiment.id, run.id, "finished")
        assert done.status == "finished" and done.end_ms is not None
        assert done.hyperparameters == {"lr": "0.01", "deep": "true"}
        assert done.metrics["loss"].step == 2
        history = api.experiments.history(team, experiment.id, run.id, "loss")
        assert [p.step for p in history.points] == [0, 1, 2]
        found = api.experiments.search_runs(
            team, experiment.id, filter="metrics.loss < 0.5", order_by=["metrics.loss ASC"]
        )
        assert [r.id for r in found.items] == [run.id]
        assert api.experiments.compare(team, experiment.id).metrics == ["acc", "loss"]

        weights = b"\x00\x01" * 5000
        uploaded = api.experiments.upload_artifact(
            team, experiment.id, run.id, "model/weights.bin", weights
        )
        assert uploaded.size == len(weights)

        model = api.models.register(team, "digits", metadata={"task": "classification"})
        version = api.models.create_version(
            team, model.id, run_id=run.id, source=f"runs:/{run.id}/model", label="1.0.0"
        )
        assert (version.version, version.label, version.run_id) == (1, "1.0.0", run.id)
        assert [f.path for f in api.models.files(team, model.id, 1)] == ["weights.bin"]
        api.models.set_alias(team, "digits", "champion", 1)
        sink = io.BytesIO()
        api.experiments.download_artifact(team, experiment.id, run.id, "model/weights.bin", sink)
        assert sink.getvalue() == weights
        shown = api.models.version(team, "digits", 1)
        assert shown.views == 1
        assert [r.kind for r in api.models.reads(team, "digits", 1)] == ["view"]
        assert api.models.get(team, "digits").aliases == {"champion": 1}
        with pytest.raises(AttributeError):
            api.models.nothing_here  # noqa: B018

        for n in range(9):  # Free: 10 models
            api.models.register(team, f"m{n}")
        with pytest.raises(PaymentRequired) as full:
            api.models.register(team, "one too many")
        assert full.value.body["quota"] == "models"


def test_the_cli_registers_lists_downloads_and_gives_the_tracking_uri(
    client: TestClient, factory: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = factory.tenant("Vision Lab")
    monkeypatch.setattr(connection, "http_override", client)
    monkeypatch.setenv("TENANTRY_SERVER", "http://testserver")
    monkeypatch.setenv("TENANTRY_TOKEN", tenant.token)
    monkeypatch.setenv("TENANTRY_CONFIG_DIR", str(tmp_path / "config"))
    runner = CliRunner()

    def ok(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        return result.stdout

    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"w" * 3000)
    team = f"{tenant.org_slug}/default"
    registered = json.loads(
        ok(
            "models",
            "register",
            team,
            "fraud",
            "--file",
            str(weights),
            "--label",
            "1.0.0",
            "--json",
        )
    )
    assert registered["file"]["size"] == 3000
    assert registered["version"]["label"] == "1.0.0"
    ok("models", "register", team, "fraud", "--file", str(weights))
    assert "fraud" in ok("models", "list", team)
    versions = json.loads(ok("models", "versions", team, "fraud", "--json"))
    assert [v["version"] for v in versions] == [1, 2]
    ok("models", "alias", team, "fraud", "champion", "2")
    assert json.loads(ok("models", "show", team, "fraud", "--json"))["aliases"] == {"champion": 2}
    out = tmp_path / "got.bin"
    assert "3000 bytes" in ok(
        "models", "download", team, "fraud", "1", "weights.bin", "-o", str(out)
    )
    assert out.read_bytes() == weights.read_bytes()
    assert json.loads(ok("models", "versions", team, "fraud", "--json"))[0]["downloads"] == 1
    ok("models", "delete", team, "fraud", "--version", "1")
    ok("models", "alias", team, "fraud", "champion", "--delete")

    with Client("http://testserver", tenant.token, http=client) as api:
        experiment = api.create_experiment(tenant.team_id, "digits")
        run = api.start_run(tenant.team_id, experiment.id, name="r1", hyperparameters={"lr": 0.1})
        api.log_metrics(tenant.team_id, experiment.id, run.id, {"loss": 0.3})
    assert "digits" in ok("experiments", "list", team)
    runs = json.loads(
        ok("experiments", "runs", team, experiment.id, "--filter", "metrics.loss < 1", "--json")
    )
    assert [r["id"] for r in runs] == [run.id]
    assert "metric loss" in ok("experiments", "compare", team, experiment.id)
    uri = ok("mlflow", "uri", team)
    assert f"MLFLOW_TRACKING_URI=http://testserver/mlflow/{tenant.org_slug}/default" in uri
    ok("models", "delete", team, "fraud")
