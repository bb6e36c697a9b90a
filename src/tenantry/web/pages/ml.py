"""A team's model registry and experiment tracking: registered models, their versions (stage,
aliases, the run each came from, who downloaded or viewed it), experiments, their runs as a
sortable table of params and metrics, one run's metrics charted over steps and its files, and
runs compared side by side.

Every page reads through the services the API's routes use (`ml.registry`, `ml.tracking`,
`ml.artifacts`), with the same permissions: a model's pages are authorized on the model (a
grant may open one model alone), as the API's one-model routes are. Each changing route's
`name` is the audit action of the API's route of the same change.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.responses import Response

from tenantry.authz.catalog import Permission
from tenantry.authz.engine import Resource
from tenantry.authz.service import authorize_resource
from tenantry.http.state import app_state
from tenantry.identity import repository as identity_repository
from tenantry.kit.errors import Forbidden, NotFound, Problem
from tenantry.ml import artifacts, registry, tracking
from tenantry.ml.common import TeamIn, now_ms
from tenantry.ml.models import ModelVersion, RegisteredModel
from tenantry.ml.registry import STAGES
from tenantry.tenancy import teams
from tenantry.web.forms import FormState
from tenantry.web.pages import changed, every, moved, page_router
from tenantry.web.templating import render
from tenantry.web.visit import Visit, org_page, team_page

router = page_router()

OrgMember = Annotated[Visit, Depends(org_page(None))]
ModelsRead = Annotated[Visit, Depends(team_page(Permission.MODEL_READ))]
# One model's pages: the permission is checked on the model itself, as the API's routes do.
OneModel = Annotated[Visit, Depends(team_page(None))]
ExperimentsRead = Annotated[Visit, Depends(team_page(Permission.EXPERIMENT_READ))]
ExperimentsDelete = Annotated[Visit, Depends(team_page(Permission.EXPERIMENT_DELETE))]
FilePath = Annotated[str, Query(min_length=1, max_length=1000)]

# A page lists at most this many models, runs or reads; the API pages through the rest.
ROWS = 1000
STATUSES = [
    ("", "Any status"),
    ("running", "Running"),
    ("finished", "Finished"),
    ("failed", "Failed"),
    ("killed", "Killed"),
]
# Columns a runs table may be sorted by besides its params and metrics.
RUN_ATTRIBUTES = frozenset({"attributes.start_time", "attributes.run_name"})


def _team(visit: Visit) -> TeamIn:
    return TeamIn(visit.current_team.id, visit.current_team.org_id)


def _base(visit: Visit) -> str:
    return f"/orgs/{visit.current_org.slug}/teams/{visit.current_team.id}"


def _context(visit: Visit, **more: Any) -> dict[str, Any]:
    return {
        "visit": visit,
        "org": visit.current_org,
        "team": visit.current_team,
        "base": _base(visit),
        **more,
    }


def when_ms(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


# ---- where a person finds them: the org's teams ----


@router.get("/orgs/{org}/ml")
def ml_teams(request: Request, visit: OrgMember) -> Response:
    org = visit.current_org
    rows = every(lambda page: teams.list_teams(visit.ctx.session, visit.principal, org, page))
    shown = [
        {
            "team": t,
            "models": visit.can(Permission.MODEL_READ, t.id),
            "experiments": visit.can(Permission.EXPERIMENT_READ, t.id),
        }
        for t in sorted(rows, key=lambda t: t.name.lower())
    ]
    context = {
        "visit": visit,
        "org": org,
        "teams": [r for r in shown if r["models"] or r["experiments"]],
    }
    return render(request, "ml/teams.html", context)


# ---- registered models ----


def _all_models(visit: Visit) -> list[RegisteredModel]:
    found: list[RegisteredModel] = []
    token: str | None = None
    while len(found) < ROWS:
        page = registry.search_models(
            visit.ctx.session,
            visit.principal,
            _team(visit),
            order_by=["last_updated_timestamp DESC"],
            limit=ROWS,
            page_token=token,
        )
        found.extend(page.items)
        token = page.next_page_token
        if token is None:
            break
    return found[:ROWS]


@router.get("/orgs/{org}/teams/{team}/models")
def models_page(request: Request, visit: ModelsRead) -> Response:
    views = registry.model_views(visit.ctx.session, _all_models(visit))
    rows = [
        {
            "view": v,
            "stages": sorted({x.stage for x in v.latest if x.stage != "None"}),
            "updated": when_ms(v.model.updated_ms),
        }
        for v in views
    ]
    return render(request, "ml/models.html", _context(visit, models=rows))


def _model_page(
    request: Request, visit: Visit, ref: str, *, notice: str = "", form: FormState | None = None
) -> Response:
    session, team = visit.ctx.session, _team(visit)
    found, rows = registry.versions(session, visit.principal, team, ref)
    view = registry.model_views(session, [found])[0]
    versions = registry.version_views(session, [(found.name, r) for r in reversed(rows)])
    context = _context(
        visit,
        model=found,
        view=view,
        versions=versions,
        choices=[(str(r.version), f"Version {r.version}") for r in reversed(rows)],
        may_update=_may(visit, found, Permission.MODEL_UPDATE),
        may_delete=_may(visit, found, Permission.MODEL_DELETE),
        notice=notice,
        form=form or FormState(),
    )
    status = form.status if form and form.failed else 200
    return render(request, "ml/model.html", context, status=status, block="page")


def _check(visit: Visit, found: RegisteredModel, permission: Permission) -> None:
    """The model's service's own decision (a grant on the model counts, as on the API)."""
    authorize_resource(
        visit.ctx.session,
        visit.principal,
        permission,
        org_id=found.org_id,
        resource=Resource("model", found.id, found.team_id),
    )


def _may(visit: Visit, found: RegisteredModel, permission: Permission) -> bool:
    """Whether to show a control on this model."""
    try:
        _check(visit, found, permission)
    except Forbidden:
        return False
    return True


@router.get("/orgs/{org}/teams/{team}/models/{model}")
def model_page(request: Request, model: str, visit: OneModel) -> Response:
    return _model_page(request, visit, model)


@router.post("/orgs/{org}/teams/{team}/models/{model}/aliases", name="model_alias.set")
def set_alias(request: Request, model: str, visit: OneModel) -> Response:
    alias = str(visit.form.get("alias") or "").strip()
    number = str(visit.form.get("version") or "")
    try:
        registry.set_alias(visit.ctx, visit.principal, _team(visit), model, alias, number)
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        visit.ctx.session.rollback()
        state = FormState({"alias": alias, "version": number}, {"alias": problem.detail}, 422)
        return _model_page(request, visit, model, form=state)
    visit.ctx.done(None)
    return changed(
        request,
        f"{_base(visit)}/models/{model}",
        lambda: _model_page(request, visit, model, notice=f"Alias {alias} set."),
    )


@router.post(
    "/orgs/{org}/teams/{team}/models/{model}/aliases/{alias}/delete", name="model_alias.deleted"
)
def delete_alias(request: Request, model: str, alias: str, visit: OneModel) -> Response:
    registry.delete_alias(visit.ctx, visit.principal, _team(visit), model, alias)
    visit.ctx.done(None, status=204)
    return changed(
        request,
        f"{_base(visit)}/models/{model}",
        lambda: _model_page(request, visit, model, notice=f"Alias {alias} removed."),
    )


@router.post("/orgs/{org}/teams/{team}/models/{model}/delete", name="model.deleted")
def delete_model(request: Request, model: str, visit: OneModel) -> Response:
    team = _team(visit)
    found = registry.model(visit.ctx.session, visit.principal, team, model)
    if str(visit.form.get("confirm") or "").strip() != found.name:
        _check(visit, found, Permission.MODEL_DELETE)  # a refusal first, as the API's
        state = FormState({}, {"confirm": f"Type the model's name, {found.name}, to confirm"}, 422)
        return _model_page(request, visit, model, form=state)
    folder = registry.delete_model(visit.ctx, visit.principal, team, model)
    artifacts.forget(visit.ctx, visit.principal, team, [folder], app_state(request).artifacts)
    visit.ctx.done(None, status=204)
    return moved(request, f"{_base(visit)}/models")


# ---- one version ----


def _actor_names(visit: Visit, rows: list[Any]) -> dict[str, str]:
    users = identity_repository.users_by_ids(
        visit.ctx.session, sorted({r.actor_id for r in rows if r.actor_type == "user"})
    )
    return {user_id: user.email for user_id, user in users.items()}


def _source_run(visit: Visit, row: ModelVersion) -> tracking.RunView | None:
    """The run the version came from, when the person may read the team's runs."""
    if not row.run_id:
        return None
    try:
        return tracking.get_run(visit.ctx.session, visit.principal, _team(visit), row.run_id)
    except (Forbidden, NotFound):
        return None


