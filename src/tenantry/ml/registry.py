"""The model registry: a team's registered models with description, tags and metadata; their
versions (integers, with an optional semantic version label), where each came from (a run, a
logged model, an uploaded file), framework, stage, aliases and status; and who downloaded or
viewed a version, and when.

A registered model is a resource of its own: a grant on one model (`mdl_…`) opens it to
someone without the permission on the whole team.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, asc, desc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission as P
from tenantry.authz.engine import Resource
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize_resource
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, InvalidValue, NotFound
from tenantry.kit.ids import new_id
from tenantry.metering.quotas import claim_count
from tenantry.ml import repository
from tenantry.ml.common import (
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
from tenantry.ml.models import LoggedModel, ModelVersion, RegisteredModel, Run
from tenantry.ml.search import Comparison, SearchError, parse_filter, parse_order_by
from tenantry.ml.tracking import Found, _compare, _order

STAGES = {"none": "None", "staging": "Staging", "production": "Production", "archived": "Archived"}
_LABEL = re.compile(r"^v?\d+(\.\d+){0,2}([-+][0-9A-Za-z.\-+]+)?$")
_ALIAS = re.compile(r"^[A-Za-z_][\w\-]{0,249}$")
REGISTRY_ROOT = "registry"


def _audit(
    ctx: Ctx,
    principal: Principal,
    team: TeamIn,
    action: str,
    target_id: str,
    summary: dict[str, Any] | None = None,
) -> None:
    audit.record(
        ctx,
        principal,
        org_id=team.org_id,
        team_id=team.id,
        target_type="model",
        target_id=target_id,
        summary=summary,
        action=action,
    )


def _allow_model(
    session: Session, principal: Principal, permission: P, model: RegisteredModel
) -> None:
    """The permission on this model: the team's roles, or a grant on the model itself."""
    authorize_resource(
        session,
        principal,
        permission,
        org_id=model.org_id,
        resource=Resource("model", model.id, model.team_id),
    )


def _by_name(session: Session, team: TeamIn, name: Any) -> RegisteredModel:
    found = (
        repository.registered_model(session, team_id=team.id, name=name)
        if isinstance(name, str)
        else None
    )
    if found is None:
        raise NotFound(f"Registered model {name!r} not found")
    return found


def _by_ref(session: Session, team: TeamIn, ref: str) -> RegisteredModel:
    """A model by its id (`mdl_…`) or its name."""
    if ref.startswith("mdl_"):
        found = repository.registered_model_by_id(session, team_id=team.id, model_id=ref)
        if found is not None:
            return found
    return _by_name(session, team, ref)


def model(session: Session, principal: Principal, team: TeamIn, ref: str) -> RegisteredModel:
    found = _by_ref(session, team, ref)
    _allow_model(session, principal, P.MODEL_READ, found)
    return found


