"""The MLflow face: a team's tracking URI, `http://HOST/mlflow/{org}/{team}`, answering the
REST calls MLflow's own client makes (experiments, runs, metrics, logged models, the model
registry, artifacts), so a training script needs only

    mlflow.set_tracking_uri("http://HOST/mlflow/acme/vision")
    MLFLOW_TRACKING_TOKEN=<a Tenantry API key or access token>

The data is the same as on Tenantry's own API (`api/ml.py`), with the same roles, quotas,
isolation and audit. These routes are plain Starlette routes, outside FastAPI's dependency
machinery and its problem+json handlers: MLflow's client reads errors as
`{"error_code": …, "message": …}`, and the hot calls (logging metrics) pay for nothing they do
not use. Each call is one unit of work in one worker thread (`http.turns.in_turn`).

GET calls carry their arguments in the query string (repeated keys for lists); POST, PATCH and
DELETE calls in a JSON body. Times are int64 milliseconds; run ids are 32 hexadecimal
characters; artifact locations are `mlflow-artifacts:/…` URIs, which the client resolves
against the tracking URI to the artifact routes below.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio.to_thread
import orjson
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.routing import Mount, Route

from tenantry import __version__
from tenantry.audit import service as audit
from tenantry.authz.principal import Principal
from tenantry.http.auth import authenticate_request
from tenantry.http.state import app_state
from tenantry.http.turns import BodyReader, commit, in_turn, run_unit, turn_gate
from tenantry.kit.context import Ctx, Origin
from tenantry.kit.errors import (
    Forbidden,
    InvalidValue,
    NotFound,
    Problem,
    Unauthenticated,
)
from tenantry.ml import artifacts, registry, tracking
from tenantry.ml.common import (
    TeamIn,
    check_int64,
    check_metric_value,
    max_results,
    now_ms,
    resolve_team,
)
from tenantry.ml.models import Experiment, LoggedModel, ModelVersion, Run
from tenantry.ml.stores import ArtifactStore
from tenantry.throttling.limiter import throttle_request

log = logging.getLogger("tenantry.mlflow")

PREFIX = "/mlflow/{org}/{team}"
MLFLOW_VERSION = "3.18.0"

# ---- errors, in MLflow's shape ----

_CODES: dict[int, str] = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    402: "QUOTA_EXCEEDED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    405: "ENDPOINT_NOT_FOUND",
    409: "RESOURCE_ALREADY_EXISTS",
    413: "INVALID_PARAMETER_VALUE",
    415: "INVALID_PARAMETER_VALUE",
    422: "INVALID_PARAMETER_VALUE",
    429: "REQUEST_LIMIT_EXCEEDED",
    503: "TEMPORARILY_UNAVAILABLE",
}


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"error_code": code, "message": message})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def problem_error(request: Request, problem: Problem) -> Response:
    if isinstance(problem, Forbidden):
        _record_denial(request, problem)
    code = _CODES.get(problem.status, "INTERNAL_ERROR" if problem.status >= 500 else "BAD_REQUEST")
    status = problem.status
    if status == 409:  # MLflow's server answers an existing name with 400
        status = 400
    message = problem.detail
    if status == 402 and problem.extra.get("upgrade_to"):
        message = f"{message} (quota {problem.extra.get('quota')})"
    headers = {k: v for k, v in problem.headers.items() if k.lower() != "www-authenticate"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="tenantry", Basic realm="tenantry"'
    return error(status, code, message, headers)


def _record_denial(request: Request, exc: Forbidden) -> None:
    """Refused changes are audited as `denied`, as on Tenantry's own API."""
    principal = getattr(request.state, "principal", None)
    org_id = exc.org_id or getattr(request.state, "audit_org_id", None)
    if principal is None or org_id is None or request.method == "GET":
        return
    state = app_state(request)
    origin = Origin(
        ip=request.client.host if request.client else None,
        user_agent=(request.headers.get("user-agent") or "")[:512] or None,
        request_id=getattr(request.state, "request_id", None),
        action="mlflow." + request.url.path.rsplit("/mlflow/", 1)[-1].replace("/", "."),
    )
    with state.db.session(write=True) as session:
        audit.record_denial(
            session,
            now=state.clock.now(),
            origin=origin,
            principal=principal,
            org_id=org_id,
            team_id=exc.team_id or getattr(request.state, "audit_team_id", None),
            summary={"missing_permission": exc.extra.get("missing_permission"), "code": exc.code},
        )
        session.commit()


