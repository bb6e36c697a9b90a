"""A grant on one registered model opens that model, and only it, on both faces."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import Factory, bearer
from ml.conftest import Live, team_of


def test_a_grant_on_one_model_opens_it_alone(
    client: TestClient, factory: Factory, live: Live
) -> None:
    tenant = factory.tenant("Acme", plan="starter")
    team = f"/api/v1/teams/{tenant.team_id}"
    models = {}
    for name in ("open", "closed"):
        made = client.post(f"{team}/models", headers=tenant.headers, json={"name": name})
        assert made.status_code == 201, made.text
        models[name] = made.json()["id"]
    # an org member with no role on the team
    user_id, email, token = factory.user("analyst@example.com")
    invite = client.post(
        f"/api/v1/orgs/{tenant.org_id}/invitations",
        headers=tenant.headers,
        json={"email": email, "role": "member"},
    )
    assert invite.status_code == 201, invite.text
    accepted = client.post(
        f"/api/v1/invitations/{invite.json()['token']}/accept", headers=bearer(token)
    )
    assert accepted.status_code == 200, accepted.text
    denied = client.get(f"{team}/models/{models['open']}", headers=bearer(token))
    assert denied.status_code == 403, denied.text
    grant = client.post(
        f"{team}/grants",
        headers=tenant.headers,
        json={
            "subject": {"type": "user", "id": user_id},
            "resource": {"type": "model", "id": models["open"]},
            "role": "editor",
        },
    )
    assert grant.status_code == 201, grant.text

    opened = client.get(f"{team}/models/{models['open']}", headers=bearer(token))
    assert opened.status_code == 200, opened.text
    version = client.post(
        f"{team}/models/{models['open']}/versions", headers=bearer(token), json={"label": "1.0.0"}
    )
    assert version.status_code == 201, version.text
    closed = client.get(f"{team}/models/{models['closed']}", headers=bearer(token))
    assert closed.status_code == 403
    assert client.get(f"{team}/models", headers=bearer(token)).status_code == 403
    deleting = client.delete(f"{team}/models/{models['open']}", headers=bearer(token))
    assert deleting.status_code == 403  # editor: no model:delete

    # the same through the MLflow face, with the person's access token
    uri = team_of(factory, live, tenant).uri
    with httpx.Client(base_url=uri, headers=bearer(token), timeout=10) as http:
        got = http.get("/api/2.0/mlflow/registered-models/get", params={"name": "open"})
        assert got.status_code == 200, got.text
        other = http.get("/api/2.0/mlflow/registered-models/get", params={"name": "closed"})
        assert other.status_code == 403 and other.json()["error_code"] == "PERMISSION_DENIED"


@pytest.mark.usefixtures("mlflow_env")
def test_logged_models_through_the_client(
    factory: Factory, live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.entities import LoggedModelStatus

    import mlflow
    from ml.conftest import use
    from mlflow import MlflowClient

    use(monkeypatch, team_of(factory, live, factory.tenant("Acme")))
    experiment = mlflow.set_experiment("e")
    with mlflow.start_run() as run:
        logged = mlflow.initialize_logged_model(name="clf", source_run_id=run.info.run_id)
        client = MlflowClient()
        client.set_logged_model_tags(logged.model_id, {"stage": "candidate"})
        mlflow.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    found = client.get_logged_model(logged.model_id)
    assert found.status == LoggedModelStatus.READY and found.tags["stage"] == "candidate"
    assert found.artifact_location.endswith(f"/models/{logged.model_id}/artifacts")
    listed = client.search_logged_models([experiment.experiment_id], filter_string="name = 'clf'")
    assert [m.model_id for m in listed] == [logged.model_id]
    client.create_registered_model("clf")
    version = client.create_model_version("clf", f"models:/{logged.model_id}")
    assert version.version == "1" and version.run_id == run.info.run_id