def _version_page(
    request: Request, visit: Visit, model: str, version: int, *, notice: str = "", count: bool
) -> Response:
    session, team = visit.ctx.session, _team(visit)
    found, row = registry.version(session, visit.principal, team, model, version)
    view = registry.version_views(session, [(found.name, row)])[0]
    reads = registry.reads(session, visit.principal, team, model, version, limit=ROWS)
    views = row.views
    if count:  # this page is a view of the version, as the API's GET of it is
        db = app_state(request).db
        registry.note_read(
            lambda: db.session(write=True),
            visit.principal,
            row,
            kind="view",
            at_ms=now_ms(visit.ctx),
        )
        views += 1
    root = registry.artifact_root(session, team, row)
    files = [
        (a.path[len(root) + 1 :], a.size, a.sha256)
        for a in artifacts.files_under(session, team, root)
    ]
    context = _context(
        visit,
        model=found,
        row=row,
        view=view,
        views=views,
        run=_source_run(visit, row),
        reads=reads,
        names=_actor_names(visit, reads),
        files=files,
        stages=list(STAGES.values()),
        may_update=_may(visit, found, Permission.MODEL_UPDATE),
        may_delete=_may(visit, found, Permission.MODEL_DELETE),
        notice=notice,
    )
    return render(request, "ml/version.html", context, block="page")


