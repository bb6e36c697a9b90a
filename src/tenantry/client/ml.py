"""SDK calls of the model registry and experiment tracking (mixed into `tenantry.client.api.Api`);
see that module's conventions.

Flat calls (`create_experiment`, `start_run`, `log_metrics`, `register_model`, …) and the same
calls by topic, as seed 000's shapes have them: `client.experiments.log_hyperparameters(…)`,
`client.experiments.log_metrics(…, step=3)`, `client.experiments.update_status(…)`,
`client.models.register(…)`, `client.models.download(…)`. `experiment`, `run` and `model` are
ids (a model may also be named by its name); files are sent as bytes (or, on the sync client,
an open binary file, streamed). Creating past the plan's `models` or `experiments` raises
`PaymentRequired`, whose body names the next plan.

Training code that already speaks MLflow keeps doing so: point it at the team's tracking URI
(`tenantry mlflow uri TEAM`) instead.
"""

from __future__ import annotations

from typing import IO, Any

from tenantry.client._calls import (
    API,
    Call,
    Download,
    download,
    endpoint,
    fields,
    model,
    models,
    nothing,
    segment,
)
from tenantry.client.models import Result

# ---- results ----


class Experiment(Result):
    id: str
    name: str
    description: str
    is_default: bool
    lifecycle_stage: str
    tags: dict[str, str]
    created_ms: int
    updated_ms: int
    tracking_uri_path: str


class MetricPoint(Result):
    key: str
    value: float
    step: int
    timestamp_ms: int


class Run(Result):
    id: str
    experiment_id: str
    name: str
    status: str
    start_ms: int
    end_ms: int | None = None
    lifecycle_stage: str
    hyperparameters: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, MetricPoint]
    artifact_uri: str


class RunPage(Result):
    items: list[Run]
    next_page_token: str | None = None


class Comparison(Result):
    runs: list[Run]
    hyperparameters: list[str]
    metrics: list[str]


class MetricHistory(Result):
    key: str
    points: list[MetricPoint]
    next_page_token: str | None = None


class ArtifactFile(Result):
    path: str
    is_dir: bool
    size: int | None = None
    sha256: str | None = None


class Uploaded(Result):
    path: str
    size: int
    sha256: str


class RegisteredModel(Result):
    id: str
    name: str
    description: str
    metadata: dict[str, Any]
    tags: dict[str, str]
    aliases: dict[str, int]
    latest_version: int | None = None
    created_by: str | None = None
    created_ms: int
    updated_ms: int


class ModelPage(Result):
    items: list[RegisteredModel]
    next_page_token: str | None = None


class ModelVersion(Result):
    version: int
    label: str | None = None
    description: str
    source: str
    run_id: str | None = None
    logged_model_id: str | None = None
    framework: str
    stage: str
    status: str
    aliases: list[str]
    tags: dict[str, str]
    downloads: int
    views: int
    created_by: str | None = None
    created_ms: int
    updated_ms: int


class VersionRead(Result):
    kind: str
    actor_type: str
    actor_id: str
    at_ms: int


# ---- calls ----


def _team(team: str) -> str:
    return f"{API}/teams/{segment(team)}"


def _run(team: str, experiment: str, run: str) -> str:
    return f"{_team(team)}/experiments/{segment(experiment)}/runs/{segment(run)}"


def _version(team: str, model_ref: str, version: int) -> str:
    return f"{_team(team)}/models/{segment(model_ref)}/versions/{version}"


def _query(**values: Any) -> dict[str, str]:
    return {k: str(v) for k, v in fields(**values).items()}


