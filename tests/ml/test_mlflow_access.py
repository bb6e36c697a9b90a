"""Roles, isolation, quotas and audit on the MLflow face, through MLflow's own client."""

from __future__ import annotations

import base64
import threading

import httpx
import pytest
from sqlalchemy import select

from conftest import Factory
from ml.conftest import Live, team_of, use
from tenantry.audit.models import AuditEvent
from tenantry.kit.db import Database

pytestmark = pytest.mark.usefixtures("mlflow_env")


def _events(database: Database, org_id: str) -> list[tuple[str, str]]:
    with database.session(write=False) as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.org_id == org_id).order_by(AuditEvent.seq)
        )
        return [(e.action, e.result) for e in rows]


def test_a_viewer_reads_and_is_refused_every_write(
    factory: Factory, live: Live, monkeypatch: pytest.MonkeyPatch, database: Database
) -> None:
    from mlflow.exceptions import MlflowException

    import mlflow
    from mlflow import MlflowClient

    tenant = factory.tenant("Vision Lab", plan="starter")
    team = team_of(factory, live, tenant)
    use(monkeypatch, team)
    experiment = mlflow.set_experiment("shared")
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.5)

    # a viewer of the team
    viewer_id, _, viewer_token = factory.user("viewer@example.com")
    invite = factory.client.post(
        f"/api/v1/orgs/{tenant.org_id}/invitations",
        headers=tenant.headers,
        json={"email": "viewer@example.com", "role": "member"},
    )
    assert invite.status_code == 201, invite.text
    viewer = {"Authorization": f"Bearer {viewer_token}"}
    token = invite.json()["token"]
    accepted = factory.client.post(f"/api/v1/invitations/{token}/accept", headers=viewer)
    assert accepted.status_code == 200, accepted.text
    member = factory.client.post(
        f"/api/v1/teams/{tenant.team_id}/members",
        headers=tenant.headers,
        json={"user": viewer_id, "role": "viewer"},
    )
    assert member.status_code == 201, member.text
    # a viewer may not make API keys: their access token is the tracking token
    use(monkeypatch, team, viewer_token)

    client = MlflowClient()
    assert client.get_run(run.info.run_id).data.metrics == {"loss": 0.5}
    assert [e.name for e in client.search_experiments()] == ["shared"]
    before = _events(database, tenant.org_id)
    for write in (
        lambda: client.create_experiment("mine"),
        lambda: client.log_metric(run.info.run_id, "loss", 0.1),
        lambda: client.set_tag(run.info.run_id, "k", "v"),
        lambda: client.create_registered_model("m"),
        lambda: client.delete_experiment(experiment.experiment_id),
    ):
        with pytest.raises(MlflowException) as refused:
            write()
        assert refused.value.error_code == "PERMISSION_DENIED", refused.value
    # each refusal is one `denied` event; nothing else was written
    after = _events(database, tenant.org_id)[len(before) :]
    assert [result for _, result in after] == ["denied"] * 5


