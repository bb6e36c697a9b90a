"""Experiment tracking: a team's experiments (one default), runs and their lifecycle
(running → finished, failed or killed), hyperparameters written once, metrics appended with
step and timestamp, tags overwritten, and the models a run logs.

Every change is one audit event, except metric points: logging them is usage (the request is
metered as an API call) and the points themselves are the record.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, asc, desc, func, nulls_last
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission as P
from tenantry.authz.principal import Principal
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, InvalidValue, NotFound
from tenantry.kit.ids import new_id
from tenantry.metering.quotas import claim_count
from tenantry.ml import repository
from tenantry.ml.common import (
    MAX_PARAM_VALUE,
    MAX_TAG_VALUE,
    TeamIn,
    allow,
    check_key,
    check_name,
    check_value,
    next_token,
    now_ms,
    page_offset,
)
from tenantry.ml.models import ACTIVE, DELETED, Experiment, LoggedModel, Run
from tenantry.ml.search import Comparison, Ordering, SearchError, parse_filter, parse_order_by

DEFAULT_EXPERIMENT = "Default"
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
FINISHED_STATUSES = ("FINISHED", "FAILED", "KILLED")
VIEW_TYPES = {"ACTIVE_ONLY": (ACTIVE,), "DELETED_ONLY": (DELETED,), "ALL": (ACTIVE, DELETED)}
# log-batch's limits, MLflow's own.
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_TOTAL = 1000
RUN_NAME_TAG = "mlflow.runName"
LOGGED_MODEL_STATUSES = (
    "LOGGED_MODEL_STATUS_UNSPECIFIED",
    "LOGGED_MODEL_PENDING",
    "LOGGED_MODEL_READY",
    "LOGGED_MODEL_UPLOAD_FAILED",
)


def _audit(
    ctx: Ctx,
    principal: Principal,
    team: TeamIn,
    action: str,
    target_type: str,
    target_id: str,
    summary: dict[str, Any] | None = None,
) -> None:
    audit.record(
        ctx,
        principal,
        org_id=team.org_id,
        team_id=team.id,
        target_type=target_type,
        target_id=target_id,
        summary=summary,
        action=action,
    )


# ---- experiments ----


def _new_experiment(
    ctx: Ctx,
    principal: Principal,
    team: TeamIn,
    name: str,
    *,
    description: str = "",
    tags: dict[str, str] | None = None,
    is_default: bool = False,
) -> Experiment:
    claim_count(ctx.session, team.org_id, "experiments")
    if repository.experiment_by_name(ctx.session, team_id=team.id, name=name) is not None:
        raise Conflict(f"An experiment named {name!r} already exists", code="already_exists")
    now = now_ms(ctx)
    found = Experiment(
        id=new_id("exp"),
        org_id=team.org_id,
        team_id=team.id,
        name=name,
        description=description,
        is_default=is_default,
        lifecycle_stage=ACTIVE,
        created_by=principal.user_id,
        created_ms=now,
        updated_ms=now,
    )
    ctx.session.add(found)
    try:
        ctx.session.flush()
    except IntegrityError:  # made by another request meanwhile
        raise Conflict(
            f"An experiment named {name!r} already exists", code="already_exists"
        ) from None
    for key, value in (tags or {}).items():
        repository.set_experiment_tag(ctx.session, found.id, key, value)
    return found


def create_experiment(
    ctx: Ctx,
    principal: Principal,
    team: TeamIn,
    *,
    name: Any,
    description: str = "",
    tags: dict[str, str] | None = None,
) -> Experiment:
    allow(ctx.session, principal, P.EXPERIMENT_CREATE, team)
    name = check_name(name, "An experiment's name")
    checked = {
        check_key(k, "tag key"): check_value(v, MAX_TAG_VALUE) for k, v in (tags or {}).items()
    }
    found = _new_experiment(
        ctx,
        principal,
        team,
        name,
        description=check_value(description, MAX_TAG_VALUE),
        tags=checked,
    )
    _audit(ctx, principal, team, "experiment.created", "experiment", found.id, {"name": name})
    return found


def _ensure_default(ctx: Ctx, principal: Principal, team: TeamIn) -> tuple[Experiment, bool]:
    found = repository.default_experiment(ctx.session, team_id=team.id)
    if found is not None:
        return found, False
    if not ctx.write:
        raise NotFound("The team has no default experiment yet")
    allow(ctx.session, principal, P.EXPERIMENT_CREATE, team)
    return _new_experiment(ctx, principal, team, DEFAULT_EXPERIMENT, is_default=True), True


def default_experiment(ctx: Ctx, principal: Principal, team: TeamIn) -> Experiment:
    """The team's default experiment, made on first use (by whoever first logs to it)."""
    found, made = _ensure_default(ctx, principal, team)
    if made:
        _audit(
            ctx, principal, team, "experiment.created", "experiment", found.id, {"name": found.name}
        )
    return found