async def _guarded(request: Request, call: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await call()
    except Problem as problem:
        return problem_error(request, problem)
    except IntegrityError:
        return error(400, "RESOURCE_ALREADY_EXISTS", "The request conflicts with existing data")
    except DataError:
        return error(400, "INVALID_PARAMETER_VALUE", "A value cannot be stored or looked up")
    except OperationalError:
        log.warning("database unavailable on %s", request.url.path, exc_info=True)
        return error(
            503, "TEMPORARILY_UNAVAILABLE", "The database is busy; retry", {"Retry-After": "1"}
        )


# ---- who, and which team ----


def _credential(request: Request) -> str:
    """The bearer token (`MLFLOW_TRACKING_TOKEN`), or the password of Basic credentials
    (`MLFLOW_TRACKING_USERNAME`/`MLFLOW_TRACKING_PASSWORD`; the user name is not used)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            raise Unauthenticated("Malformed Basic credentials") from None
        password = decoded.partition(":")[2]
        if password:
            return password
    raise Unauthenticated(
        "Set MLFLOW_TRACKING_TOKEN to a Tenantry API key or access token "
        "(or MLFLOW_TRACKING_PASSWORD to one)"
    )


def enter(request: Request, ctx: Ctx) -> tuple[Principal, TeamIn]:
    principal = authenticate_request(request, ctx, _credential(request))
    team = resolve_team(
        ctx.session, principal, request.path_params["org"], request.path_params["team"]
    )
    request.state.audit_org_id, request.state.audit_team_id = team.org_id, team.id
    throttle_request(request, ctx, principal, org_id=team.org_id, team_id=team.id)
    return principal, team


# ---- arguments ----

Args = dict[str, Any]
_LISTS = frozenset({"experiment_ids", "order_by", "stages", "run_ids"})


async def _args(request: Request) -> Args:
    if request.method == "GET":
        query = request.query_params
        return {k: (query.getlist(k) if k in _LISTS else query[k]) for k in query}
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidValue("The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidValue("The request body is a JSON object")
    return body


def _str(args: Args, name: str, *, required: bool = True) -> str | None:
    value = args.get(name)
    if value is None or value == "":
        if required:
            raise InvalidValue(f"Missing value for required parameter '{name}'")
        return None
    if not isinstance(value, str):
        raise InvalidValue(f"Parameter '{name}' must be a string")
    return value


def _need(args: Args, name: str) -> str:
    value = _str(args, name)
    assert value is not None
    return value


def _run_id(args: Args) -> str:
    value = args.get("run_id") or args.get("run_uuid")
    if not isinstance(value, str) or not value:
        raise InvalidValue("Missing value for required parameter 'run_id'")
    return value


def _list(args: Args, name: str) -> list[Any]:
    value = args.get(name)
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [value]
    raise InvalidValue(f"Parameter '{name}' must be a list")


def _pairs(args: Args, name: str) -> list[tuple[Any, Any]]:
    out = []
    for item in _list(args, name):
        if not isinstance(item, dict):
            raise InvalidValue(f"Each of '{name}' is an object with a key and a value")
        out.append((item.get("key"), item.get("value")))
    return out


def _experiment_ref(value: Any) -> str | None:
    """An experiment id; MLflow's client names the default experiment "0"."""
    if value is None or value == "" or value == "0" or value == 0:
        return None
    if not isinstance(value, str):
        raise InvalidValue("An experiment id is a string")
    return value


def _experiment_id(ctx: Ctx, principal: Principal, team: TeamIn, value: Any) -> str:
    ref = _experiment_ref(value)
    if ref is not None:
        return ref
    return tracking.default_experiment(ctx, principal, team).id


# ---- shapes ----


def _tags(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in values.items()]


def experiment_out(found: Experiment, tags: dict[str, str]) -> dict[str, Any]:
    return {
        "experiment_id": found.id,
        "name": found.name,
        "artifact_location": f"mlflow-artifacts:/{found.id}",
        "lifecycle_stage": found.lifecycle_stage,
        "last_update_time": found.updated_ms,
        "creation_time": found.created_ms,
        "tags": _tags(tags),
    }


def run_info(found: Run) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_uuid": found.id,
        "run_id": found.id,
        "experiment_id": found.experiment_id,
        "run_name": found.name,
        "user_id": found.user_name,
        "status": found.status,
        "start_time": found.start_ms,
        "artifact_uri": f"mlflow-artifacts:/{found.experiment_id}/{found.id}/artifacts",
        "lifecycle_stage": found.lifecycle_stage,
    }
    if found.end_ms is not None:
        info["end_time"] = found.end_ms
    return info


def _metric(point: tuple[str, float, int, int]) -> dict[str, Any]:
    key, value, timestamp, step = point
    return {"key": key, "value": value, "timestamp": timestamp, "step": step}


def run_out(view: tracking.RunView) -> dict[str, Any]:
    outputs = [{"model_id": m, "step": s} for m, s in view.outputs]
    return {
        "info": run_info(view.run),
        "data": {
            "metrics": [_metric(p) for p in view.metrics],
            "params": _tags(view.params),
            "tags": _tags(view.tags),
        },
        "inputs": {},
        "outputs": {"model_outputs": outputs} if outputs else {},
    }