class MlCalls:
    """Routes of the registry and tracking, described once for both clients."""

    # experiments and runs

    @endpoint
    def create_experiment(
        self,
        team: str,
        name: str,
        *,
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> Call[Experiment]:
        body = fields(name=name, description=description, tags=tags)
        return Call("POST", f"{_team(team)}/experiments", model(Experiment), body=body)

    @endpoint
    def list_experiments(
        self, team: str, *, filter: str | None = None, limit: int | None = None
    ) -> Call[list[Experiment]]:
        """The team's experiments; `filter` in MLflow's search language (`name LIKE 'a%'`)."""
        params = _query(filter=filter, limit=limit)
        return Call("GET", f"{_team(team)}/experiments", models(Experiment), params=params)

    @endpoint
    def get_experiment(self, team: str, experiment: str) -> Call[Experiment]:
        path = f"{_team(team)}/experiments/{segment(experiment)}"
        return Call("GET", path, model(Experiment))

    @endpoint
    def update_experiment(
        self,
        team: str,
        experiment: str,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> Call[Experiment]:
        """Rename the experiment or change its description (what is not given stays)."""
        path = f"{_team(team)}/experiments/{segment(experiment)}"
        return Call(
            "PATCH", path, model(Experiment), body=fields(name=name, description=description)
        )

    @endpoint
    def delete_experiment(self, team: str, experiment: str) -> Call[None]:
        """Delete the experiment, its runs and their files, for good."""
        path = f"{_team(team)}/experiments/{segment(experiment)}"
        return Call("DELETE", path, nothing)

    @endpoint
    def start_run(
        self,
        team: str,
        experiment: str,
        *,
        name: str | None = None,
        hyperparameters: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
    ) -> Call[Run]:
        """A new run (status `running`), with its hyperparameters and tags if given."""
        body = fields(name=name, hyperparameters=hyperparameters, tags=tags)
        path = f"{_team(team)}/experiments/{segment(experiment)}/runs"
        return Call("POST", path, model(Run), body=body)

    @endpoint
    def get_run(self, team: str, experiment: str, run: str) -> Call[Run]:
        return Call("GET", _run(team, experiment, run), model(Run))

    @endpoint
    def search_runs(
        self,
        team: str,
        experiment: str,
        *,
        filter: str | None = None,
        order_by: list[str] | None = None,
        limit: int | None = None,
        page_token: str | None = None,
    ) -> Call[RunPage]:
        """Runs by MLflow's search language: `metrics.loss < 0.6 and params.opt = 'adam'`,
        ordered by clauses such as `metrics.loss ASC`."""
        params: dict[str, Any] = _query(filter=filter, limit=limit, page_token=page_token)
        if order_by:
            params["order_by"] = order_by
        path = f"{_team(team)}/experiments/{segment(experiment)}/runs"
        return Call("GET", path, model(RunPage), params=params)

    @endpoint
    def compare_runs(
        self, team: str, experiment: str, runs: list[str] | None = None
    ) -> Call[Comparison]:
        """Runs side by side (by default the experiment's 20 latest)."""
        params: dict[str, Any] = {"run": runs} if runs else {}
        path = f"{_team(team)}/experiments/{segment(experiment)}/compare"
        return Call("GET", path, model(Comparison), params=params)

    @endpoint
    def log_hyperparameters(
        self, team: str, experiment: str, run: str, hyperparameters: dict[str, Any]
    ) -> Call[Run]:
        """Written once each: the same value again is fine, another is refused (400)."""
        body = {"hyperparameters": hyperparameters}
        path = f"{_run(team, experiment, run)}/hyperparameters"
        return Call("POST", path, model(Run), body=body)

    @endpoint
    def log_metrics(
        self,
        team: str,
        experiment: str,
        run: str,
        metrics: dict[str, float],
        *,
        step: int = 0,
        timestamp_ms: int | None = None,
    ) -> Call[None]:
        """Points of each metric at `step` (appended to its history)."""
        body = fields(metrics=metrics, step=step, timestamp_ms=timestamp_ms)
        return Call("POST", f"{_run(team, experiment, run)}/metrics", nothing, body=body)

    @endpoint
    def set_run_tags(self, team: str, experiment: str, run: str, tags: dict[str, str]) -> Call[Run]:
        return Call("POST", f"{_run(team, experiment, run)}/tags", model(Run), body={"tags": tags})

    @endpoint
    def update_run_status(self, team: str, experiment: str, run: str, status: str) -> Call[Run]:
        """`running`, `finished`, `failed` or `killed`."""
        body = {"status": status}
        return Call("PATCH", _run(team, experiment, run), model(Run), body=body)

    @endpoint
    def delete_run(self, team: str, experiment: str, run: str) -> Call[None]:
        return Call("DELETE", _run(team, experiment, run), nothing)

    @endpoint
    def metric_history(
        self, team: str, experiment: str, run: str, key: str, *, limit: int | None = None
    ) -> Call[MetricHistory]:
        path = f"{_run(team, experiment, run)}/metrics/{segment(key)}"
        return Call("GET", path, model(MetricHistory), params=_query(limit=limit))

    @endpoint
    def list_run_artifacts(
        self, team: str, experiment: str, run: str, *, path: str | None = None
    ) -> Call[list[ArtifactFile]]:
        folder = f"{_run(team, experiment, run)}/artifacts"
        return Call("GET", folder, models(ArtifactFile), params=_query(path=path))

    @endpoint
    def upload_run_artifact(
        self, team: str, experiment: str, run: str, path: str, content: bytes | IO[bytes]
    ) -> Call[Uploaded]:
        """Store a file of the run; its size and sha256 come back."""
        where = f"{_run(team, experiment, run)}/artifact"
        return Call("PUT", where, model(Uploaded), params={"path": path}, content=content)

    @download
    def download_run_artifact(
        self, team: str, experiment: str, run: str, path: str, file: IO[bytes]
    ) -> Download:
        where = f"{_run(team, experiment, run)}/artifact"
        return Download(Call("GET", where, nothing, params={"path": path}), file)

    # registered models

    @endpoint
    def register_model(
        self,
        team: str,
        name: str,
        *,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Call[RegisteredModel]:
        body = fields(name=name, description=description, tags=tags, metadata=metadata)
        return Call("POST", f"{_team(team)}/models", model(RegisteredModel), body=body)

    @endpoint
    def list_models(
        self,
        team: str,
        *,
        filter: str | None = None,
        limit: int | None = None,
        page_token: str | None = None,
    ) -> Call[ModelPage]:
        params = _query(filter=filter, limit=limit, page_token=page_token)
        return Call("GET", f"{_team(team)}/models", model(ModelPage), params=params)

    @endpoint
    def get_model(self, team: str, model_ref: str) -> Call[RegisteredModel]:
        """A model by id (`mdl_…`) or name."""
        path = f"{_team(team)}/models/{segment(model_ref)}"
        return Call("GET", path, model(RegisteredModel))

    @endpoint
    def update_model(
        self,
        team: str,
        model_ref: str,
        *,
        name: str | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Call[RegisteredModel]:
        body = fields(name=name, description=description, metadata=metadata)
        path = f"{_team(team)}/models/{segment(model_ref)}"
        return Call("PATCH", path, model(RegisteredModel), body=body)

    @endpoint
    def delete_model(self, team: str, model_ref: str) -> Call[None]:
        return Call("DELETE", f"{_team(team)}/models/{segment(model_ref)}", nothing)

    @endpoint
    def create_model_version(
        self,
        team: str,
        model_ref: str,
        *,
        source: str | None = None,
        run_id: str | None = None,
        label: str | None = None,
        framework: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> Call[ModelVersion]:
        """The next version: from a run (`run_id`, `source` as `runs:/<run>/<path>`) or for
        files uploaded to it next; `label` is an optional semantic version (`1.2.0`)."""
        body = fields(
            source=source,
            run_id=run_id,
            label=label,
            framework=framework,
            description=description,
            tags=tags,
        )
        path = f"{_team(team)}/models/{segment(model_ref)}/versions"
        return Call("POST", path, model(ModelVersion), body=body)

    @endpoint
    def list_model_versions(self, team: str, model_ref: str) -> Call[list[ModelVersion]]:
        path = f"{_team(team)}/models/{segment(model_ref)}/versions"
        return Call("GET", path, models(ModelVersion))

    @endpoint
    def get_model_version(self, team: str, model_ref: str, version: int) -> Call[ModelVersion]:
        """One version (counted as a view of it)."""
        return Call("GET", _version(team, model_ref, version), model(ModelVersion))

    @endpoint
    def update_model_version(
        self,
        team: str,
        model_ref: str,
        version: int,
        *,
        stage: str | None = None,
        description: str | None = None,
        label: str | None = None,
    ) -> Call[ModelVersion]:
        body = fields(stage=stage, description=description, label=label)
        return Call("PATCH", _version(team, model_ref, version), model(ModelVersion), body=body)

    @endpoint
    def delete_model_version(self, team: str, model_ref: str, version: int) -> Call[None]:
        return Call("DELETE", _version(team, model_ref, version), nothing)

    @endpoint
    def model_version_reads(
        self, team: str, model_ref: str, version: int
    ) -> Call[list[VersionRead]]:
        """Who downloaded or viewed the version, and when, newest first."""
        return Call("GET", f"{_version(team, model_ref, version)}/reads", models(VersionRead))

    @endpoint
    def list_model_files(self, team: str, model_ref: str, version: int) -> Call[list[ArtifactFile]]:
        return Call("GET", f"{_version(team, model_ref, version)}/files", models(ArtifactFile))

    @endpoint
    def upload_model_file(
        self, team: str, model_id: str, version: int, path: str, content: bytes | IO[bytes]
    ) -> Call[Uploaded]:
        """Store a file of the version (`model_id` is the model's `mdl_…` id)."""
        where = f"{_version(team, model_id, version)}/file"
        return Call("PUT", where, model(Uploaded), params={"path": path}, content=content)

    @download
    def download_model_file(
        self, team: str, model_id: str, version: int, path: str, file: IO[bytes]
    ) -> Download:
        """A file of the version, written to `file` as it arrives (counted as a download)."""
        where = f"{_version(team, model_id, version)}/file"
        return Download(Call("GET", where, nothing, params={"path": path}), file)

    @endpoint
    def set_model_alias(
        self, team: str, model_ref: str, alias: str, version: int
    ) -> Call[RegisteredModel]:
        path = f"{_team(team)}/models/{segment(model_ref)}/aliases/{segment(alias)}"
        return Call("PUT", path, model(RegisteredModel), body={"version": version})

    @endpoint
    def delete_model_alias(self, team: str, model_ref: str, alias: str) -> Call[None]:
        path = f"{_team(team)}/models/{segment(model_ref)}/aliases/{segment(alias)}"
        return Call("DELETE", path, nothing)

    # the same calls by topic

    @property
    def experiments(self) -> Topic:
        return Topic(self, EXPERIMENT_CALLS)

    @property
    def models(self) -> Topic:
        return Topic(self, MODEL_CALLS)


EXPERIMENT_CALLS = {
    "create": "create_experiment",
    "list": "list_experiments",
    "get": "get_experiment",
    "delete": "delete_experiment",
    "start_run": "start_run",
    "get_run": "get_run",
    "search_runs": "search_runs",
    "compare": "compare_runs",
    "log_hyperparameters": "log_hyperparameters",
    "log_metrics": "log_metrics",
    "set_tags": "set_run_tags",
    "update_status": "update_run_status",
    "delete_run": "delete_run",
    "history": "metric_history",
    "artifacts": "list_run_artifacts",
    "upload_artifact": "upload_run_artifact",
    "download_artifact": "download_run_artifact",
}
MODEL_CALLS = {
    "register": "register_model",
    "list": "list_models",
    "get": "get_model",
    "update": "update_model",
    "delete": "delete_model",
    "create_version": "create_model_version",
    "versions": "list_model_versions",
    "version": "get_model_version",
    "update_version": "update_model_version",
    "delete_version": "delete_model_version",
    "reads": "model_version_reads",
    "files": "list_model_files",
    "upload": "upload_model_file",
    "download": "download_model_file",
    "set_alias": "set_model_alias",
    "delete_alias": "delete_model_alias",
}


class Topic:
    """A topic's calls under short names (`client.models.register`), each the client's own
    flat call (`client.register_model`), sync or async as the client is."""

    def __init__(self, client: object, names: dict[str, str]) -> None:
        self._client = client
        self._names = names

    def __getattr__(self, name: str) -> Any:
        target = self._names.get(name)
        if target is None:
            raise AttributeError(f"no call {name!r} here; calls: {', '.join(self._names)}")
        return getattr(self._client, target)

    def __dir__(self) -> list[str]:
        return sorted(self._names)