def test_another_tenants_experiment_and_run_do_not_exist(
    factory: Factory, live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import MlflowException

    import mlflow
    from mlflow import MlflowClient

    alpha = team_of(factory, live, factory.tenant("Alpha", plan="starter"))
    bravo = team_of(factory, live, factory.tenant("Bravo", plan="starter"))
    use(monkeypatch, alpha)
    experiment = mlflow.set_experiment("secret")
    with mlflow.start_run() as run:
        mlflow.log_param("p", "1")

    use(monkeypatch, bravo)
    client = MlflowClient()
    for read in (
        lambda: client.get_experiment(experiment.experiment_id),
        lambda: client.get_run(run.info.run_id),
        lambda: client.log_metric(run.info.run_id, "loss", 1.0),
        lambda: client.search_runs([experiment.experiment_id]),
    ):
        with pytest.raises(MlflowException) as missing:
            read()
        assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST", missing.value
    assert client.get_experiment_by_name("secret") is None

    # Bravo's key on Alpha's tracking URI: the team is not found at all
    use(monkeypatch, alpha, bravo.key)
    with pytest.raises(MlflowException) as outside:
        MlflowClient().search_experiments()
    assert outside.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_credentials_bearer_basic_and_none(factory: Factory, live: Live) -> None:
    team = team_of(factory, live, factory.tenant("Acme"))
    url = f"{team.uri}/api/2.0/mlflow/experiments/search"
    with httpx.Client(timeout=10) as http:
        anonymous = http.post(url, json={})
        assert anonymous.status_code == 401
        assert anonymous.json()["error_code"] == "UNAUTHENTICATED"
        bearer = http.post(url, json={}, headers={"Authorization": f"Bearer {team.key}"})
        assert bearer.status_code == 200, bearer.text
        basic = base64.b64encode(f"anyone:{team.key}".encode()).decode()
        by_password = http.post(url, json={}, headers={"Authorization": f"Basic {basic}"})
        assert by_password.status_code == 200, by_password.text
        unknown = http.get(f"{team.uri}/api/2.0/mlflow/nothing-here")
        assert unknown.status_code == 404
        assert unknown.json()["error_code"] == "ENDPOINT_NOT_FOUND"
        info = http.get(f"{team.uri}/api/3.0/mlflow/server-info")
        assert info.status_code == 200 and info.json()["multipart_uploads_enabled"] is False


def test_a_bad_filter_is_an_invalid_parameter_value(
    factory: Factory, live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import MlflowException

    import mlflow
    from mlflow import MlflowClient

    use(monkeypatch, team_of(factory, live, factory.tenant("Acme")))
    experiment = mlflow.set_experiment("e")
    client = MlflowClient()
    for bad in ("metrics.loss <", "metrics.loss < 'high'", "params.lr > 1", "foo.bar = 1"):
        with pytest.raises(MlflowException) as invalid:
            client.search_runs([experiment.experiment_id], bad)
        assert invalid.value.error_code == "INVALID_PARAMETER_VALUE", bad


def _limit(factory: Factory, org_id: str, quota: str, limit: int) -> None:
    resp = factory.client.put(
        f"/api/v1/operator/tenants/{org_id}/plan-overrides",
        headers=factory.operator().headers,
        json={"name": "Acme custom", "quotas": {quota: {"limit": str(limit)}}},
    )
    assert resp.status_code == 200, resp.text


def test_a_quota_surfaces_as_a_clear_client_error(
    factory: Factory, live: Live, monkeypatch: pytest.MonkeyPatch, database: Database
) -> None:
    from mlflow.exceptions import MlflowException

    import mlflow
    from mlflow import MlflowClient

    tenant = factory.tenant("Acme")  # Free: 10 models
    use(monkeypatch, team_of(factory, live, tenant))
    client = MlflowClient()
    for n in range(10):
        client.create_registered_model(f"m{n}")
    with pytest.raises(MlflowException) as full:
        client.create_registered_model("one too many")
    assert full.value.error_code == "QUOTA_EXCEEDED"
    assert "Free plan allows 10 models" in full.value.message
    assert "upgrade to Starter" in full.value.message
    created = [a for a, r in _events(database, tenant.org_id) if a == "model.created"]
    assert len(created) == 10

    _limit(factory, tenant.org_id, "experiments", 2)
    mlflow.set_experiment("first")
    with pytest.raises(MlflowException) as experiments:
        mlflow.set_experiment("third")  # the default experiment is not made: one more fits
        mlflow.set_experiment("fourth")
    assert experiments.value.error_code == "QUOTA_EXCEEDED"


def test_metric_points_are_usage_not_audit(
    factory: Factory, live: Live, monkeypatch: pytest.MonkeyPatch, database: Database
) -> None:
    from mlflow.entities import Metric

    import mlflow
    from mlflow import MlflowClient

    tenant = factory.tenant("Acme")
    use(monkeypatch, team_of(factory, live, tenant))
    mlflow.set_experiment("e")
    with mlflow.start_run() as run:
        before = _events(database, tenant.org_id)
        for step in range(5):
            mlflow.log_metric("loss", 1 / (step + 1), step=step)
        MlflowClient().log_batch(
            run.info.run_id, metrics=[Metric("acc", 0.1 * i, 1, i) for i in range(100)]
        )
        assert _events(database, tenant.org_id) == before
        mlflow.log_param("lr", "0.1")
    assert _events(database, tenant.org_id)[len(before) :] == [
        ("run.logged", "success"),
        ("run.updated", "success"),
    ]


def test_params_are_written_once(
    factory: Factory, live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import MlflowException

    import mlflow

    use(monkeypatch, team_of(factory, live, factory.tenant("Acme")))
    mlflow.set_experiment("e")
    with mlflow.start_run():
        mlflow.log_param("lr", "0.1")
        mlflow.log_param("lr", "0.1")  # the same value again is fine
        with pytest.raises(MlflowException) as changed:
            mlflow.log_param("lr", "0.2")
        assert changed.value.error_code == "INVALID_PARAMETER_VALUE"


def test_log_batch_limits(factory: Factory, live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    team = team_of(factory, live, factory.tenant("Acme"))
    headers = {"Authorization": f"Bearer {team.key}"}
    with httpx.Client(base_url=team.uri, headers=headers, timeout=10) as http:
        created = http.post("/api/2.0/mlflow/runs/create", json={"experiment_id": "0"})
        assert created.status_code == 200, created.text
        run_id = created.json()["run"]["info"]["run_id"]
        assert len(run_id) == 32
        points = [{"key": "m", "value": 1.0, "timestamp": 1, "step": i} for i in range(1001)]
        too_many = http.post(
            "/api/2.0/mlflow/runs/log-batch", json={"run_id": run_id, "metrics": points}
        )
        assert too_many.status_code == 400
        assert too_many.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        params = [{"key": f"p{i}", "value": "v"} for i in range(101)]
        resp = http.post(
            "/api/2.0/mlflow/runs/log-batch", json={"run_id": run_id, "params": params}
        )
        assert resp.status_code == 400
        big = http.post(
            "/api/2.0/mlflow/runs/log-batch",
            json={"run_id": run_id, "tags": [{"key": "t", "value": "x" * 1_100_000}]},
        )
        assert big.status_code == 413
        history = http.get(
            "/api/2.0/mlflow/metrics/get-history", params={"run_id": run_id, "metric_key": "m"}
        )
        assert history.json() == {"metrics": []}


def test_twenty_concurrent_experiments_for_the_last_slot_make_one(
    factory: Factory, live: Live
) -> None:
    tenant = factory.tenant("Acme")
    _limit(factory, tenant.org_id, "experiments", 10)
    team = team_of(factory, live, tenant)
    headers = {"Authorization": f"Bearer {team.key}"}
    with httpx.Client(base_url=team.uri, headers=headers, timeout=30) as http:
        for n in range(9):
            resp = http.post("/api/2.0/mlflow/experiments/create", json={"name": f"e{n}"})
            assert resp.status_code == 200, resp.text
    statuses: list[int] = []
    start = threading.Barrier(20)

    def create(n: int) -> None:
        with httpx.Client(base_url=team.uri, headers=headers, timeout=60) as http:
            start.wait()
            resp = http.post("/api/2.0/mlflow/experiments/create", json={"name": f"last{n}"})
            statuses.append(resp.status_code)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [402] * 19