@router.get("/orgs/{org}/teams/{team}/models/{model}/versions/{version}")
def version_page(request: Request, model: str, version: int, visit: OneModel) -> Response:
    return _version_page(request, visit, model, version, count=True)


@router.post(
    "/orgs/{org}/teams/{team}/models/{model}/versions/{version}/stage",
    name="model_version.updated",
)
def set_stage(request: Request, model: str, version: int, visit: OneModel) -> Response:
    stage = str(visit.form.get("stage") or "")
    registry.update_version(visit.ctx, visit.principal, _team(visit), model, version, stage=stage)
    visit.ctx.done(None)
    return changed(
        request,
        f"{_base(visit)}/models/{model}/versions/{version}",
        lambda: _version_page(
            request, visit, model, version, notice=f"Stage set to {stage}.", count=False
        ),
    )


@router.post(
    "/orgs/{org}/teams/{team}/models/{model}/versions/{version}/delete",
    name="model_version.deleted",
)
def delete_version(request: Request, model: str, version: int, visit: OneModel) -> Response:
    team = _team(visit)
    folder = registry.delete_version(visit.ctx, visit.principal, team, model, version)
    artifacts.forget(visit.ctx, visit.principal, team, [folder], app_state(request).artifacts)
    visit.ctx.done(None, status=204)
    return moved(request, f"{_base(visit)}/models/{model}")


