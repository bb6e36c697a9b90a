"""HTTP routes of the model registry and experiment tracking on Tenantry's own API. Each
mutating route's `name` is the audit action it records; logging metrics records none (usage:
the request is metered as an API call, and the points are the record).

The same data is served to MLflow's client at each team's tracking URI (`api/mlflow.py`).
Files stream both ways: an upload's body is read a chunk at a time into the artifact store
(`http.turns.BodyReader`), a download is answered a chunk at a time.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from enum import Enum
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.http.auth import BearerDep, TeamScope, authenticate_request, team_scope
from tenantry.http.body import JsonBodyRoute
from tenantry.http.state import app_state
from tenantry.http.turns import BodyReader, commit, in_turn, run_unit, turn_gate
from tenantry.kit.context import Ctx
from tenantry.kit.errors import NotFound
from tenantry.ml import artifacts, registry, tracking
from tenantry.ml.common import TeamIn, max_results, now_ms
from tenantry.ml.models import Experiment, ModelVersion, RegisteredModel
from tenantry.ml.schemas import (
    AliasIn,
    ArtifactOut,
    CompareOut,
    ExperimentCreateIn,
    ExperimentOut,
    ExperimentUpdateIn,
    HyperparametersIn,
    MetricHistoryOut,
    MetricPoint,
    MetricsIn,
    ModelCreateIn,
    ModelOut,
    ModelPage,
    ModelUpdateIn,
    ReadOut,
    RunCreateIn,
    RunOut,
    RunPage,
    RunUpdateIn,
    TagsIn,
    UploadedOut,
    VersionCreateIn,
    VersionOut,
    VersionUpdateIn,
)
from tenantry.tenancy import scope as tenancy
from tenantry.throttling.limiter import throttle_request

router = APIRouter(prefix="/api/v1", route_class=JsonBodyRoute)

ExperimentsRead = Annotated[TeamScope, Depends(team_scope(Permission.EXPERIMENT_READ))]
ExperimentsCreate = Annotated[TeamScope, Depends(team_scope(Permission.EXPERIMENT_CREATE))]
ExperimentsUpdate = Annotated[TeamScope, Depends(team_scope(Permission.EXPERIMENT_UPDATE))]
ExperimentsDelete = Annotated[TeamScope, Depends(team_scope(Permission.EXPERIMENT_DELETE))]
ModelsRead = Annotated[TeamScope, Depends(team_scope(Permission.MODEL_READ))]
ModelsCreate = Annotated[TeamScope, Depends(team_scope(Permission.MODEL_CREATE))]
# One model's routes: the permission is checked on the model, which a grant may open alone.
OneModel = Annotated[TeamScope, Depends(team_scope(None))]
Filter = Annotated[str | None, Query(max_length=2000)]
OrderBy = Annotated[list[str] | None, Query(max_length=20)]
Token = Annotated[str | None, Query(max_length=200)]
Limit = Annotated[int, Query(ge=1, le=1000)]
# A file's path in its folder (`model/weights.bin`).
FilePath = Annotated[str, Query(min_length=1, max_length=1000)]

# Uploads bound their bodies themselves (the storage quota, `max_artifact_bytes`), not by the
# API's body limit (`kit.limits.BodyLimit`).
UPLOAD_PATHS = (
    r"^/api/v1/teams/[^/]+/(experiments/[^/]+/runs/[^/]+/artifact"
    r"|models/[^/]+/versions/[^/]+/file)$"
)

TAGS_EXPERIMENTS: list[str | Enum] = ["experiments"]
TAGS_MODELS: list[str | Enum] = ["models"]


def _team(scope: TeamScope) -> TeamIn:
    return TeamIn(scope.team.id, scope.team.org_id)


def _experiment_out(scope: TeamScope, found: Experiment) -> ExperimentOut:
    tags = tracking.experiment_tags(scope.ctx.session, [found.id])[found.id]
    return ExperimentOut(
        id=found.id,
        name=found.name,
        description=found.description,
        is_default=found.is_default,
        lifecycle_stage=found.lifecycle_stage,
        tags=tags,
        created_ms=found.created_ms,
        updated_ms=found.updated_ms,
        tracking_uri_path=f"/mlflow/{scope.team.org_id}/{scope.team.id}",
    )


def _run_out(view: tracking.RunView) -> RunOut:
    run = view.run
    return RunOut(
        id=run.id,
        experiment_id=run.experiment_id,
        name=run.name,
        status=run.status.lower(),
        start_ms=run.start_ms,
        end_ms=run.end_ms,
        lifecycle_stage=run.lifecycle_stage,
        hyperparameters=view.params,
        tags=view.tags,
        metrics={
            k: MetricPoint(key=k, value=v, step=s, timestamp_ms=t) for k, v, t, s in view.metrics
        },
        artifact_uri=f"mlflow-artifacts:/{run.experiment_id}/{run.id}/artifacts",
    )


def _run_in(scope: TeamScope, experiment: str, run: str) -> tracking.RunView:
    view = tracking.get_run(scope.ctx.session, scope.principal, _team(scope), run)
    if view.run.experiment_id != experiment:
        raise NotFound(f"Run {run!r} not found")
    return view


# ---- experiments ----


@router.post(
    "/teams/{team}/experiments",
    name="experiment.created",
    status_code=201,
    response_model=ExperimentOut,
    tags=TAGS_EXPERIMENTS,
)
def create_experiment(body: ExperimentCreateIn, scope: ExperimentsCreate) -> Response:
    """A new experiment of the team (402 when the plan's `experiments` are all used)."""
    found = tracking.create_experiment(
        scope.ctx,
        scope.principal,
        _team(scope),
        name=body.name,
        description=body.description,
        tags=body.tags,
    )
    return scope.ctx.done(_experiment_out(scope, found), status=201)


@router.get("/teams/{team}/experiments", response_model=list[ExperimentOut], tags=TAGS_EXPERIMENTS)
def list_experiments(
    scope: ExperimentsRead,
    filter: Filter = None,
    order_by: OrderBy = None,
    view: Annotated[str, Query(pattern="^(ACTIVE_ONLY|DELETED_ONLY|ALL)$")] = "ACTIVE_ONLY",
    limit: Limit = 100,
) -> list[ExperimentOut]:
    """The team's experiments; `filter` in MLflow's search language (`name LIKE 'exp%'`)."""
    found = tracking.search_experiments(
        scope.ctx.session,
        scope.principal,
        _team(scope),
        view_type=view,
        filter_text=filter,
        order_by=order_by,
        limit=limit,
    )
    return [_experiment_out(scope, e) for e in found.items]


@router.get(
    "/teams/{team}/experiments/{experiment}", response_model=ExperimentOut, tags=TAGS_EXPERIMENTS
)
def show_experiment(experiment: str, scope: ExperimentsRead) -> ExperimentOut:
    found = tracking.experiment(scope.ctx.session, scope.principal, _team(scope), experiment)
    return _experiment_out(scope, found)


@router.patch(
    "/teams/{team}/experiments/{experiment}",
    name="experiment.updated",
    response_model=ExperimentOut,
    tags=TAGS_EXPERIMENTS,
)
def update_experiment(
    experiment: str, body: ExperimentUpdateIn, scope: ExperimentsUpdate
) -> Response:
    found = tracking.update_experiment(
        scope.ctx,
        scope.principal,
        _team(scope),
        experiment,
        name=body.name,
        description=body.description,
    )
    return scope.ctx.done(_experiment_out(scope, found))


@router.delete(
    "/teams/{team}/experiments/{experiment}",
    name="experiment.deleted",
    status_code=204,
    tags=TAGS_EXPERIMENTS,
)
def delete_experiment(experiment: str, request: Request, scope: ExperimentsDelete) -> Response:
    """Delete the experiment with its runs and their files, for good."""
    team = _team(scope)
    folders = tracking.delete_experiment(scope.ctx, scope.principal, team, experiment)
    artifacts.forget(scope.ctx, scope.principal, team, folders, app_state(request).artifacts)
    return scope.ctx.done(None, status=204)


# ---- runs ----


@router.post(
    "/teams/{team}/experiments/{experiment}/runs",
    name="run.created",
    status_code=201,
    response_model=RunOut,
    tags=TAGS_EXPERIMENTS,
)
def create_run(experiment: str, body: RunCreateIn, scope: ExperimentsCreate) -> Response:
    """Start a run (status `running`), with its hyperparameters and tags if given."""
    team = _team(scope)
    found = tracking.create_run(
        scope.ctx,
        scope.principal,
        team,
        experiment_id=experiment,
        name=body.name,
        tags=body.tags,
        params={k: _text(v) for k, v in body.hyperparameters.items()},
    )
    view = tracking.views(scope.ctx.session, [found])[0]
    return scope.ctx.done(_run_out(view), status=201)


def _text(value: str | int | float | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@router.get(
    "/teams/{team}/experiments/{experiment}/runs", response_model=RunPage, tags=TAGS_EXPERIMENTS
)
def search_runs(
    experiment: str,
    scope: ExperimentsRead,
    filter: Filter = None,
    order_by: OrderBy = None,
    limit: Limit = 100,
    page_token: Token = None,
) -> RunPage:
    """The experiment's runs: `filter` as `metrics.loss < 0.6 and params.optimizer = 'adam'`,
    `order_by` as `metrics.loss ASC` (repeatable)."""
    found = tracking.search_runs(
        scope.ctx.session,
        scope.principal,
        _team(scope),
        experiment_ids=[experiment],
        filter_text=filter,
        order_by=order_by,
        limit=limit,
        page_token=page_token,
    )
    return RunPage(items=[_run_out(v) for v in found.items], next_page_token=found.next_page_token)


@router.get(
    "/teams/{team}/experiments/{experiment}/compare",
    response_model=CompareOut,
    tags=TAGS_EXPERIMENTS,
)
def compare_runs(
    experiment: str,
    scope: ExperimentsRead,
    run: Annotated[list[str] | None, Query(max_length=50)] = None,
) -> CompareOut:
    """Runs side by side (`run` repeated; by default the experiment's 20 latest): each run's
    hyperparameters and latest metrics, and the union of their names."""
    if run:
        views = [_run_in(scope, experiment, r) for r in run]
    else:
        latest = tracking.search_runs(
            scope.ctx.session, scope.principal, _team(scope), experiment_ids=[experiment], limit=20
        )
        views = list(latest.items)
    return CompareOut(
        runs=[_run_out(v) for v in views],
        hyperparameters=sorted({k for v in views for k in v.params}),
        metrics=sorted({p[0] for v in views for p in v.metrics}),
    )


@router.get(
    "/teams/{team}/experiments/{experiment}/runs/{run}",
    response_model=RunOut,
    tags=TAGS_EXPERIMENTS,
)
def show_run(experiment: str, run: str, scope: ExperimentsRead) -> RunOut:
    return _run_out(_run_in(scope, experiment, run))


@router.patch(
    "/teams/{team}/experiments/{experiment}/runs/{run}",
    name="run.updated",
    response_model=RunOut,
    tags=TAGS_EXPERIMENTS,
)
def update_run(experiment: str, run: str, body: RunUpdateIn, scope: ExperimentsUpdate) -> Response:
    """Move a run through its lifecycle (running → finished, failed or killed) or rename it."""
    _run_in(scope, experiment, run)
    tracking.update_run(
        scope.ctx,
        scope.principal,
        _team(scope),
        run,
        status=body.status.upper() if body.status else None,
        name=body.name,
    )
    return scope.ctx.done(_run_out(_run_in(scope, experiment, run)))


@router.delete(
    "/teams/{team}/experiments/{experiment}/runs/{run}",
    name="run.deleted",
    status_code=204,
    tags=TAGS_EXPERIMENTS,
)
def delete_run(experiment: str, run: str, request: Request, scope: ExperimentsDelete) -> Response:
    """Delete the run and its files, for good."""
    team = _team(scope)
    _run_in(scope, experiment, run)
    folder = tracking.delete_run(scope.ctx, scope.principal, team, run)
    artifacts.forget(scope.ctx, scope.principal, team, [folder], app_state(request).artifacts)
    return scope.ctx.done(None, status=204)


@router.post(
    "/teams/{team}/experiments/{experiment}/runs/{run}/hyperparameters",
    name="run.logged",
    response_model=RunOut,
    tags=TAGS_EXPERIMENTS,
)
def log_hyperparameters(
    experiment: str, run: str, body: HyperparametersIn, scope: ExperimentsUpdate
) -> Response:
    """Hyperparameters are written once each: the same value again is fine, another is 400."""
    _run_in(scope, experiment, run)
    params = [(k, _text(v)) for k, v in body.hyperparameters.items()]
    tracking.log_batch(scope.ctx, scope.principal, _team(scope), run, params=params)
    return scope.ctx.done(_run_out(_run_in(scope, experiment, run)))


@router.post(
    "/teams/{team}/experiments/{experiment}/runs/{run}/tags",
    name="run.tagged",
    response_model=RunOut,
    tags=TAGS_EXPERIMENTS,
)
def set_run_tags(experiment: str, run: str, body: TagsIn, scope: ExperimentsUpdate) -> Response:
    """Set tags (a tag's last value wins)."""
    _run_in(scope, experiment, run)
    tracking.log_batch(
        scope.ctx,
        scope.principal,
        _team(scope),
        run,
        tags=list(body.tags.items()),
        action="run.tagged",
    )
    return scope.ctx.done(_run_out(_run_in(scope, experiment, run)))


@router.post(
    "/teams/{team}/experiments/{experiment}/runs/{run}/metrics",
    name="run.metrics_logged",
    status_code=204,
    tags=TAGS_EXPERIMENTS,
)
def log_metrics(experiment: str, run: str, body: MetricsIn, scope: ExperimentsUpdate) -> Response:
    """Append metric points at a step (`log_metrics(step=…)`); usage, not audit."""
    _run_in(scope, experiment, run)
    when = body.timestamp_ms if body.timestamp_ms is not None else now_ms(scope.ctx)
    points = [(k, float(v), when, body.step) for k, v in body.metrics.items()]
    tracking.log_batch(scope.ctx, scope.principal, _team(scope), run, metrics=points)
    return scope.ctx.done(None, status=204)


@router.get(
    "/teams/{team}/experiments/{experiment}/runs/{run}/metrics/{key}",
    response_model=MetricHistoryOut,
    tags=TAGS_EXPERIMENTS,
)
def metric_history(
    experiment: str,
    run: str,
    key: str,
    scope: ExperimentsRead,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    page_token: Token = None,
) -> MetricHistoryOut:
    """Every point of one metric, by step."""
    _run_in(scope, experiment, run)
    found = tracking.metric_history(
        scope.ctx.session,
        scope.principal,
        _team(scope),
        run,
        key,
        limit=max_results(limit, 10_000, 100_000),
        page_token=page_token,
    )
    points = [MetricPoint(key=k, value=v, step=s, timestamp_ms=t) for k, v, t, s in found.items]
    return MetricHistoryOut(key=key, points=points, next_page_token=found.next_page_token)


@router.get(
    "/teams/{team}/experiments/{experiment}/runs/{run}/artifacts",
    response_model=list[ArtifactOut],
    tags=TAGS_EXPERIMENTS,
)
def list_run_artifacts(
    experiment: str,
    run: str,
    scope: ExperimentsRead,
    path: Annotated[str, Query(max_length=1000)] = "",
) -> list[ArtifactOut]:
    """The files and folders of a run (or of one of its folders)."""
    _run_in(scope, experiment, run)
    folder = f"{experiment}/{run}/artifacts" + (f"/{path.strip('/')}" if path.strip("/") else "")
    entries = artifacts.listing(scope.ctx.session, scope.principal, _team(scope), folder)
    return [
        ArtifactOut(path=e.path, is_dir=e.is_dir, size=e.size, sha256=e.sha256) for e in entries
    ]


# ---- files: streamed, in units of work of their own ----


def _enter(request: Request, ctx: Ctx, team_ref: str) -> tuple[Principal, TeamIn]:
    """What `team_scope` does, for the streaming routes' own units of work."""
    principal = authenticate_request(request, ctx)
    found = tenancy.resolve_team(ctx.session, principal, team_ref)
    request.state.audit_org_id, request.state.audit_team_id = found.org_id, found.id
    throttle_request(request, ctx, principal, org_id=found.org_id, team_id=found.id)
    return principal, TeamIn(found.id, found.org_id)


async def _upload(request: Request, team_ref: str, path: str, *, action: str) -> Response:
    """Check, stream into the store, record, then move into place (`ml.artifacts`)."""
    state = app_state(request)
    max_bytes = state.settings.max_artifact_bytes

    def enter(ctx: Ctx) -> tuple[Principal, TeamIn]:
        return _enter(request, ctx, team_ref)

    def check(ctx: Ctx) -> tuple[TeamIn, artifacts.UploadPlan]:
        principal, team = enter(ctx)
        plan = artifacts.check_upload(
            ctx.session, principal, team, path, max_bytes=max_bytes, now=ctx.clock.now()
        )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > plan.cap:
            raise artifacts.too_large(plan, max_bytes)
        return team, plan

    team, plan = await in_turn(request, check, write=False, lane="ml.upload", action=None)
    reader = BodyReader(request)

    def stream() -> tuple[str, int, str]:
        measured = artifacts.Measured(reader, plan.cap)
        try:
            staged = state.artifacts.stage(measured)
        except artifacts.TooLarge:
            raise artifacts.too_large(plan, max_bytes) from None
        return staged, measured.size, measured.sha256

    staged, size, sha256 = await anyio.to_thread.run_sync(stream)

    def record(ctx: Ctx) -> None:
        principal, where = enter(ctx)
        artifacts.record_upload(
            ctx, principal, where, plan, size=size, sha256=sha256, action=action
        )
        commit(ctx)

    try:
        async with turn_gate(request, write=True):
            await anyio.to_thread.run_sync(run_unit, request, record, True, action)
    except BaseException:
        await anyio.to_thread.run_sync(state.artifacts.discard, staged)
        raise
    key = artifacts.storage_key(team, plan.path)
    await anyio.to_thread.run_sync(state.artifacts.promote, staged, key)
    out = UploadedOut(path=plan.path, size=size, sha256=sha256)
    return Response(out.model_dump_json(), status_code=201, media_type="application/json")


async def _download(
    request: Request, team_ref: str, path: str, *, version: tuple[str, int] | None = None
) -> Response:
    state = app_state(request)

    def find(ctx: Ctx) -> tuple[TeamIn, int, str]:
        principal, team = _enter(request, ctx, team_ref)
        item = artifacts.artifact(ctx.session, principal, team, path)
        if version is not None:  # a model version's file: counted as a download
            _, row = registry.version(ctx.session, principal, team, version[0], version[1])
            registry.note_read(
                lambda: state.db.session(write=True),
                principal,
                row,
                kind="download",
                at_ms=now_ms(ctx),
            )
        return team, item.size, item.sha256

    team, size, sha256 = await in_turn(request, find, write=False, lane="ml.download", action=None)
    try:
        chunks: Iterator[bytes] = await anyio.to_thread.run_sync(
            state.artifacts.read, artifacts.storage_key(team, artifacts.check_path(path))
        )
    except FileNotFoundError:
        raise NotFound(f"No file at {path!r}") from None
    media = mimetypes.guess_type(path)[0] or "application/octet-stream"
    headers = {"Content-Length": str(size), "X-Checksum-SHA256": sha256}
    return StreamingResponse(chunks, media_type=media, headers=headers)


@router.put(
    "/teams/{team}/experiments/{experiment}/runs/{run}/artifact",
    name="artifact.uploaded",
    status_code=201,
    response_model=UploadedOut,
    tags=TAGS_EXPERIMENTS,
)
async def upload_run_artifact(
    team: str, experiment: str, run: str, path: FilePath, request: Request, _bearer: BearerDep
) -> Response:
    """Store a file of the run (the body, as bytes), with its sha256; counted against the
    org's `storage_gb`."""
    full = f"{experiment}/{run}/artifacts/{path}"
    return await _upload(request, team, full, action="artifact.uploaded")


@router.get(
    "/teams/{team}/experiments/{experiment}/runs/{run}/artifact",
    tags=TAGS_EXPERIMENTS,
    response_class=StreamingResponse,
)
async def download_run_artifact(
    team: str, experiment: str, run: str, path: FilePath, request: Request, _bearer: BearerDep
) -> Response:
    """A file of the run, streamed."""
    return await _download(request, team, f"{experiment}/{run}/artifacts/{path}")


# ---- registered models ----


def _model_out(session: Any, view: registry.ModelView) -> ModelOut:
    found: RegisteredModel = view.model
    return ModelOut(
        id=found.id,
        name=found.name,
        description=found.description,
        metadata=found.details or {},
        tags=view.tags,
        aliases=view.aliases,
        latest_version=found.last_version or None,
        created_by=found.created_by,
        created_ms=found.created_ms,
        updated_ms=found.updated_ms,
    )


def _one_model(scope: TeamScope, found: RegisteredModel) -> ModelOut:
    return _model_out(scope.ctx.session, registry.model_views(scope.ctx.session, [found])[0])


def _version_out(session: Any, name: str, row: ModelVersion) -> VersionOut:
    view = registry.version_views(session, [(name, row)])[0]
    return VersionOut(
        version=row.version,
        label=row.label,
        description=row.description,
        source=row.source,
        run_id=row.run_id,
        logged_model_id=row.logged_model_id,
        framework=row.framework,
        stage=row.stage,
        status=row.status,
        aliases=view.aliases,
        tags=view.tags,
        downloads=row.downloads,
        views=row.views,
        created_by=row.created_by,
        created_ms=row.created_ms,
        updated_ms=row.updated_ms,
    )


@router.post(
    "/teams/{team}/models",
    name="model.created",
    status_code=201,
    response_model=ModelOut,
    tags=TAGS_MODELS,
)
def register_model(body: ModelCreateIn, scope: ModelsCreate) -> Response:
    """Register a model (402 when the plan's `models` are all used)."""
    found = registry.register_model(
        scope.ctx,
        scope.principal,
        _team(scope),
        name=body.name,
        description=body.description,
        tags=body.tags,
        details=body.metadata,
    )
    return scope.ctx.done(_one_model(scope, found), status=201)


@router.get("/teams/{team}/models", response_model=ModelPage, tags=TAGS_MODELS)
def list_models(
    scope: ModelsRead,
    filter: Filter = None,
    order_by: OrderBy = None,
    limit: Limit = 100,
    page_token: Token = None,
) -> ModelPage:
    """The team's registered models; `filter` as `name LIKE 'fraud%'` or `tags.owner = 'a'`."""
    found = registry.search_models(
        scope.ctx.session,
        scope.principal,
        _team(scope),
        filter_text=filter,
        order_by=order_by,
        limit=limit,
        page_token=page_token,
    )
    views = registry.model_views(scope.ctx.session, found.items)
    return ModelPage(
        items=[_model_out(scope.ctx.session, v) for v in views],
        next_page_token=found.next_page_token,
    )


@router.get("/teams/{team}/models/{model}", response_model=ModelOut, tags=TAGS_MODELS)
def show_model(model: str, scope: OneModel) -> ModelOut:
    """A model by id (`mdl_…`) or name."""
    return _one_model(
        scope, registry.model(scope.ctx.session, scope.principal, _team(scope), model)
    )


@router.patch(
    "/teams/{team}/models/{model}",
    name="model.updated",
    response_model=ModelOut,
    tags=TAGS_MODELS,
)
def update_model(model: str, body: ModelUpdateIn, scope: OneModel) -> Response:
    found = registry.update_model(
        scope.ctx,
        scope.principal,
        _team(scope),
        model,
        name=body.name,
        description=body.description,
        details=body.metadata,
    )
    return scope.ctx.done(_one_model(scope, found))


@router.delete(
    "/teams/{team}/models/{model}", name="model.deleted", status_code=204, tags=TAGS_MODELS
)
def delete_model(model: str, request: Request, scope: OneModel) -> Response:
    """Delete the model, its versions and their uploaded files."""
    team = _team(scope)
    folder = registry.delete_model(scope.ctx, scope.principal, team, model)
    artifacts.forget(scope.ctx, scope.principal, team, [folder], app_state(request).artifacts)
    return scope.ctx.done(None, status=204)


@router.post(
    "/teams/{team}/models/{model}/versions",
    name="model_version.created",
    status_code=201,
    response_model=VersionOut,
    tags=TAGS_MODELS,
)
def create_version(model: str, body: VersionCreateIn, scope: OneModel) -> Response:
    """A new version (the next integer), from a run (`run_id`, `source` as `runs:/…`) or for
    files uploaded to it next; `label` is an optional semantic version."""
    found, row = registry.create_version(
        scope.ctx,
        scope.principal,
        _team(scope),
        model,
        source=body.source,
        run_id=body.run_id,
        description=body.description,
        tags=body.tags,
        label=body.label,
        framework=body.framework,
    )
    return scope.ctx.done(_version_out(scope.ctx.session, found.name, row), status=201)


@router.get(
    "/teams/{team}/models/{model}/versions", response_model=list[VersionOut], tags=TAGS_MODELS
)
def list_versions(model: str, scope: OneModel) -> list[VersionOut]:
    found, rows = registry.versions(scope.ctx.session, scope.principal, _team(scope), model)
    return [_version_out(scope.ctx.session, found.name, r) for r in rows]


@router.get(
    "/teams/{team}/models/{model}/versions/{version}",
    response_model=VersionOut,
    tags=TAGS_MODELS,
)
def show_version(model: str, version: int, request: Request, scope: OneModel) -> VersionOut:
    """One version (counted as a view of it, with who and when)."""
    found, row = registry.version(scope.ctx.session, scope.principal, _team(scope), model, version)
    db = app_state(request).db
    registry.note_read(
        lambda: db.session(write=True),
        scope.principal,
        row,
        kind="view",
        at_ms=now_ms(scope.ctx),
    )
    out = _version_out(scope.ctx.session, found.name, row)
    out.views += 1  # this view, counted in a transaction of its own after this one began
    return out


@router.patch(
    "/teams/{team}/models/{model}/versions/{version}",
    name="model_version.updated",
    response_model=VersionOut,
    tags=TAGS_MODELS,
)
def update_version(model: str, version: int, body: VersionUpdateIn, scope: OneModel) -> Response:
    """Move a version between stages, or change its description or label."""
    found, row = registry.update_version(
        scope.ctx,
        scope.principal,
        _team(scope),
        model,
        version,
        description=body.description,
        stage=body.stage,
        label=body.label,
    )
    return scope.ctx.done(_version_out(scope.ctx.session, found.name, row))


@router.delete(
    "/teams/{team}/models/{model}/versions/{version}",
    name="model_version.deleted",
    status_code=204,
    tags=TAGS_MODELS,
)
def delete_version(model: str, version: int, request: Request, scope: OneModel) -> Response:
    """Delete one version and its uploaded files."""
    team = _team(scope)
    folder = registry.delete_version(scope.ctx, scope.principal, team, model, version)
    artifacts.forget(scope.ctx, scope.principal, team, [folder], app_state(request).artifacts)
    return scope.ctx.done(None, status=204)


@router.get(
    "/teams/{team}/models/{model}/versions/{version}/reads",
    response_model=list[ReadOut],
    tags=TAGS_MODELS,
)
def version_reads(model: str, version: int, scope: OneModel, limit: Limit = 100) -> list[ReadOut]:
    """Who downloaded or viewed the version, and when, newest first."""
    rows = registry.reads(
        scope.ctx.session, scope.principal, _team(scope), model, version, limit=limit
    )
    return [
        ReadOut(kind=r.kind, actor_type=r.actor_type, actor_id=r.actor_id, at_ms=r.at_ms)
        for r in rows
    ]


@router.get(
    "/teams/{team}/models/{model}/versions/{version}/files",
    response_model=list[ArtifactOut],
    tags=TAGS_MODELS,
)
def list_version_files(model: str, version: int, scope: OneModel) -> list[ArtifactOut]:
    """The version's files: those uploaded to it, or its run's or logged model's."""
    team = _team(scope)
    _, row = registry.version(scope.ctx.session, scope.principal, team, model, version)
    root = registry.artifact_root(scope.ctx.session, team, row)
    found = artifacts.files_under(scope.ctx.session, team, root)
    return [
        ArtifactOut(path=a.path[len(root) + 1 :], is_dir=False, size=a.size, sha256=a.sha256)
        for a in found
    ]


@router.put(
    "/teams/{team}/models/{model}/versions/{version}/file",
    name="model_file.uploaded",
    status_code=201,
    response_model=UploadedOut,
    tags=TAGS_MODELS,
)
async def upload_version_file(
    team: str, model: str, version: int, path: FilePath, request: Request, _bearer: BearerDep
) -> Response:
    """Store a file of the version (the body, as bytes), with its sha256; counted against the
    org's `storage_gb`. `model` is the model's id."""
    full = f"{registry.REGISTRY_ROOT}/{model}/{version}/{path}"
    return await _upload(request, team, full, action="model_file.uploaded")


@router.get(
    "/teams/{team}/models/{model}/versions/{version}/file",
    tags=TAGS_MODELS,
    response_class=StreamingResponse,
)
async def download_version_file(
    team: str, model: str, version: int, path: FilePath, request: Request, _bearer: BearerDep
) -> Response:
    """A file of the version, streamed, and counted as a download (who and when). `model` is
    the model's id."""
    full = f"{registry.REGISTRY_ROOT}/{model}/{version}/{path}"
    return await _download(request, team, full, version=(model, version))


@router.put(
    "/teams/{team}/models/{model}/aliases/{alias}",
    name="model_alias.set",
    response_model=ModelOut,
    tags=TAGS_MODELS,
)
def set_alias(model: str, alias: str, body: AliasIn, scope: OneModel) -> Response:
    """Point an alias (`champion`) at a version."""
    registry.set_alias(scope.ctx, scope.principal, _team(scope), model, alias, body.version)
    found = registry.model(scope.ctx.session, scope.principal, _team(scope), model)
    return scope.ctx.done(_one_model(scope, found))


@router.delete(
    "/teams/{team}/models/{model}/aliases/{alias}",
    name="model_alias.deleted",
    status_code=204,
    tags=TAGS_MODELS,
)
def delete_alias(model: str, alias: str, scope: OneModel) -> Response:
    registry.delete_alias(scope.ctx, scope.principal, _team(scope), model, alias)
    return scope.ctx.done(None, status=204)
