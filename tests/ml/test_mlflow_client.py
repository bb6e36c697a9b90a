"""A training script as MLflow's users write it, unchanged, against a team's Tenantry URI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import Factory
from ml.conftest import Live, team_of, use

pytestmark = pytest.mark.usefixtures("mlflow_env")


def test_a_training_script_logs_and_registers_through_the_real_client(
    factory: Factory, live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.entities import Metric, Param, RunTag

    import mlflow
    from mlflow import MlflowClient

    team = team_of(factory, live, factory.tenant("Vision Lab", plan="starter"))
    use(monkeypatch, team)

    experiment = mlflow.set_experiment("mnist")  # not found, so created
    assert experiment.artifact_location == f"mlflow-artifacts:/{experiment.experiment_id}"
    with mlflow.start_run(run_name="baseline") as run:
        mlflow.log_param("lr", 0.01)
        mlflow.log_params({"optimizer": "adam", "epochs": 3})
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.set_tags({"team": "vision", "stage": "dev"})
        client = MlflowClient()
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("acc", 0.5 + i / 10, 1_700_000_000_000 + i, i) for i in range(3)],
            params=[Param("batch", "32")],
            tags=[RunTag("k", "v")],
        )
        notes = tmp_path / "notes.txt"
        notes.write_text("hello")
        mlflow.log_artifact(str(notes))
        folder = tmp_path / "more"
        (folder / "sub").mkdir(parents=True)
        (folder / "a.txt").write_text("a")
        (folder / "sub" / "b.txt").write_text("b")
        mlflow.log_artifacts(str(folder), artifact_path="more")
        model_dir = tmp_path / "model"
        model_dir.mkdir()
        (model_dir / "weights.bin").write_bytes(os.urandom(4096))
        (model_dir / "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
    run_id = run.info.run_id
    assert len(run_id) == 32 and int(run_id, 16) >= 0

    client = MlflowClient()
    finished = client.get_run(run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.params == {"lr": "0.01", "optimizer": "adam", "epochs": "3", "batch": "32"}
    assert finished.data.metrics == {"loss": pytest.approx(1 / 3), "acc": pytest.approx(0.7)}
    assert finished.data.tags["team"] == "vision" and finished.data.tags["k"] == "v"

    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]

    out = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="more", dst_path=str(tmp_path / "down")
    )
    assert (Path(out) / "a.txt").read_text() == "a"
    assert (Path(out) / "sub" / "b.txt").read_text() == "b"
    assert sorted(a.path for a in client.list_artifacts(run_id)) == ["model", "more", "notes.txt"]

    # a second run, to search among
    with mlflow.start_run(run_name="worse"):
        mlflow.log_param("optimizer", "sgd")
        mlflow.log_metric("loss", 0.9)
    found = client.search_runs(
        [experiment.experiment_id],
        "metrics.loss < 0.6 and params.optimizer = 'adam'",
        order_by=["metrics.loss ASC"],
    )
    assert [r.info.run_id for r in found] == [run_id]
    ordered = client.search_runs([experiment.experiment_id], order_by=["metrics.loss DESC"])
    assert [r.info.run_name for r in ordered] == ["worse", "baseline"]

    # the registry
    version = mlflow.register_model(f"runs:/{run_id}/model", "digits")
    assert version.version == "1"
    client.set_registered_model_alias("digits", "champion", version.version)
    assert client.get_model_version_by_alias("digits", "champion").version == "1"
    second = client.create_model_version("digits", f"runs:/{run_id}/model", run_id=run_id)
    assert second.version == "2"
    client.set_model_version_tag("digits", "2", "validated", "yes")
    assert [v.version for v in client.search_model_versions("name='digits'")] == ["2", "1"]
    assert [m.name for m in client.search_registered_models()] == ["digits"]
    uri = client.get_model_version_download_uri("digits", "1")
    assert uri == f"mlflow-artifacts:/{experiment.experiment_id}/{run_id}/artifacts/model"
    weights = mlflow.artifacts.download_artifacts(
        "models:/digits@champion", dst_path=str(tmp_path / "champion")
    )
    assert (Path(weights) / "weights.bin").read_bytes() == (model_dir / "weights.bin").read_bytes()