def _stream(request: Request, team: TeamIn, path: str, size: int) -> Response:
    store = app_state(request).artifacts
    try:
        chunks: Iterator[bytes] = store.read(
            artifacts.storage_key(team, artifacts.check_path(path))
        )
    except FileNotFoundError:
        raise NotFound(f"No file at {path!r}") from None
    name = path.rsplit("/", 1)[-1]
    return StreamingResponse(
        chunks,
        media_type=mimetypes.guess_type(path)[0] or "application/octet-stream",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


@router.get("/orgs/{org}/teams/{team}/models/{model}/versions/{version}/file")
def version_file(
    request: Request, model: str, version: int, path: FilePath, visit: OneModel
) -> Response:
    """A file of the version, counted as a download (who and when), as the API's is."""
    session, team = visit.ctx.session, _team(visit)
    _, row = registry.version(session, visit.principal, team, model, version)
    full = f"{registry.artifact_root(session, team, row)}/{path}"
    item = artifacts.artifact(session, visit.principal, team, full)
    db = app_state(request).db
    registry.note_read(
        lambda: db.session(write=True),
        visit.principal,
        row,
        kind="download",
        at_ms=now_ms(visit.ctx),
    )
    return _stream(request, team, full, item.size)


# ---- experiments and runs ----


@router.get("/orgs/{org}/teams/{team}/experiments")
def experiments_page(request: Request, visit: ExperimentsRead) -> Response:
    found = tracking.search_experiments(
        visit.ctx.session, visit.principal, _team(visit), limit=ROWS
    )
    rows = [{"experiment": e, "updated": when_ms(e.updated_ms)} for e in found.items]
    return render(request, "ml/experiments.html", _context(visit, experiments=rows))


def _latest(view: tracking.RunView) -> dict[str, float]:
    return {key: value for key, value, _, _ in view.metrics}


def _run_rows(visit: Visit, experiment: str, order: list[str], status: str) -> list[Any]:
    where = f"attributes.status = '{status.upper()}'" if status else None
    found: list[Any] = []
    token: str | None = None
    while len(found) < ROWS:
        page = tracking.search_runs(
            visit.ctx.session,
            visit.principal,
            _team(visit),
            experiment_ids=[experiment],
            filter_text=where,
            order_by=order,
            limit=ROWS,
            page_token=token,
        )
        found.extend(page.items)
        token = page.next_page_token
        if token is None:
            break
    return found[:ROWS]


@router.get("/orgs/{org}/teams/{team}/experiments/{experiment}")
def runs_page(
    request: Request,
    experiment: str,
    visit: ExperimentsRead,
    sort: Annotated[str, Query(max_length=300)] = "",
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    status: Annotated[str, Query(pattern="^(|running|finished|failed|killed)$")] = "",
) -> Response:
    """The runs table. Its columns are every param and metric of the experiment's runs; it is
    sorted by any of them on the server (`sort=metrics.loss&order=asc`), as the API's
    `order_by` sorts."""
    session, team = visit.ctx.session, _team(visit)
    found = tracking.experiment(session, visit.principal, team, experiment)
    every_run = _run_rows(visit, experiment, [], "")
    params = sorted({k for v in every_run for k in v.params})
    metrics = sorted({p[0] for v in every_run for p in v.metrics})
    sortable = {f"params.{k}" for k in params} | {f"metrics.{k}" for k in metrics}
    if sort not in sortable | RUN_ATTRIBUTES:
        sort = ""
    ordering = [f"{_quoted(sort)} {order.upper()}"] if sort else []
    shown = _run_rows(visit, experiment, ordering, status) if sort or status else every_run
    context = _context(
        visit,
        experiment=found,
        runs=[{"view": v, "latest": _latest(v), "started": when_ms(v.run.start_ms)} for v in shown],
        params=params,
        metrics=metrics,
        sort=sort,
        order=order,
        status=status,
        statuses=STATUSES,
        total=len(every_run),
        may_delete=visit.can(Permission.EXPERIMENT_DELETE, visit.current_team.id),
    )
    return render(request, "ml/runs.html", context, block="runs")


def _quoted(sort: str) -> str:
    """A sort key for the search language: a param or metric name in backticks, so a name
    with a space or a dot is one name."""
    entity, _, key = sort.partition(".")
    return f"{entity}.`{key}`" if entity in ("params", "metrics") else sort


def _run_in(visit: Visit, experiment: str, run: str) -> tracking.RunView:
    view = tracking.get_run(visit.ctx.session, visit.principal, _team(visit), run)
    if view.run.experiment_id != experiment:
        raise NotFound(f"Run {run!r} not found")
    return view


def _history(visit: Visit, run: str, key: str) -> list[tuple[int, float]]:
    """Every point of one metric of a run, by step, as the API's metric history gives it."""
    points: list[tuple[int, float]] = []
    token: str | None = None
    while True:
        found = tracking.metric_history(
            visit.ctx.session,
            visit.principal,
            _team(visit),
            run,
            key,
            limit=10_000,
            page_token=token,
        )
        points.extend((s, v) for _, v, _, s in found.items)
        token = found.next_page_token
        if token is None or len(points) >= 100_000:
            return points


def metric_chart(key: str, series: list[tuple[str, list[tuple[int, float]]]]) -> dict[str, Any]:
    """One metric over steps: a line per run, each step of any run on the axis (a run without
    a point at a step has a gap there)."""
    steps = sorted({s for _, points in series for s, _ in points})
    datasets = []
    for label, points in series:
        at = dict(points)  # the last point logged at a step is the one drawn
        datasets.append({"label": label, "data": [at.get(s) for s in steps]})
    return {"type": "line", "labels": steps, "unit": key, "datasets": datasets}


@router.get("/orgs/{org}/teams/{team}/experiments/{experiment}/runs/{run}")
def run_page(request: Request, experiment: str, run: str, visit: ExperimentsRead) -> Response:
    session, team = visit.ctx.session, _team(visit)
    found = tracking.experiment(session, visit.principal, team, experiment)
    view = _run_in(visit, experiment, run)
    keys = sorted({p[0] for p in view.metrics})
    charts = [(k, metric_chart(k, [(k, _history(visit, run, k))])) for k in keys]
    folder = f"{experiment}/{run}/artifacts"
    files = [
        (a.path[len(folder) + 1 :], a.size, a.sha256)
        for a in artifacts.files_under(session, team, folder)
    ]
    context = _context(
        visit,
        experiment=found,
        view=view,
        latest=_latest(view),
        # MLflow's own tags (`mlflow.user`, `mlflow.source.name`) are the client's bookkeeping.
        shown_tags=sorted((k, v) for k, v in view.tags.items() if not k.startswith("mlflow.")),
        charts=charts,
        files=files,
        may_delete=visit.can(Permission.EXPERIMENT_DELETE, visit.current_team.id),
    )
    return render(request, "ml/run.html", context)


@router.get("/orgs/{org}/teams/{team}/experiments/{experiment}/runs/{run}/artifact")
def run_file(
    request: Request, experiment: str, run: str, path: FilePath, visit: ExperimentsRead
) -> Response:
    team = _team(visit)
    _run_in(visit, experiment, run)
    full = f"{experiment}/{run}/artifacts/{path}"
    item = artifacts.artifact(visit.ctx.session, visit.principal, team, full)
    return _stream(request, team, full, item.size)


@router.post(
    "/orgs/{org}/teams/{team}/experiments/{experiment}/runs/{run}/delete", name="run.deleted"
)
def delete_run(request: Request, experiment: str, run: str, visit: ExperimentsDelete) -> Response:
    team = _team(visit)
    _run_in(visit, experiment, run)
    folder = tracking.delete_run(visit.ctx, visit.principal, team, run)
    artifacts.forget(visit.ctx, visit.principal, team, [folder], app_state(request).artifacts)
    visit.ctx.done(None, status=204)
    return moved(request, f"{_base(visit)}/experiments/{experiment}")


@router.get("/orgs/{org}/teams/{team}/experiments/{experiment}/compare")
def compare_page(
    request: Request,
    experiment: str,
    visit: ExperimentsRead,
    run: Annotated[list[str] | None, Query(max_length=50)] = None,
    metric: Annotated[str, Query(max_length=250)] = "",
) -> Response:
    """Runs side by side, as the API's compare route gives them, and one metric over steps
    with a line per run."""
    session, team = visit.ctx.session, _team(visit)
    found = tracking.experiment(session, visit.principal, team, experiment)
    chosen = list(dict.fromkeys(run or []))
    views = [_run_in(visit, experiment, r) for r in chosen]
    params = sorted({k for v in views for k in v.params})
    metrics = sorted({p[0] for v in views for p in v.metrics})
    if metric not in metrics:
        metric = metrics[0] if metrics else ""
    chart = None
    if metric and len(views) >= 2:
        chart = metric_chart(
            metric,
            [(v.run.name or v.run.id, _history(visit, v.run.id, metric)) for v in views],
        )
    context = _context(
        visit,
        experiment=found,
        runs=[{"view": v, "latest": _latest(v)} for v in views],
        params=params,
        metrics=metrics,
        metric=metric,
        chart=chart,
    )
    return render(request, "ml/compare.html", context)