def logged_model_out(
    found: LoggedModel, tags: dict[str, str], params: dict[str, str]
) -> dict[str, Any]:
    return {
        "info": {
            "model_id": found.id,
            "experiment_id": found.experiment_id,
            "name": found.name,
            "creation_timestamp_ms": found.created_ms,
            "last_updated_timestamp_ms": found.updated_ms,
            "artifact_uri": f"mlflow-artifacts:/{found.experiment_id}/models/{found.id}/artifacts",
            "status": found.status,
            "model_type": found.model_type,
            "source_run_id": found.source_run_id or "",
            "tags": _tags(tags),
        },
        "data": {"params": _tags(params)},
    }


def _logged_model_body(session: Any, found: LoggedModel) -> dict[str, Any]:
    tags, params = tracking.logged_model_data(session, [found.id])
    return {"model": logged_model_out(found, tags[found.id], params[found.id])}


def version_out(view: registry.VersionView) -> dict[str, Any]:
    row: ModelVersion = view.version
    out: dict[str, Any] = {
        "name": view.name,
        "version": str(row.version),
        "creation_timestamp": row.created_ms,
        "last_updated_timestamp": row.updated_ms,
        "current_stage": row.stage,
        "description": row.description,
        "source": row.source,
        "run_id": row.run_id or "",
        "status": row.status,
        "run_link": "",
        "tags": _tags(view.tags),
        "aliases": view.aliases,
    }
    if row.logged_model_id:
        out["model_id"] = row.logged_model_id
    return out


def _versions_out(session: Any, pairs: list[tuple[str, ModelVersion]]) -> list[dict[str, Any]]:
    return [version_out(v) for v in registry.version_views(session, pairs)]


def model_out(session: Any, view: registry.ModelView) -> dict[str, Any]:
    found = view.model
    return {
        "name": found.name,
        "creation_timestamp": found.created_ms,
        "last_updated_timestamp": found.updated_ms,
        "description": found.description,
        "latest_versions": _versions_out(session, [(found.name, v) for v in view.latest]),
        "tags": _tags(view.tags),
        "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(view.aliases.items())],
    }


def _model_body(session: Any, found: Any) -> dict[str, Any]:
    return model_out(session, registry.model_views(session, [found])[0])


def _version_body(session: Any, name: str, row: ModelVersion) -> dict[str, Any]:
    return {"model_version": _versions_out(session, [(name, row)])[0]}


# ---- the endpoints: (method, path, writes, handler) ----

Handler = Callable[[Ctx, Principal, TeamIn, Args], dict[str, Any]]
ENDPOINTS: list[tuple[str, str, bool, Handler]] = []


def endpoint(method: str, path: str, *, write: bool) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ENDPOINTS.append((method, path, write, handler))
        return handler

    return register


# experiments