def register_model(
    ctx: Ctx,
    principal: Principal,
    team: TeamIn,
    *,
    name: Any,
    description: str = "",
    tags: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> RegisteredModel:
    allow(ctx.session, principal, P.MODEL_CREATE, team)
    name = check_name(name, "A model's name")
    if len(name) > 250:
        raise InvalidValue("A model's name is at most 250 characters")
    checked = {
        check_key(k, "tag key"): check_value(v, MAX_TAG_VALUE) for k, v in (tags or {}).items()
    }
    claim_count(ctx.session, team.org_id, "models")
    if repository.registered_model(ctx.session, team_id=team.id, name=name) is not None:
        raise Conflict(f"Registered model {name!r} already exists", code="already_exists")
    now = now_ms(ctx)
    found = RegisteredModel(
        id=new_id("mdl"),
        org_id=team.org_id,
        team_id=team.id,
        name=name,
        description=check_value(description, MAX_TAG_VALUE, "description"),
        details=details or {},
        created_by=principal.user_id,
        created_ms=now,
        updated_ms=now,
        last_version=0,
    )
    ctx.session.add(found)
    try:
        ctx.session.flush()
    except IntegrityError:
        raise Conflict(f"Registered model {name!r} already exists", code="already_exists") from None
    for key, value in checked.items():
        repository.set_registered_model_tag(ctx.session, found.id, key, value)
    _audit(ctx, principal, team, "model.created", found.id, {"name": name})
    return found


def update_model(
    ctx: Ctx,
    principal: Principal,
    team: TeamIn,
    ref: str,
    *,
    name: str | None = None,
    description: str | None = None,
    details: dict[str, Any] | None = None,
) -> RegisteredModel:
    found = _by_ref(ctx.session, team, ref)
    _allow_model(ctx.session, principal, P.MODEL_UPDATE, found)
    changed: list[str] = []
    if name is not None and name != found.name:
        name = check_name(name, "A model's name")
        if repository.registered_model(ctx.session, team_id=team.id, name=name) is not None:
            raise Conflict(f"Registered model {name!r} already exists", code="already_exists")
        found.name = name
        changed.append("name")
    if description is not None and description != found.description:
        found.description = check_value(description, MAX_TAG_VALUE, "description")
        changed.append("description")
    if details is not None:
        found.details = details
        changed.append("metadata")
    found.updated_ms = now_ms(ctx)
    _audit(ctx, principal, team, "model.updated", found.id, {"changed": changed})
    return found


def delete_model(ctx: Ctx, principal: Principal, team: TeamIn, ref: str) -> str:
    """Delete the model with its versions, tags and aliases; its uploaded files' folder
    (returned) goes once committed."""
    found = _by_ref(ctx.session, team, ref)
    _allow_model(ctx.session, principal, P.MODEL_DELETE, found)
    ctx.session.delete(found)
    _audit(ctx, principal, team, "model.deleted", found.id, {"name": found.name})
    return f"{REGISTRY_ROOT}/{found.id}"


def set_model_tag(
    ctx: Ctx, principal: Principal, team: TeamIn, ref: str, key: Any, value: Any
) -> None:
    found = _by_ref(ctx.session, team, ref)
    _allow_model(ctx.session, principal, P.MODEL_UPDATE, found)
    key = check_key(key, "tag key")
    repository.set_registered_model_tag(
        ctx.session, found.id, key, check_value(value, MAX_TAG_VALUE)
    )
    found.updated_ms = now_ms(ctx)
    _audit(ctx, principal, team, "model.updated", found.id, {"tag": key})


def delete_model_tag(ctx: Ctx, principal: Principal, team: TeamIn, ref: str, key: str) -> None:
    found = _by_ref(ctx.session, team, ref)
    _allow_model(ctx.session, principal, P.MODEL_UPDATE, found)
    if not repository.delete_registered_model_tag(ctx.session, found.id, key):
        raise NotFound(f"No tag {key!r} on model {found.name!r}")
    _audit(ctx, principal, team, "model.updated", found.id, {"deleted_tag": key})


@dataclass
class ModelView:
    model: RegisteredModel
    tags: dict[str, str]
    aliases: dict[str, int]
    latest: list[ModelVersion]


def model_views(session: Session, models: Sequence[RegisteredModel]) -> list[ModelView]:
    ids = [m.id for m in models]
    tags = repository.registered_model_tags(session, ids)
    aliases = repository.aliases(session, ids)
    latest = repository.latest_versions(session, ids)
    return [ModelView(m, tags[m.id], aliases[m.id], latest[m.id]) for m in models]


_MODEL_ATTRIBUTES: dict[str, Any] = {
    "name": RegisteredModel.name,
    "id": RegisteredModel.id,
    "creation_timestamp": RegisteredModel.created_ms,
    "last_updated_timestamp": RegisteredModel.updated_ms,
    "timestamp": RegisteredModel.updated_ms,
}


def search_models(
    session: Session,
    principal: Principal,
    team: TeamIn,
    *,
    filter_text: str | None = None,
    order_by: list[str] | None = None,
    limit: int = 100,
    page_token: str | None = None,
) -> Found:
    allow(session, principal, P.MODEL_READ, team)
    query = repository.registered_models_query(team.id)
    try:
        for comparison in parse_filter(filter_text):
            if comparison.entity == "tag":
                value = repository.registered_model_tag_value(RegisteredModel.id, comparison.key)
                query = query.where(_tag_condition(value, comparison))
            elif comparison.entity == "attribute":
                column = _known(_MODEL_ATTRIBUTES, comparison.key, "registered model")
                query = query.where(
                    _compare(column, comparison, strings=comparison.key in ("name", "id"))
                )
            else:
                raise SearchError(f"Registered models cannot be searched by {comparison.entity}s")
        orderings = []
        for ordering in parse_order_by(order_by):
            if ordering.entity != "attribute":
                raise SearchError("Registered models can be ordered only by their attributes")
            orderings.append(
                _order(_known(_MODEL_ATTRIBUTES, ordering.key, "registered model"), ordering)
            )
    except SearchError as exc:
        raise InvalidValue(str(exc)) from None
    orderings += [asc(RegisteredModel.name)]
    offset = page_offset(page_token)
    rows = list(session.scalars(query.order_by(*orderings).offset(offset).limit(limit + 1)))
    more = len(rows) > limit
    return Found(rows[:limit], next_token(offset, limit, more))


def _tag_condition(value: Any, comparison: Comparison) -> ColumnElement[bool]:
    # A model without the tag matches `!=` (MLflow's own reading of `tag.x != 'true'`).
    condition = _compare(value, comparison, strings=True)
    if comparison.op == "!=":
        return condition | value.is_(None)  # type: ignore[no-any-return]
    return condition


def _known(columns: dict[str, Any], key: str, what: str) -> Any:
    if key not in columns:
        raise SearchError(
            f"Invalid attribute key {key!r} for {what}s; valid: {', '.join(sorted(columns))}"
        )
    return columns[key]


# ---- versions ----


def _version_number(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidValue(f"A model version is a positive integer, not {value!r}") from None
    if number < 1:
        raise InvalidValue(f"A model version is a positive integer, not {value!r}")
    return number


def _version(session: Session, found: RegisteredModel, version: Any) -> ModelVersion:
    number = _version_number(version)
    row = repository.model_version(session, found.id, number)
    if row is None:
        raise NotFound(f"Model {found.name!r} has no version {number}")
    return row


def create_version(
    ctx: Ctx,
    principal: Principal,
    team: TeamIn,
    ref: str,
    *,
    source: str = "",
    run_id: str | None = None,
    logged_model_id: str | None = None,
    description: str = "",
    tags: dict[str, str] | None = None,
    label: str | None = None,
    framework: str = "",
) -> tuple[RegisteredModel, ModelVersion]:
    found = _by_ref(ctx.session, team, ref)
    _allow_model(ctx.session, principal, P.MODEL_UPDATE, found)
    if label is not None and not _LABEL.match(label):
        raise InvalidValue(f"A version label is a semantic version such as 1.2.0, not {label!r}")
    source = check_value(source, 4000, "source")
    if logged_model_id is None and source.startswith("models:/m-"):
        logged_model_id = source.removeprefix("models:/").split("/")[0]
    if logged_model_id:
        logged = repository.logged_model(ctx.session, team_id=team.id, model_id=logged_model_id)
        if logged is None:
            raise NotFound(f"Logged model {logged_model_id!r} not found")
        run_id = run_id or logged.source_run_id
    if run_id and repository.run(ctx.session, team_id=team.id, run_id=run_id) is None:
        raise NotFound(f"Run {run_id!r} not found")
    locked = repository.registered_model_locked(ctx.session, found.id)
    assert locked is not None
    number = locked.last_version + 1
    locked.last_version = number
    now = now_ms(ctx)
    row = ModelVersion(
        model_id=found.id,
        version=number,
        org_id=team.org_id,
        team_id=team.id,
        label=label,
        description=check_value(description, MAX_TAG_VALUE, "description"),
        source=source,
        run_id=run_id or None,
        logged_model_id=logged_model_id or None,
        framework=check_value(framework, 100, "framework"),
        stage="None",
        status="READY",
        created_by=principal.user_id,
        created_ms=now,
        updated_ms=now,
        downloads=0,
        views=0,
    )
    ctx.session.add(row)
    ctx.session.flush()
    for key, value in (tags or {}).items():
        repository.set_version_tag(
            ctx.session,
            found.id,
            number,
            check_key(key, "tag key"),
            check_value(value, MAX_TAG_VALUE),
        )
    locked.updated_ms = now
    _audit(
        ctx,
        principal,
        team,
        "model_version.created",
        found.id,
        {"version": number, "source": source[:200]},
    )
    return found, row


def version(
    session: Session, principal: Principal, team: TeamIn, ref: str, number: Any
) -> tuple[RegisteredModel, ModelVersion]:
    found = _by_ref(session, team, ref)
    _allow_model(session, principal, P.MODEL_READ, found)
    return found, _version(session, found, number)


def update_version(
    ctx: Ctx,
    principal: Principal,
    team: TeamIn,
    ref: str,
    number: Any,
    *,
    description: str | None = None,
    stage: str | None = None,
    label: str | None = None,
    archive_others: bool = False,
) -> tuple[RegisteredModel, ModelVersion]:
    found = _by_ref(ctx.session, team, ref)
    _allow_model(ctx.session, principal, P.MODEL_UPDATE, found)
    row = _version(ctx.session, found, number)
    changed: dict[str, Any] = {}
    if description is not None:
        row.description = check_value(description, MAX_TAG_VALUE, "description")
        changed["description"] = True
    if label is not None:
        if not _LABEL.match(label):
            raise InvalidValue(
                f"A version label is a semantic version such as 1.2.0, not {label!r}"
            )
        changed["label"] = row.label = label
    if stage is not None:
        canonical = STAGES.get(stage.lower())
        if canonical is None:
            raise InvalidValue(f"A stage is one of {', '.join(STAGES.values())}")
        changed["stage"] = row.stage = canonical
        if archive_others and canonical in ("Staging", "Production"):
            for other in repository.model_versions(ctx.session, found.id):
                if other.version != row.version and other.stage == canonical:
                    other.stage = "Archived"
    row.updated_ms = found.updated_ms = now_ms(ctx)
    _audit(
        ctx, principal, team, "model_version.updated", found.id, {"version": row.version, **changed}
    )
    return found, row


def delete_version(ctx: Ctx, principal: Principal, team: TeamIn, ref: str, number: Any) -> str:
    """Delete one version; the folder of its uploaded files (returned) goes once committed."""
    found = _by_ref(ctx.session, team, ref)
    _allow_model(ctx.session, principal, P.MODEL_DELETE, found)
    row = _version(ctx.session, found, number)
    ctx.session.delete(row)
    _audit(ctx, principal, team, "model_version.deleted", found.id, {"version": row.version})
    return f"{REGISTRY_ROOT}/{found.id}/{row.version}"


def set_version_tag(
    ctx: Ctx, principal: Principal, team: TeamIn, ref: str, number: Any, key: Any, value: Any
) -> None:
    found = _by_ref(ctx.session, team, ref)
    _allow_model(ctx.session, principal, P.MODEL_UPDATE, found)
    row = _version(ctx.session, found, number)
    key = check_key(key, "tag key")
    repository.set_version_tag(
        ctx.session, found.id, row.version, key, check_value(value, MAX_TAG_VALUE)
    )
    _audit(
        ctx,
        principal,
        team,
        "model_version.updated",
        found.id,
        {"version": row.version, "tag": key},
    )


def delete_version_tag(
    ctx: Ctx, principal: Principal, team: TeamIn, ref: str, number: Any, key: str
) -> None:
    found = _by_ref(ctx.session, team, ref)
    _allow_model(ctx.session, principal, P.MODEL_UPDATE, found)
    row = _version(ctx.session, found, number)
    if not repository.delete_version_tag(ctx.session, found.id, row.version, key):
        raise NotFound(f"No tag {key!r} on version {row.version} of {found.name!r}")
    _audit(
        ctx,
        principal,
        team,
        "model_version.updated",
        found.id,
        {"version": row.version, "deleted_tag": key},
    )


def set_alias(
    ctx: Ctx, principal: Principal, team: TeamIn, ref: str, alias: Any, number: Any
) -> None:
    found = _by_ref(ctx.session, team, ref)
    _allow_model(ctx.session, principal, P.MODEL_UPDATE, found)
    if (
        not isinstance(alias, str)
        or not _ALIAS.match(alias)
        or alias.lower() == "latest"
        or re.fullmatch(r"v\d+", alias)
    ):
        raise InvalidValue(
            f"Invalid alias {alias!r}: letters, digits, - and _, not 'latest' or v<number>"
        )
    row = _version(ctx.session, found, number)
    repository.set_alias(ctx.session, found.id, alias, row.version)
    _audit(
        ctx, principal, team, "model_alias.set", found.id, {"alias": alias, "version": row.version}
    )


def delete_alias(ctx: Ctx, principal: Principal, team: TeamIn, ref: str, alias: str) -> None:
    found = _by_ref(ctx.session, team, ref)
    _allow_model(ctx.session, principal, P.MODEL_UPDATE, found)
    if not repository.delete_alias(ctx.session, found.id, alias):
        raise NotFound(f"Model {found.name!r} has no alias {alias!r}")
    _audit(ctx, principal, team, "model_alias.deleted", found.id, {"alias": alias})


def version_by_alias(
    session: Session, principal: Principal, team: TeamIn, ref: str, alias: str
) -> tuple[RegisteredModel, ModelVersion]:
    found = _by_ref(session, team, ref)
    _allow_model(session, principal, P.MODEL_READ, found)
    number = repository.aliases(session, [found.id])[found.id].get(alias)
    if number is None:
        raise NotFound(f"Model {found.name!r} has no alias {alias!r}")
    return found, _version(session, found, number)


def latest_versions(
    session: Session, principal: Principal, team: TeamIn, ref: str, stages: Sequence[str] = ()
) -> list[ModelVersion]:
    found = _by_ref(session, team, ref)
    _allow_model(session, principal, P.MODEL_READ, found)
    wanted = {STAGES.get(s.lower(), s) for s in stages}
    latest = repository.latest_versions(session, [found.id])[found.id]
    return [v for v in latest if not wanted or v.stage in wanted]


def versions(
    session: Session, principal: Principal, team: TeamIn, ref: str
) -> tuple[RegisteredModel, list[ModelVersion]]:
    found = _by_ref(session, team, ref)
    _allow_model(session, principal, P.MODEL_READ, found)
    return found, repository.model_versions(session, found.id)


@dataclass
class VersionView:
    name: str
    version: ModelVersion
    tags: dict[str, str]
    aliases: list[str]


def version_views(session: Session, pairs: Sequence[tuple[str, ModelVersion]]) -> list[VersionView]:
    keys = [(v.model_id, v.version) for _, v in pairs]
    tags = repository.version_tags(session, keys)
    aliases = repository.aliases(session, sorted({v.model_id for _, v in pairs}))
    return [
        VersionView(
            name,
            v,
            tags[(v.model_id, v.version)],
            sorted(a for a, n in aliases[v.model_id].items() if n == v.version),
        )
        for name, v in pairs
    ]


_VERSION_ATTRIBUTES: dict[str, Any] = {
    "name": RegisteredModel.name,
    "version_number": ModelVersion.version,
    "version": ModelVersion.version,
    "run_id": ModelVersion.run_id,
    "source_path": ModelVersion.source,
    "source": ModelVersion.source,
    "current_stage": ModelVersion.stage,
    "creation_timestamp": ModelVersion.created_ms,
    "last_updated_timestamp": ModelVersion.updated_ms,
    "model_id": ModelVersion.logged_model_id,
}
_VERSION_STRINGS = {"name", "run_id", "source_path", "source", "current_stage", "model_id"}


def search_versions(
    session: Session,
    principal: Principal,
    team: TeamIn,
    *,
    filter_text: str | None = None,
    order_by: list[str] | None = None,
    limit: int = 10_000,
    page_token: str | None = None,
) -> Found:
    allow(session, principal, P.MODEL_READ, team)
    query = repository.model_versions_query(team.id)
    try:
        for comparison in parse_filter(filter_text):
            if comparison.entity == "tag":
                value = repository.version_tag_value(
                    ModelVersion.model_id, ModelVersion.version, comparison.key
                )
                query = query.where(_tag_condition(value, comparison))
            elif comparison.entity == "attribute":
                column = _known(_VERSION_ATTRIBUTES, comparison.key, "model version")
                cmp = comparison
                value = comparison.value
                if comparison.key in ("version_number", "version") and isinstance(value, str):
                    if not value.isdigit():
                        raise SearchError(f"A version number is an integer, not {value!r}")
                    cmp = Comparison(comparison.entity, comparison.key, comparison.op, int(value))
                query = query.where(
                    _compare(column, cmp, strings=comparison.key in _VERSION_STRINGS)
                )
            else:
                raise SearchError(f"Model versions cannot be searched by {comparison.entity}s")
        orderings = []
        for ordering in parse_order_by(order_by):
            if ordering.entity != "attribute":
                raise SearchError("Model versions can be ordered only by their attributes")
            orderings.append(
                _order(_known(_VERSION_ATTRIBUTES, ordering.key, "model version"), ordering)
            )
    except SearchError as exc:
        raise InvalidValue(str(exc)) from None
    orderings += [asc(RegisteredModel.name), desc(ModelVersion.version)]
    offset = page_offset(page_token)
    rows = list(session.execute(query.order_by(*orderings).offset(offset).limit(limit + 1)))
    more = len(rows) > limit
    pairs = [(row[1], row[0]) for row in rows[:limit]]
    return Found(pairs, next_token(offset, limit, more))


# ---- where a version's files are, and who read them ----


def artifact_root(session: Session, team: TeamIn, row: ModelVersion) -> str:
    """The team-relative folder holding a version's files: its logged model's, a run's
    folder from a `runs:/` source, or the registry's own for an uploaded file."""
    source = row.source
    if row.logged_model_id:
        logged: LoggedModel | None = repository.logged_model(
            session, team_id=team.id, model_id=row.logged_model_id
        )
        if logged is not None:
            return f"{logged.experiment_id}/models/{logged.id}/artifacts"
    if source.startswith("runs:/"):
        run_id, _, rest = source.removeprefix("runs:/").partition("/")
        found: Run | None = repository.run(session, team_id=team.id, run_id=run_id)
        if found is not None:
            return f"{found.experiment_id}/{found.id}/artifacts" + (f"/{rest}" if rest else "")
    if source.startswith("mlflow-artifacts:/"):
        return source.removeprefix("mlflow-artifacts:").strip("/")
    return f"{REGISTRY_ROOT}/{row.model_id}/{row.version}"


def note_read(
    open_writer: Callable[[], Session],
    principal: Principal,
    row: ModelVersion,
    *,
    kind: str,
    at_ms: int,
) -> None:
    """Count a download or a view of a version, with who and when, in a short transaction of
    its own: the request that reads is a reader, and the count must not wait for it."""
    with open_writer() as session:
        repository.record_read(
            session,
            {
                "org_id": row.org_id,
                "model_id": row.model_id,
                "version": row.version,
                "kind": kind,
                "actor_type": principal.actor_type,
                "actor_id": principal.actor_id,
                "at_ms": at_ms,
            },
        )
        session.commit()


def reads(
    session: Session, principal: Principal, team: TeamIn, ref: str, number: Any, *, limit: int = 100
) -> list[Any]:
    found = _by_ref(session, team, ref)
    _allow_model(session, principal, P.MODEL_READ, found)
    row = _version(session, found, number)
    return repository.reads(session, found.id, row.version, limit=limit)