def experiment(
    session: Session, principal: Principal, team: TeamIn, experiment_id: str
) -> Experiment:
    allow(session, principal, P.EXPERIMENT_READ, team)
    return _experiment(session, team, experiment_id)


def _experiment(session: Session, team: TeamIn, experiment_id: str) -> Experiment:
    found = repository.experiment(session, team_id=team.id, experiment_id=experiment_id)
    if found is None:
        raise NotFound(f"No experiment with id {experiment_id!r}")
    return found


def experiment_by_name(
    session: Session, principal: Principal, team: TeamIn, name: str
) -> Experiment:
    allow(session, principal, P.EXPERIMENT_READ, team)
    found = repository.experiment_by_name(session, team_id=team.id, name=name)
    if found is None:
        raise NotFound(f"No experiment named {name!r}")
    return found


def experiment_tags(session: Session, experiment_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    return repository.experiment_tags(session, experiment_ids)


def update_experiment(
    ctx: Ctx,
    principal: Principal,
    team: TeamIn,
    experiment_id: str,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Experiment:
    allow(ctx.session, principal, P.EXPERIMENT_UPDATE, team)
    found = _experiment(ctx.session, team, experiment_id)
    changed: dict[str, Any] = {}
    if name is not None and name != found.name:
        name = check_name(name, "An experiment's name")
        if repository.experiment_by_name(ctx.session, team_id=team.id, name=name) is not None:
            raise Conflict(f"An experiment named {name!r} already exists", code="already_exists")
        changed["name"] = found.name = name
    if description is not None and description != found.description:
        changed["description"] = found.description = check_value(description, MAX_TAG_VALUE)
    found.updated_ms = now_ms(ctx)
    _audit(
        ctx,
        principal,
        team,
        "experiment.updated",
        "experiment",
        found.id,
        {"changed": sorted(changed)},
    )
    return found


def set_experiment_tag(
    ctx: Ctx, principal: Principal, team: TeamIn, experiment_id: str, key: Any, value: Any
) -> None:
    allow(ctx.session, principal, P.EXPERIMENT_UPDATE, team)
    found = _experiment(ctx.session, team, experiment_id)
    key = check_key(key, "tag key")
    repository.set_experiment_tag(ctx.session, found.id, key, check_value(value, MAX_TAG_VALUE))
    _audit(ctx, principal, team, "experiment.updated", "experiment", found.id, {"tag": key})


def set_experiment_lifecycle(
    ctx: Ctx, principal: Principal, team: TeamIn, experiment_id: str, *, deleted: bool
) -> Experiment:
    """MLflow's delete and restore: the experiment is hidden (or shown again) with its runs.
    A deleted experiment frees its slot of the `experiments` quota; restoring takes one."""
    allow(ctx.session, principal, P.EXPERIMENT_DELETE, team)
    found = _experiment(ctx.session, team, experiment_id)
    if found.is_default and deleted:
        raise InvalidValue("The team's default experiment cannot be deleted")
    if not deleted and found.lifecycle_stage == DELETED:
        claim_count(ctx.session, team.org_id, "experiments")
    found.lifecycle_stage = DELETED if deleted else ACTIVE
    found.updated_ms = now_ms(ctx)
    action = "experiment.deleted" if deleted else "experiment.restored"
    _audit(ctx, principal, team, action, "experiment", found.id, {"name": found.name})
    return found


def delete_experiment(
    ctx: Ctx, principal: Principal, team: TeamIn, experiment_id: str
) -> list[str]:
    """Delete the experiment for good, with its runs and logged models; the artifact paths to
    remove once committed are returned (its whole folder)."""
    allow(ctx.session, principal, P.EXPERIMENT_DELETE, team)
    found = _experiment(ctx.session, team, experiment_id)
    if found.is_default:
        raise InvalidValue("The team's default experiment cannot be deleted")
    ctx.session.delete(found)
    _audit(ctx, principal, team, "experiment.deleted", "experiment", found.id, {"name": found.name})
    return [found.id]


@dataclass(frozen=True)
class Found:
    items: list[Any]
    next_page_token: str | None


_EXPERIMENT_ATTRIBUTES = {
    "name": Experiment.name,
    "experiment_id": Experiment.id,
    "creation_time": Experiment.created_ms,
    "last_update_time": Experiment.updated_ms,
    "lifecycle_stage": Experiment.lifecycle_stage,
}


def search_experiments(
    session: Session,
    principal: Principal,
    team: TeamIn,
    *,
    view_type: str = "ACTIVE_ONLY",
    filter_text: str | None = None,
    order_by: list[str] | None = None,
    limit: int = 1000,
    page_token: str | None = None,
) -> Found:
    allow(session, principal, P.EXPERIMENT_READ, team)
    stages = _view(view_type)
    query = repository.experiments_query(team.id).where(Experiment.lifecycle_stage.in_(stages))
    try:
        for comparison in parse_filter(filter_text):
            if comparison.entity == "tag":
                value = _tag_subquery_experiment(comparison.key)
                query = query.where(_compare(value, comparison, strings=True))
            elif comparison.entity == "attribute":
                column = _attribute(_EXPERIMENT_ATTRIBUTES, comparison.key, "experiment")
                query = query.where(
                    _compare(
                        column,
                        comparison,
                        strings=comparison.key in ("name", "experiment_id", "lifecycle_stage"),
                    )
                )
            else:
                raise SearchError(f"Experiments cannot be searched by {comparison.entity}s")
        orderings = [
            _order(_attribute(_EXPERIMENT_ATTRIBUTES, o.key, "experiment"), o)
            for o in parse_order_by(order_by)
            if _only_attribute(o, "experiments")
        ]
    except SearchError as exc:
        raise InvalidValue(str(exc)) from None
    orderings = orderings or [desc(Experiment.created_ms)]
    return _page(session, query.order_by(*orderings, Experiment.id), limit, page_token)


def _tag_subquery_experiment(key: str) -> Any:
    from sqlalchemy import select

    from tenantry.ml.models import ExperimentTag

    return (
        select(ExperimentTag.value)
        .where(ExperimentTag.experiment_id == Experiment.id, ExperimentTag.key == key)
        .scalar_subquery()
    )


# ---- runs ----


def _run(session: Session, team: TeamIn, run_id: str) -> Run:
    found = (
        repository.run(session, team_id=team.id, run_id=run_id) if isinstance(run_id, str) else None
    )
    if found is None:
        raise NotFound(f"Run {run_id!r} not found")
    return found


def create_run(
    ctx: Ctx,
    principal: Principal,
    team: TeamIn,
    *,
    experiment_id: str | None,
    name: str | None = None,
    user_name: str | None = None,
    start_ms: int | None = None,
    tags: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> Run:
    allow(ctx.session, principal, P.EXPERIMENT_CREATE, team)
    made_default = False
    if experiment_id is None:  # the team's default experiment, made with its first run
        parent, made_default = _ensure_default(ctx, principal, team)
    else:
        parent = _experiment(ctx.session, team, experiment_id)
    if parent.lifecycle_stage != ACTIVE:
        raise InvalidValue(f"Experiment {parent.id!r} is deleted; restore it to add runs")
    checked = {
        check_key(k, "tag key"): check_value(v, MAX_TAG_VALUE) for k, v in (tags or {}).items()
    }
    run_name = check_value(name or checked.get(RUN_NAME_TAG) or _run_name(), 250, "run name")
    checked[RUN_NAME_TAG] = run_name
    run_id = secrets.token_hex(16)
    values = {
        "id": run_id,
        "org_id": team.org_id,
        "team_id": team.id,
        "experiment_id": parent.id,
        "name": run_name,
        "user_name": check_value(user_name or "", 250, "user"),
        "created_by": principal.user_id,
        "status": "RUNNING",
        "start_ms": start_ms if start_ms is not None else now_ms(ctx),
        "end_ms": None,
        "lifecycle_stage": ACTIVE,
    }
    repository.add_run(ctx.session, values)
    repository.set_run_tags(
        ctx.session, [{"run_id": run_id, "key": k, "value": v} for k, v in checked.items()]
    )
    if params:
        checked_params = {
            check_key(k, "param key"): check_value(v, MAX_PARAM_VALUE, "param value")
            for k, v in params.items()
        }
        repository.add_params(
            ctx.session,
            [{"run_id": run_id, "key": k, "value": v} for k, v in checked_params.items()],
        )
    summary: dict[str, Any] = {"experiment_id": parent.id, "name": run_name}
    if made_default:
        summary["made_default_experiment"] = True
    _audit(ctx, principal, team, "run.created", "run", run_id, summary)
    return Run(**values)


_ADJECTIVES = (
    "bright",
    "calm",
    "bold",
    "keen",
    "quick",
    "quiet",
    "brave",
    "clever",
    "gentle",
    "sunny",
)
_NOUNS = (
    "otter",
    "falcon",
    "maple",
    "comet",
    "harbor",
    "willow",
    "badger",
    "lynx",
    "cedar",
    "heron",
)


def _run_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(1000)}"


@dataclass
class RunView:
    run: Run
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)
    outputs: list[tuple[str, int]] = field(default_factory=list)


def views(session: Session, runs: Sequence[Run]) -> list[RunView]:
    ids = [r.id for r in runs]
    params = repository.run_params(session, ids)
    tags = repository.run_tags(session, ids)
    metrics = repository.latest_metrics(session, ids)
    outputs = repository.run_outputs(session, ids)
    return [RunView(r, params[r.id], tags[r.id], metrics[r.id], outputs[r.id]) for r in runs]


def get_run(session: Session, principal: Principal, team: TeamIn, run_id: str) -> RunView:
    allow(session, principal, P.EXPERIMENT_READ, team)
    return views(session, [_run(session, team, run_id)])[0]


def update_run(
    ctx: Ctx,
    principal: Principal,
    team: TeamIn,
    run_id: str,
    *,
    status: str | None = None,
    end_ms: int | None = None,
    name: str | None = None,
) -> Run:
    allow(ctx.session, principal, P.EXPERIMENT_UPDATE, team)
    found = _run(ctx.session, team, run_id)
    changed: dict[str, Any] = {}
    if status is not None:
        status = status.upper()
        if status not in RUN_STATUSES:
            raise InvalidValue(f"A run's status is one of {', '.join(RUN_STATUSES)}")
        changed["status"] = found.status = status
        if status in FINISHED_STATUSES and end_ms is None and found.end_ms is None:
            end_ms = now_ms(ctx)
    if end_ms is not None:
        changed["end_ms"] = found.end_ms = end_ms
    if name:
        changed["name"] = found.name = check_value(name, 250, "run name")
        repository.set_run_tags(
            ctx.session, [{"run_id": found.id, "key": RUN_NAME_TAG, "value": found.name}]
        )
    _audit(
        ctx,
        principal,
        team,
        "run.updated",
        "run",
        found.id,
        {k: changed[k] for k in changed if k != "end_ms"},
    )
    return found


def set_run_lifecycle(
    ctx: Ctx, principal: Principal, team: TeamIn, run_id: str, *, deleted: bool
) -> None:
    """MLflow's delete and restore of a run: hidden from searches, kept until deleted for good."""
    allow(ctx.session, principal, P.EXPERIMENT_DELETE, team)
    found = _run(ctx.session, team, run_id)
    found.lifecycle_stage = DELETED if deleted else ACTIVE
    _audit(ctx, principal, team, "run.deleted" if deleted else "run.restored", "run", found.id)


def delete_run(ctx: Ctx, principal: Principal, team: TeamIn, run_id: str) -> str:
    """Delete a run for good; its artifact folder (returned) goes once committed."""
    allow(ctx.session, principal, P.EXPERIMENT_DELETE, team)
    found = _run(ctx.session, team, run_id)
    repository.delete_run(ctx.session, found.id)
    _audit(
        ctx, principal, team, "run.deleted", "run", found.id, {"experiment_id": found.experiment_id}
    )
    return f"{found.experiment_id}/{found.id}"


def _writable_run(session: Session, team: TeamIn, run_id: Any) -> str:
    row = (
        repository.run_row(session, team_id=team.id, run_id=run_id)
        if isinstance(run_id, str)
        else None
    )
    if row is None:
        raise NotFound(f"Run {run_id!r} not found")
    if row[2] != ACTIVE:
        raise InvalidValue(f"Run {run_id!r} is deleted; restore it to log to it")
    return run_id  # type: ignore[no-any-return]


Point = tuple[str, float, int, int]  # key, value, timestamp (ms), step


def log_batch(
    ctx: Ctx,
    principal: Principal,
    team: TeamIn,
    run_id: Any,
    *,
    metrics: Sequence[Point] = (),
    params: Sequence[tuple[Any, Any]] = (),
    tags: Sequence[tuple[Any, Any]] = (),
    action: str = "run.logged",
) -> None:
    """Append metric points, write hyperparameters (once each: the same value again is fine,
    another is refused) and set tags, all or nothing. Points are usage, not audit: a batch
    with params or tags is one audit event, one of only points is none."""
    if len(metrics) > MAX_BATCH_METRICS:
        raise InvalidValue(f"A batch holds at most {MAX_BATCH_METRICS} metrics; got {len(metrics)}")
    if len(params) > MAX_BATCH_PARAMS:
        raise InvalidValue(f"A batch holds at most {MAX_BATCH_PARAMS} params; got {len(params)}")
    if len(tags) > MAX_BATCH_TAGS:
        raise InvalidValue(f"A batch holds at most {MAX_BATCH_TAGS} tags; got {len(tags)}")
    if len(metrics) + len(params) + len(tags) > MAX_BATCH_TOTAL:
        raise InvalidValue(f"A batch holds at most {MAX_BATCH_TOTAL} metrics, params and tags")
    allow(ctx.session, principal, P.EXPERIMENT_UPDATE, team)
    run_id = _writable_run(ctx.session, team, run_id)
    session = ctx.session
    if params:
        wanted: dict[str, str] = {}
        for key, value in params:
            key, value = (
                check_key(key, "param key"),
                check_value(value, MAX_PARAM_VALUE, "param value"),
            )
            if wanted.get(key, value) != value:
                raise InvalidValue(f"Param {key!r} is given two values in one batch")
            wanted[key] = value
        held = repository.existing_params(session, run_id, wanted)
        for key, value in held.items():
            if wanted[key] != value:
                raise InvalidValue(
                    f"Param {key!r} of run {run_id!r} is {value!r}; params are written once "
                    f"and cannot be changed to {wanted[key]!r}"
                )
        repository.add_params(
            session,
            [{"run_id": run_id, "key": k, "value": v} for k, v in wanted.items() if k not in held],
        )
    if tags:
        repository.set_run_tags(
            session,
            [
                {
                    "run_id": run_id,
                    "key": check_key(k, "tag key"),
                    "value": check_value(v, MAX_TAG_VALUE),
                }
                for k, v in dict(tags).items()
            ],
        )
        name = dict(tags).get(RUN_NAME_TAG)
        if name:
            repository.update_run(session, run_id, {"name": name[:250]})
    repository.add_metrics(session, run_id, metrics)
    if params or tags:
        summary = {
            "params": sorted(k for k, _ in params)[:20],
            "tags": sorted(k for k, _ in tags)[:20],
        }
        _audit(ctx, principal, team, action, "run", run_id, summary)


def delete_run_tag(ctx: Ctx, principal: Principal, team: TeamIn, run_id: str, key: str) -> None:
    allow(ctx.session, principal, P.EXPERIMENT_UPDATE, team)
    run_id = _writable_run(ctx.session, team, run_id)
    if not repository.delete_run_tag(ctx.session, run_id, key):
        raise NotFound(f"No tag {key!r} on run {run_id!r}")
    _audit(ctx, principal, team, "run.logged", "run", run_id, {"deleted_tag": key})


def metric_history(
    session: Session,
    principal: Principal,
    team: TeamIn,
    run_id: str,
    key: str,
    *,
    limit: int,
    page_token: str | None = None,
) -> Found:
    allow(session, principal, P.EXPERIMENT_READ, team)
    found = _run(session, team, run_id)
    offset = page_offset(page_token)
    points = repository.metric_history(session, found.id, key, offset=offset, limit=limit + 1)
    more = len(points) > limit
    return Found(points[:limit], next_token(offset, limit, more))


# ---- searching runs ----

_RUN_ATTRIBUTES: dict[str, Any] = {
    "run_id": Run.id,
    "run_uuid": Run.id,
    "run_name": Run.name,
    "run name": Run.name,
    "status": Run.status,
    "user_id": Run.user_name,
    "start_time": Run.start_ms,
    "end_time": Run.end_ms,
    "created": Run.start_ms,
    "artifact_uri": None,
    "lifecycle_stage": Run.lifecycle_stage,
    "experiment_id": Run.experiment_id,
}
_STRING_ATTRIBUTES = {
    "run_id",
    "run_uuid",
    "run_name",
    "run name",
    "status",
    "user_id",
    "lifecycle_stage",
    "experiment_id",
}


def search_runs(
    session: Session,
    principal: Principal,
    team: TeamIn,
    *,
    experiment_ids: Sequence[str],
    filter_text: str | None = None,
    view_type: str = "ACTIVE_ONLY",
    order_by: list[str] | None = None,
    limit: int = 1000,
    page_token: str | None = None,
) -> Found:
    allow(session, principal, P.EXPERIMENT_READ, team)
    for experiment_id in experiment_ids:
        _experiment(session, team, experiment_id)
    query: Select[Any] = repository.runs_query(team.id).where(
        Run.experiment_id.in_(list(experiment_ids)), Run.lifecycle_stage.in_(_view(view_type))
    )
    try:
        for comparison in parse_filter(filter_text):
            query = query.where(_run_condition(comparison))
        orderings = [_run_order(o) for o in parse_order_by(order_by)]
    except SearchError as exc:
        raise InvalidValue(str(exc)) from None
    orderings += [desc(Run.start_ms), asc(Run.id)]
    found = _page(session, query.order_by(*orderings), limit, page_token)
    return Found(views(session, found.items), found.next_page_token)


def _run_condition(comparison: Comparison) -> ColumnElement[bool]:
    key = comparison.key
    if comparison.entity == "metric":
        if comparison.op not in ("=", "!=", "<", "<=", ">", ">="):
            raise SearchError(
                f"Metrics are compared with =, !=, <, <=, > or >=, not {comparison.op}"
            )
        _number(comparison)
        return repository.has_metric(Run.id, key, lambda column: _compare(column, comparison))
    if comparison.entity in ("param", "tag"):
        if comparison.op in ("<", "<=", ">", ">=", "IN", "NOT IN"):
            raise SearchError(
                f"{comparison.entity.capitalize()}s are compared as strings, "
                f"not with {comparison.op}"
            )
        owner = repository.has_param if comparison.entity == "param" else repository.has_tag
        if comparison.op == "IS NULL":
            value = (
                repository.param_value if comparison.entity == "param" else repository.tag_value
            )(Run.id, key)
            return value.is_(None)  # type: ignore[no-any-return]
        return owner(Run.id, key, lambda column: _compare(column, comparison, strings=True))
    column = _attribute(_RUN_ATTRIBUTES, key, "run")
    if column is None:
        raise SearchError(f"Runs cannot be searched by the attribute {key!r}")
    return _compare(column, comparison, strings=key in _STRING_ATTRIBUTES)


def _run_order(ordering: Ordering) -> Any:
    if ordering.entity == "metric":
        return _order(repository.metric_value(Run.id, ordering.key), ordering)
    if ordering.entity == "param":
        return _order(repository.param_value(Run.id, ordering.key), ordering)
    if ordering.entity == "tag":
        return _order(repository.tag_value(Run.id, ordering.key), ordering)
    column = _attribute(_RUN_ATTRIBUTES, ordering.key, "run")
    if column is None:
        raise SearchError(f"Runs cannot be ordered by the attribute {ordering.key!r}")
    return _order(column, ordering)


# ---- logged models ----


def create_logged_model(
    ctx: Ctx,
    principal: Principal,
    team: TeamIn,
    *,
    experiment_id: str,
    name: str | None,
    source_run_id: str | None = None,
    model_type: str | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> LoggedModel:
    allow(ctx.session, principal, P.EXPERIMENT_UPDATE, team)
    parent = _experiment(ctx.session, team, experiment_id)
    if source_run_id:
        _run(ctx.session, team, source_run_id)
    now = now_ms(ctx)
    found = LoggedModel(
        id="m-" + secrets.token_hex(16),
        org_id=team.org_id,
        team_id=team.id,
        experiment_id=parent.id,
        name=check_value(name or _run_name(), 250, "model name"),
        source_run_id=source_run_id or None,
        model_type=check_value(model_type or "", 250, "model type"),
        status="LOGGED_MODEL_PENDING",
        lifecycle_stage=ACTIVE,
        created_ms=now,
        updated_ms=now,
    )
    ctx.session.add(found)
    ctx.session.flush()
    repository.set_logged_model_tags(
        ctx.session,
        found.id,
        {check_key(k, "tag key"): check_value(v, MAX_TAG_VALUE) for k, v in (tags or {}).items()},
    )
    repository.set_logged_model_params(
        ctx.session,
        found.id,
        {
            check_key(k, "param key"): check_value(v, MAX_PARAM_VALUE)
            for k, v in (params or {}).items()
        },
    )
    _audit(
        ctx, principal, team, "logged_model.created", "logged_model", found.id, {"name": found.name}
    )
    return found


def logged_model(
    session: Session, principal: Principal, team: TeamIn, model_id: str
) -> LoggedModel:
    allow(session, principal, P.EXPERIMENT_READ, team)
    return _logged_model(session, team, model_id)


def _logged_model(session: Session, team: TeamIn, model_id: str) -> LoggedModel:
    found = repository.logged_model(session, team_id=team.id, model_id=model_id)
    if found is None or found.lifecycle_stage != ACTIVE:
        raise NotFound(f"Logged model {model_id!r} not found")
    return found


def logged_model_data(
    session: Session, model_ids: Sequence[str]
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    return repository.logged_model_data(session, model_ids)


def finalize_logged_model(
    ctx: Ctx, principal: Principal, team: TeamIn, model_id: str, status: str
) -> LoggedModel:
    allow(ctx.session, principal, P.EXPERIMENT_UPDATE, team)
    found = _logged_model(ctx.session, team, model_id)
    if status not in LOGGED_MODEL_STATUSES:
        raise InvalidValue(f"A logged model's status is one of {', '.join(LOGGED_MODEL_STATUSES)}")
    found.status = status
    found.updated_ms = now_ms(ctx)
    _audit(
        ctx, principal, team, "logged_model.updated", "logged_model", found.id, {"status": status}
    )
    return found


def set_logged_model_tags(
    ctx: Ctx, principal: Principal, team: TeamIn, model_id: str, tags: dict[str, str]
) -> None:
    allow(ctx.session, principal, P.EXPERIMENT_UPDATE, team)
    found = _logged_model(ctx.session, team, model_id)
    checked = {check_key(k, "tag key"): check_value(v, MAX_TAG_VALUE) for k, v in tags.items()}
    repository.set_logged_model_tags(ctx.session, found.id, checked)
    _audit(
        ctx,
        principal,
        team,
        "logged_model.updated",
        "logged_model",
        found.id,
        {"tags": sorted(checked)[:20]},
    )


def log_logged_model_params(
    ctx: Ctx, principal: Principal, team: TeamIn, model_id: str, params: dict[str, str]
) -> None:
    allow(ctx.session, principal, P.EXPERIMENT_UPDATE, team)
    found = _logged_model(ctx.session, team, model_id)
    checked = {
        check_key(k, "param key"): check_value(v, MAX_PARAM_VALUE) for k, v in params.items()
    }
    repository.set_logged_model_params(ctx.session, found.id, checked)
    summary = {"params": sorted(checked)[:20]}
    _audit(ctx, principal, team, "logged_model.updated", "logged_model", found.id, summary)


def delete_logged_model_tag(
    ctx: Ctx, principal: Principal, team: TeamIn, model_id: str, key: str
) -> None:
    allow(ctx.session, principal, P.EXPERIMENT_UPDATE, team)
    found = _logged_model(ctx.session, team, model_id)
    if not repository.delete_logged_model_tag(ctx.session, found.id, key):
        raise NotFound(f"No tag {key!r} on logged model {model_id!r}")
    _audit(
        ctx, principal, team, "logged_model.updated", "logged_model", found.id, {"deleted_tag": key}
    )


def delete_logged_model(ctx: Ctx, principal: Principal, team: TeamIn, model_id: str) -> None:
    allow(ctx.session, principal, P.EXPERIMENT_DELETE, team)
    found = _logged_model(ctx.session, team, model_id)
    found.lifecycle_stage = DELETED
    _audit(ctx, principal, team, "logged_model.deleted", "logged_model", found.id)


def log_outputs(
    ctx: Ctx, principal: Principal, team: TeamIn, run_id: str, models: Sequence[tuple[str, int]]
) -> None:
    allow(ctx.session, principal, P.EXPERIMENT_UPDATE, team)
    run_id = _writable_run(ctx.session, team, run_id)
    for model_id, _ in models:
        _logged_model(ctx.session, team, model_id)
    repository.add_run_outputs(
        ctx.session, [{"run_id": run_id, "model_id": m, "step": s} for m, s in models]
    )
    _audit(
        ctx, principal, team, "run.logged", "run", run_id, {"outputs": [m for m, _ in models][:20]}
    )


_LOGGED_MODEL_ATTRIBUTES: dict[str, Any] = {
    "name": LoggedModel.name,
    "model_id": LoggedModel.id,
    "status": LoggedModel.status,
    "source_run_id": LoggedModel.source_run_id,
    "model_type": LoggedModel.model_type,
    "creation_timestamp": LoggedModel.created_ms,
    "creation_time": LoggedModel.created_ms,
    "last_updated_timestamp": LoggedModel.updated_ms,
}


def search_logged_models(
    session: Session,
    principal: Principal,
    team: TeamIn,
    *,
    experiment_ids: Sequence[str],
    filter_text: str | None = None,
    order_by: list[str] | None = None,
    limit: int = 100,
    page_token: str | None = None,
) -> Found:
    allow(session, principal, P.EXPERIMENT_READ, team)
    for experiment_id in experiment_ids:
        _experiment(session, team, experiment_id)
    query = repository.logged_models_query(team.id).where(
        LoggedModel.experiment_id.in_(list(experiment_ids)), LoggedModel.lifecycle_stage == ACTIVE
    )
    try:
        for comparison in parse_filter(filter_text):
            if comparison.entity == "tag":
                value = repository.logged_model_tag_value(LoggedModel.id, comparison.key)
                query = query.where(_compare(value, comparison, strings=True))
            elif comparison.entity == "attribute":
                column = _attribute(_LOGGED_MODEL_ATTRIBUTES, comparison.key, "logged model")
                query = query.where(
                    _compare(column, comparison, strings="time" not in comparison.key)
                )
            else:
                raise SearchError(f"Logged models cannot be searched by {comparison.entity}s here")
        orderings = [
            _order(_attribute(_LOGGED_MODEL_ATTRIBUTES, o.key, "logged model"), o)
            for o in parse_order_by(order_by)
            if _only_attribute(o, "logged models")
        ]
    except SearchError as exc:
        raise InvalidValue(str(exc)) from None
    orderings += [desc(LoggedModel.created_ms), asc(LoggedModel.id)]
    return _page(session, query.order_by(*orderings), limit, page_token)


# ---- shared by the searches ----


def _view(view_type: str | None) -> tuple[str, ...]:
    stages = VIEW_TYPES.get((view_type or "ACTIVE_ONLY").upper())
    if stages is None:
        raise InvalidValue("view_type is one of ACTIVE_ONLY, DELETED_ONLY, ALL")
    return stages


def _attribute(columns: dict[str, Any], key: str, what: str) -> Any:
    if key not in columns:
        raise SearchError(
            f"Invalid attribute key {key!r} for {what}s; valid: "
            + ", ".join(sorted(k for k in columns if columns[k] is not None))
        )
    return columns[key]


def _only_attribute(ordering: Ordering, what: str) -> bool:
    if ordering.entity != "attribute":
        raise SearchError(f"{what.capitalize()} can be ordered only by their attributes")
    return True


def _number(comparison: Comparison) -> float:
    if not isinstance(comparison.value, int | float) or isinstance(comparison.value, bool):
        raise SearchError(
            f"{comparison.entity}s.{comparison.key} is compared with a number, "
            f"not {comparison.value!r}"
        )
    return float(comparison.value)


def _compare(column: Any, comparison: Comparison, *, strings: bool = False) -> ColumnElement[bool]:
    op, value = comparison.op, comparison.value
    if op in ("IS NULL", "IS NOT NULL"):
        return column.is_(None) if op == "IS NULL" else column.is_not(None)  # type: ignore[no-any-return]
    if op in ("IN", "NOT IN"):
        if not strings:
            raise SearchError(f"IN compares strings; {comparison.key!r} is not one")
        values = [str(v) for v in value] if isinstance(value, tuple) else [str(value)]
        return column.in_(values) if op == "IN" else column.not_in(values)  # type: ignore[no-any-return]
    if strings:
        if not isinstance(value, str):
            raise SearchError(f"{comparison.key!r} is compared with a quoted string, not {value!r}")
        if op == "LIKE":
            return column.like(value)  # type: ignore[no-any-return]
        if op == "ILIKE":
            return func.lower(column).like(value.lower())
        if op not in ("=", "!="):
            raise SearchError(f"{comparison.key!r} is compared with =, !=, LIKE or ILIKE, not {op}")
    else:
        if op in ("LIKE", "ILIKE"):
            raise SearchError(f"{op} compares strings; {comparison.key!r} is a number")
        value = _number(comparison)
    operations = {
        "=": column.__eq__,
        "!=": column.__ne__,
        "<": column.__lt__,
        "<=": column.__le__,
        ">": column.__gt__,
        ">=": column.__ge__,
    }
    return operations[op](value)  # type: ignore[no-any-return]


def _order(column: Any, ordering: Ordering) -> Any:
    return nulls_last(asc(column) if ordering.ascending else desc(column))


def _page(session: Session, query: Select[Any], limit: int, page_token: str | None) -> Found:
    offset = page_offset(page_token)
    rows = list(session.scalars(query.offset(offset).limit(limit + 1)))
    more = len(rows) > limit
    return Found(rows[:limit], next_token(offset, limit, more))