@endpoint("POST", "/experiments/create", write=True)
def create_experiment(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    found = tracking.create_experiment(
        ctx, principal, team, name=args.get("name"), tags=dict(_pairs(args, "tags"))
    )
    return {"experiment_id": found.id}


@endpoint("GET", "/experiments/get", write=False)
def get_experiment(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    ref = _experiment_ref(args.get("experiment_id"))
    if ref is None:
        found = tracking.experiment_by_name(
            ctx.session, principal, team, tracking.DEFAULT_EXPERIMENT
        )
    else:
        found = tracking.experiment(ctx.session, principal, team, ref)
    tags = tracking.experiment_tags(ctx.session, [found.id])[found.id]
    return {"experiment": experiment_out(found, tags)}


@endpoint("GET", "/experiments/get-by-name", write=False)
def get_experiment_by_name(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    found = tracking.experiment_by_name(
        ctx.session, principal, team, _need(args, "experiment_name")
    )
    tags = tracking.experiment_tags(ctx.session, [found.id])[found.id]
    return {"experiment": experiment_out(found, tags)}


def _search_experiments(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    found = tracking.search_experiments(
        ctx.session,
        principal,
        team,
        view_type=str(args.get("view_type") or "ACTIVE_ONLY"),
        filter_text=_str(args, "filter", required=False),
        order_by=[str(o) for o in _list(args, "order_by")],
        limit=max_results(args.get("max_results"), 1000, 50_000),
        page_token=_str(args, "page_token", required=False),
    )
    tags = tracking.experiment_tags(ctx.session, [e.id for e in found.items])
    out: dict[str, Any] = {"experiments": [experiment_out(e, tags[e.id]) for e in found.items]}
    if found.next_page_token:
        out["next_page_token"] = found.next_page_token
    return out


endpoint("POST", "/experiments/search", write=False)(_search_experiments)
endpoint("GET", "/experiments/search", write=False)(_search_experiments)


@endpoint("POST", "/experiments/update", write=True)
def update_experiment(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    tracking.update_experiment(
        ctx,
        principal,
        team,
        _need(args, "experiment_id"),
        name=_str(args, "new_name", required=False),
    )
    return {}


@endpoint("POST", "/experiments/delete", write=True)
def delete_experiment(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    tracking.set_experiment_lifecycle(
        ctx, principal, team, _need(args, "experiment_id"), deleted=True
    )
    return {}


@endpoint("POST", "/experiments/restore", write=True)
def restore_experiment(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    tracking.set_experiment_lifecycle(
        ctx, principal, team, _need(args, "experiment_id"), deleted=False
    )
    return {}


@endpoint("POST", "/experiments/set-experiment-tag", write=True)
def set_experiment_tag(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    experiment_id = _experiment_id(ctx, principal, team, args.get("experiment_id"))
    tracking.set_experiment_tag(
        ctx, principal, team, experiment_id, args.get("key"), args.get("value")
    )
    return {}


# runs


@endpoint("POST", "/runs/create", write=True)
def create_run(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    start = args.get("start_time")
    found = tracking.create_run(
        ctx,
        principal,
        team,
        experiment_id=_experiment_ref(args.get("experiment_id")),
        name=_str(args, "run_name", required=False),
        user_name=_str(args, "user_id", required=False),
        start_ms=check_int64(start, "start_time") if start is not None else None,
        tags=dict(_pairs(args, "tags")),
    )
    return {"run": run_out(tracking.views(ctx.session, [found])[0])}


@endpoint("GET", "/runs/get", write=False)
def get_run(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    return {"run": run_out(tracking.get_run(ctx.session, principal, team, _run_id(args)))}


@endpoint("POST", "/runs/update", write=True)
def update_run(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    end = args.get("end_time")
    found = tracking.update_run(
        ctx,
        principal,
        team,
        _run_id(args),
        status=_str(args, "status", required=False),
        end_ms=check_int64(end, "end_time") if end is not None else None,
        name=_str(args, "run_name", required=False),
    )
    return {"run_info": run_info(found)}


@endpoint("POST", "/runs/delete", write=True)
def delete_run(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    tracking.set_run_lifecycle(ctx, principal, team, _run_id(args), deleted=True)
    return {}


@endpoint("POST", "/runs/restore", write=True)
def restore_run(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    tracking.set_run_lifecycle(ctx, principal, team, _run_id(args), deleted=False)
    return {}


def _point(item: Any, when: int) -> tracking.Point:
    if not isinstance(item, dict):
        raise InvalidValue("A metric is an object with key, value, timestamp and step")
    key = item.get("key")
    if not isinstance(key, str) or not key:
        raise InvalidValue("Missing value for required parameter 'key'")
    timestamp = item.get("timestamp")
    step = item.get("step")
    return (
        key,
        check_metric_value(item.get("value")),
        check_int64(timestamp, "timestamp") if timestamp is not None else when,
        check_int64(step, "step") if step is not None else 0,
    )


@endpoint("POST", "/runs/log-metric", write=True)
def log_metric(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    point = _point(args, now_ms(ctx))
    tracking.log_batch(ctx, principal, team, _run_id(args), metrics=[point])
    return {}


@endpoint("POST", "/runs/log-parameter", write=True)
def log_parameter(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    tracking.log_batch(
        ctx, principal, team, _run_id(args), params=[(args.get("key"), args.get("value"))]
    )
    return {}


@endpoint("POST", "/runs/set-tag", write=True)
def set_tag(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    tracking.log_batch(
        ctx, principal, team, _run_id(args), tags=[(args.get("key"), args.get("value"))]
    )
    return {}


@endpoint("POST", "/runs/delete-tag", write=True)
def delete_tag(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    tracking.delete_run_tag(ctx, principal, team, _run_id(args), _need(args, "key"))
    return {}


@endpoint("POST", "/runs/log-batch", write=True)
def log_batch(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    when = now_ms(ctx)
    metrics = [_point(m, when) for m in _list(args, "metrics")]
    tracking.log_batch(
        ctx,
        principal,
        team,
        _run_id(args),
        metrics=metrics,
        params=_pairs(args, "params"),
        tags=_pairs(args, "tags"),
    )
    return {}


@endpoint("POST", "/runs/log-model", write=True)
def log_model(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    # MLflow 2's record of a logged model is a tag of the run, as its server keeps it.
    model_json = _need(args, "model_json")
    tracking.log_batch(
        ctx, principal, team, _run_id(args), tags=[("mlflow.log-model.history", model_json)]
    )
    return {}


@endpoint("POST", "/runs/log-inputs", write=True)
def log_inputs(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    # Datasets are not kept; the call succeeds so that `mlflow.log_input` does not fail.
    tracking.get_run(ctx.session, principal, team, _run_id(args))
    return {}


@endpoint("POST", "/runs/outputs", write=True)
def log_outputs(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    models = []
    for item in _list(args, "models"):
        if not isinstance(item, dict) or not isinstance(item.get("model_id"), str):
            raise InvalidValue("Each of 'models' names a model_id")
        models.append((item["model_id"], check_int64(item.get("step") or 0, "step")))
    tracking.log_outputs(ctx, principal, team, _run_id(args), models)
    return {}


def _search_runs(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    ids = [str(i) for i in _list(args, "experiment_ids")]
    ids = [
        _experiment_id(ctx, principal, team, i) if _experiment_ref(i) is None else i for i in ids
    ]
    found = tracking.search_runs(
        ctx.session,
        principal,
        team,
        experiment_ids=ids,
        filter_text=_str(args, "filter", required=False),
        view_type=str(args.get("run_view_type") or "ACTIVE_ONLY"),
        order_by=[str(o) for o in _list(args, "order_by")],
        limit=max_results(args.get("max_results"), 1000, 50_000),
        page_token=_str(args, "page_token", required=False),
    )
    out: dict[str, Any] = {"runs": [run_out(v) for v in found.items]}
    if found.next_page_token:
        out["next_page_token"] = found.next_page_token
    return out


endpoint("POST", "/runs/search", write=False)(_search_runs)


@endpoint("GET", "/metrics/get-history", write=False)
def get_metric_history(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    found = tracking.metric_history(
        ctx.session,
        principal,
        team,
        _run_id(args),
        _need(args, "metric_key"),
        limit=max_results(args.get("max_results"), 25_000, 1_000_000),
        page_token=_str(args, "page_token", required=False),
    )
    out: dict[str, Any] = {"metrics": [_metric(p) for p in found.items]}
    if found.next_page_token:
        out["next_page_token"] = found.next_page_token
    return out


# logged models


@endpoint("POST", "/logged-models", write=True)
def create_logged_model(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    found = tracking.create_logged_model(
        ctx,
        principal,
        team,
        experiment_id=_experiment_id(ctx, principal, team, args.get("experiment_id")),
        name=_str(args, "name", required=False),
        source_run_id=_str(args, "source_run_id", required=False),
        model_type=_str(args, "model_type", required=False),
        params=dict(_pairs(args, "params")),
        tags=dict(_pairs(args, "tags")),
    )
    return _logged_model_body(ctx.session, found)


@endpoint("GET", "/logged-models/{model_id}", write=False)
def get_logged_model(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    found = tracking.logged_model(ctx.session, principal, team, args["model_id"])
    return _logged_model_body(ctx.session, found)


@endpoint("PATCH", "/logged-models/{model_id}", write=True)
def finalize_logged_model(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    found = tracking.finalize_logged_model(
        ctx, principal, team, args["model_id"], _need(args, "status")
    )
    return _logged_model_body(ctx.session, found)


@endpoint("DELETE", "/logged-models/{model_id}", write=True)
def delete_logged_model(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    tracking.delete_logged_model(ctx, principal, team, args["model_id"])
    return {}


@endpoint("PATCH", "/logged-models/{model_id}/tags", write=True)
def set_logged_model_tags(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    tracking.set_logged_model_tags(
        ctx, principal, team, args["model_id"], dict(_pairs(args, "tags"))
    )
    return {}


@endpoint("DELETE", "/logged-models/{model_id}/tags/{tag_key}", write=True)
def delete_logged_model_tag(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    tracking.delete_logged_model_tag(ctx, principal, team, args["model_id"], args["tag_key"])
    return {}


@endpoint("POST", "/logged-models/{model_id}/params", write=True)
def log_logged_model_params(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    tracking.log_logged_model_params(
        ctx, principal, team, args["model_id"], dict(_pairs(args, "params"))
    )
    return {}


@endpoint("POST", "/logged-models/search", write=False)
def search_logged_models(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    ids = [str(i) for i in _list(args, "experiment_ids")]
    found = tracking.search_logged_models(
        ctx.session,
        principal,
        team,
        experiment_ids=ids,
        filter_text=_str(args, "filter", required=False),
        order_by=[
            o.get("field_name", "") if isinstance(o, dict) else str(o)
            for o in _list(args, "order_by")
        ],
        limit=max_results(args.get("max_results"), 100, 50_000),
        page_token=_str(args, "page_token", required=False),
    )
    tags, params = tracking.logged_model_data(ctx.session, [m.id for m in found.items])
    out: dict[str, Any] = {
        "models": [logged_model_out(m, tags[m.id], params[m.id]) for m in found.items]
    }
    if found.next_page_token:
        out["next_page_token"] = found.next_page_token
    return out


# registered models


@endpoint("POST", "/registered-models/create", write=True)
def create_registered_model(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    found = registry.register_model(
        ctx,
        principal,
        team,
        name=args.get("name"),
        description=str(args.get("description") or ""),
        tags=dict(_pairs(args, "tags")),
    )
    return {"registered_model": _model_body(ctx.session, found)}


@endpoint("GET", "/registered-models/get", write=False)
def get_registered_model(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    found = registry.model(ctx.session, principal, team, _need(args, "name"))
    return {"registered_model": _model_body(ctx.session, found)}


@endpoint("POST", "/registered-models/rename", write=True)
def rename_registered_model(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    found = registry.update_model(
        ctx, principal, team, _need(args, "name"), name=_need(args, "new_name")
    )
    return {"registered_model": _model_body(ctx.session, found)}


@endpoint("PATCH", "/registered-models/update", write=True)
def update_registered_model(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    found = registry.update_model(
        ctx,
        principal,
        team,
        _need(args, "name"),
        description=_str(args, "description", required=False) or "",
    )
    return {"registered_model": _model_body(ctx.session, found)}


@endpoint("DELETE", "/registered-models/delete", write=True)
def delete_registered_model(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    folder = registry.delete_model(ctx, principal, team, _need(args, "name"))
    artifacts.forget(ctx, principal, team, [folder], _store(ctx))
    return {}


def _search_registered_models(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    found = registry.search_models(
        ctx.session,
        principal,
        team,
        filter_text=_str(args, "filter", required=False),
        order_by=[str(o) for o in _list(args, "order_by")],
        limit=max_results(args.get("max_results"), 100, 1000),
        page_token=_str(args, "page_token", required=False),
    )
    views = registry.model_views(ctx.session, found.items)
    out: dict[str, Any] = {"registered_models": [model_out(ctx.session, v) for v in views]}
    if found.next_page_token:
        out["next_page_token"] = found.next_page_token
    return out


endpoint("GET", "/registered-models/search", write=False)(_search_registered_models)
endpoint("POST", "/registered-models/search", write=False)(_search_registered_models)


@endpoint("POST", "/registered-models/get-latest-versions", write=False)
def get_latest_versions(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    name = _need(args, "name")
    rows = registry.latest_versions(
        ctx.session, principal, team, name, [str(s) for s in _list(args, "stages")]
    )
    return {"model_versions": _versions_out(ctx.session, [(name, r) for r in rows])}


endpoint("GET", "/registered-models/get-latest-versions", write=False)(get_latest_versions)


@endpoint("POST", "/registered-models/set-tag", write=True)
def set_registered_model_tag(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    registry.set_model_tag(
        ctx, principal, team, _need(args, "name"), args.get("key"), args.get("value")
    )
    return {}


@endpoint("DELETE", "/registered-models/delete-tag", write=True)
def delete_registered_model_tag(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    registry.delete_model_tag(ctx, principal, team, _need(args, "name"), _need(args, "key"))
    return {}


@endpoint("POST", "/registered-models/alias", write=True)
def set_alias(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    registry.set_alias(
        ctx, principal, team, _need(args, "name"), args.get("alias"), args.get("version")
    )
    return {}


@endpoint("DELETE", "/registered-models/alias", write=True)
def delete_alias(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    registry.delete_alias(ctx, principal, team, _need(args, "name"), _need(args, "alias"))
    return {}


@endpoint("GET", "/registered-models/alias", write=False)
def get_version_by_alias(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    found, row = registry.version_by_alias(
        ctx.session, principal, team, _need(args, "name"), _need(args, "alias")
    )
    return _version_body(ctx.session, found.name, row)


# model versions


@endpoint("POST", "/model-versions/create", write=True)
def create_model_version(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    found, row = registry.create_version(
        ctx,
        principal,
        team,
        _need(args, "name"),
        source=str(args.get("source") or ""),
        run_id=_str(args, "run_id", required=False),
        logged_model_id=_str(args, "model_id", required=False),
        description=str(args.get("description") or ""),
        tags=dict(_pairs(args, "tags")),
    )
    return _version_body(ctx.session, found.name, row)


@endpoint("GET", "/model-versions/get", write=False)
def get_model_version(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    found, row = registry.version(
        ctx.session, principal, team, _need(args, "name"), args.get("version")
    )
    _note(ctx, principal, row, "view")
    return _version_body(ctx.session, found.name, row)


@endpoint("PATCH", "/model-versions/update", write=True)
def update_model_version(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    found, row = registry.update_version(
        ctx,
        principal,
        team,
        _need(args, "name"),
        args.get("version"),
        description=_str(args, "description", required=False) or "",
    )
    return _version_body(ctx.session, found.name, row)


@endpoint("POST", "/model-versions/transition-stage", write=True)
def transition_stage(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    found, row = registry.update_version(
        ctx,
        principal,
        team,
        _need(args, "name"),
        args.get("version"),
        stage=_need(args, "stage"),
        archive_others=bool(args.get("archive_existing_versions")),
    )
    return _version_body(ctx.session, found.name, row)


@endpoint("DELETE", "/model-versions/delete", write=True)
def delete_model_version(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    folder = registry.delete_version(ctx, principal, team, _need(args, "name"), args.get("version"))
    artifacts.forget(ctx, principal, team, [folder], _store(ctx))
    return {}


def _search_model_versions(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    found = registry.search_versions(
        ctx.session,
        principal,
        team,
        filter_text=_str(args, "filter", required=False),
        order_by=[str(o) for o in _list(args, "order_by")],
        limit=max_results(args.get("max_results"), 10_000, 200_000),
        page_token=_str(args, "page_token", required=False),
    )
    out: dict[str, Any] = {"model_versions": _versions_out(ctx.session, found.items)}
    if found.next_page_token:
        out["next_page_token"] = found.next_page_token
    return out


endpoint("GET", "/model-versions/search", write=False)(_search_model_versions)
endpoint("POST", "/model-versions/search", write=False)(_search_model_versions)


@endpoint("POST", "/model-versions/set-tag", write=True)
def set_model_version_tag(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    registry.set_version_tag(
        ctx,
        principal,
        team,
        _need(args, "name"),
        args.get("version"),
        args.get("key"),
        args.get("value"),
    )
    return {}


@endpoint("DELETE", "/model-versions/delete-tag", write=True)
def delete_model_version_tag(
    ctx: Ctx, principal: Principal, team: TeamIn, args: Args
) -> dict[str, Any]:
    registry.delete_version_tag(
        ctx, principal, team, _need(args, "name"), args.get("version"), _need(args, "key")
    )
    return {}


@endpoint("GET", "/model-versions/get-download-uri", write=False)
def get_download_uri(ctx: Ctx, principal: Principal, team: TeamIn, args: Args) -> dict[str, Any]:
    _, row = registry.version(
        ctx.session, principal, team, _need(args, "name"), args.get("version")
    )
    root = registry.artifact_root(ctx.session, team, row)
    _note(ctx, principal, row, "download")
    return {"artifact_uri": f"mlflow-artifacts:/{root}"}


def _note(ctx: Ctx, principal: Principal, row: ModelVersion, kind: str) -> None:
    state_db = ctx.state.get("db")
    if state_db is None:
        return
    registry.note_read(
        lambda: state_db.session(write=True), principal, row, kind=kind, at_ms=now_ms(ctx)
    )


def _store(ctx: Ctx) -> ArtifactStore:
    store: ArtifactStore = ctx.state["store"]
    return store


# ---- routing ----


def _route(method: str, path: str, write: bool, handler: Handler) -> Route:
    action = "mlflow." + path.strip("/").replace("/", ".").replace("{", "").replace("}", "")

    async def call(request: Request) -> Response:
        async def run() -> Response:
            args = await _args(request)
            for name, value in request.path_params.items():
                if name not in ("org", "team"):
                    args[name] = value
            state = app_state(request)

            def work(ctx: Ctx) -> bytes:
                ctx.state["db"] = state.db
                ctx.state["store"] = state.artifacts
                principal, team = enter(request, ctx)
                body = handler(ctx, principal, team, args)
                if write:
                    commit(ctx)
                return orjson.dumps(body)

            raw = await in_turn(request, work, write=write, lane=action, action=action)
            return Response(raw, media_type="application/json")

        return await _guarded(request, run)

    return Route(path, call, methods=[method], name=action)


async def server_info(request: Request) -> Response:
    """What the client asks before it talks to a server (no credentials, as MLflow's own)."""
    body = {
        "store_type": "SqlStore",
        "workspaces_enabled": False,
        "trace_archival_enabled": False,
        "multipart_uploads_enabled": False,
        "multipart_downloads_enabled": False,
        "presigned_upload_run_id_supported": False,
        "presigned_upload_model_id_supported": False,
        "features_enabled": {},
        "server": f"tenantry {__version__}",
    }
    return Response(orjson.dumps(body), media_type="application/json")


async def version(request: Request) -> Response:
    return Response(MLFLOW_VERSION, media_type="text/plain")


# ---- artifacts ----

ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


async def upload_artifact(request: Request) -> Response:
    async def run() -> Response:
        path = request.path_params["path"]
        state = app_state(request)
        max_bytes = state.settings.max_artifact_bytes

        def check(ctx: Ctx) -> tuple[Principal, TeamIn, artifacts.UploadPlan]:
            principal, team = enter(request, ctx)
            plan = artifacts.check_upload(
                ctx.session, principal, team, path, max_bytes=max_bytes, now=ctx.clock.now()
            )
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > plan.cap:
                raise artifacts.too_large(plan, max_bytes)
            return principal, team, plan

        principal, team, plan = await in_turn(
            request, check, write=False, lane="mlflow.artifacts", action=None
        )
        reader = BodyReader(request)

        def stream() -> tuple[str, int, str]:
            measured = artifacts.Measured(reader, plan.cap)
            try:
                staged = state.artifacts.stage(measured)
            except artifacts.TooLarge:
                raise artifacts.too_large(plan, max_bytes) from None
            return staged, measured.size, measured.sha256

        staged, size, sha256 = await anyio.to_thread.run_sync(stream)
        try:

            def record(ctx: Ctx) -> None:
                who, where = enter(request, ctx)
                artifacts.record_upload(ctx, who, where, plan, size=size, sha256=sha256)
                commit(ctx)

            async with turn_gate(request, write=True):
                await anyio.to_thread.run_sync(run_unit, request, record, True, "artifact.uploaded")
        except BaseException:
            await anyio.to_thread.run_sync(state.artifacts.discard, staged)
            raise
        await anyio.to_thread.run_sync(
            state.artifacts.promote, staged, artifacts.storage_key(team, plan.path)
        )
        del principal
        return Response(b"{}", media_type="application/json")

    return await _guarded(request, run)


async def download_artifact(request: Request) -> Response:
    async def run() -> Response:
        path = request.path_params["path"]
        state = app_state(request)

        def find(ctx: Ctx) -> tuple[TeamIn, int]:
            principal, team = enter(request, ctx)
            found = artifacts.artifact(ctx.session, principal, team, path)
            return team, found.size

        team, size = await in_turn(request, find, write=False, lane="mlflow.artifacts", action=None)
        try:
            chunks: Iterator[bytes] = await anyio.to_thread.run_sync(
                state.artifacts.read, artifacts.storage_key(team, artifacts.check_path(path))
            )
        except FileNotFoundError:
            raise NotFound(f"No artifact at {path!r}") from None
        media = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return StreamingResponse(chunks, media_type=media, headers={"Content-Length": str(size)})

    return await _guarded(request, run)


async def list_artifacts(request: Request) -> Response:
    async def run() -> Response:
        folder = request.query_params.get("path") or ""

        def work(ctx: Ctx) -> bytes:
            principal, team = enter(request, ctx)
            if not folder:
                return b'{"files": []}'
            entries = artifacts.listing(ctx.session, principal, team, folder)
            files = []
            for entry in entries:
                item: dict[str, Any] = {"path": entry.path, "is_dir": entry.is_dir}
                if not entry.is_dir:
                    item["file_size"] = entry.size
                files.append(item)
            return orjson.dumps({"files": files})

        raw = await in_turn(request, work, write=False, lane="mlflow.artifacts", action=None)
        return Response(raw, media_type="application/json")

    return await _guarded(request, run)


async def delete_artifact(request: Request) -> Response:
    async def run() -> Response:
        path = request.path_params["path"]
        state = app_state(request)

        def work(ctx: Ctx) -> bytes:
            principal, team = enter(request, ctx)
            artifacts.delete_path(ctx, principal, team, path, state.artifacts)
            commit(ctx)
            return b"{}"

        raw = await in_turn(
            request, work, write=True, lane="mlflow.artifacts", action="artifact.deleted"
        )
        return Response(raw, media_type="application/json")

    return await _guarded(request, run)


async def not_found(request: Request) -> Response:
    return error(
        404,
        "ENDPOINT_NOT_FOUND",
        f"{request.method} {request.url.path} is not an endpoint of this server",
    )


def mount() -> Mount:
    """Every route of the MLflow face, under `/mlflow/{org}/{team}`."""
    routes: list[Route] = [
        Route("/api/3.0/mlflow/server-info", server_info, methods=["GET"]),
        Route("/api/2.0/mlflow/server-info", server_info, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route(ARTIFACTS, list_artifacts, methods=["GET"]),
        Route(ARTIFACTS + "/{path:path}", upload_artifact, methods=["PUT"]),
        Route(ARTIFACTS + "/{path:path}", download_artifact, methods=["GET"]),
        Route(ARTIFACTS + "/{path:path}", delete_artifact, methods=["DELETE"]),
    ]
    for method, path, write, handler in ENDPOINTS:
        for prefix in ("/api/2.0/mlflow", "/api/3.0/mlflow"):
            routes.append(_route(method, prefix + path, write, handler))
    routes.append(
        Route("/{rest:path}", not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    )
    return Mount(PREFIX, routes=routes)


# Artifact uploads bound their bodies themselves (the storage quota, `max_artifact_bytes`),
# not by the API's body limit (`kit.limits.BodyLimit`).
UPLOAD_PATHS = r"^/mlflow/[^/]+/[^/]+/api/2\.0/mlflow-artifacts/artifacts/"
