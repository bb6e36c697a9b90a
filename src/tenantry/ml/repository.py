"""Every query of the model registry and experiment tracking, scoped to a team.

The hot statements (a metric point, a batch of them) are Core inserts of plain tuples: no ORM
object per point. The latest value of each metric is upserted beside the history, on SQLite and
PostgreSQL alike (`INSERT … ON CONFLICT … DO UPDATE … WHERE`), so reading a run or searching
runs never scans the history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tenantry.ml.models import (
    ACTIVE,
    Artifact,
    Experiment,
    ExperimentTag,
    LatestMetric,
    LoggedModel,
    LoggedModelParam,
    LoggedModelTag,
    Metric,
    ModelAlias,
    ModelVersion,
    ModelVersionRead,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelTag,
    Run,
    RunOutput,
    RunParam,
    RunTag,
)
from tenantry.tenancy.models import Team

# ---- teams ----


def team_by_ref(session: Session, *, org_id: str, ref: str) -> tuple[str, str] | None:
    """(team id, slug) of the org's team named by id or slug."""
    column = Team.id if ref.startswith("team_") else Team.slug
    row = session.execute(
        select(Team.id, Team.slug).where(Team.org_id == org_id, column == ref.lower())
    ).first()
    return (row[0], row[1]) if row is not None else None


def team_slug(session: Session, team_id: str) -> str | None:
    return session.scalar(select(Team.slug).where(Team.id == team_id))


# ---- counting (quotas) ----


def count_experiments(session: Session, org_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Experiment)
            .where(Experiment.org_id == org_id, Experiment.lifecycle_stage == ACTIVE)
        )
        or 0
    )


def count_models(session: Session, org_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(RegisteredModel)
            .where(RegisteredModel.org_id == org_id)
        )
        or 0
    )


# ---- experiments ----


def experiment(session: Session, *, team_id: str, experiment_id: str) -> Experiment | None:
    found = session.get(Experiment, experiment_id)
    return found if found is not None and found.team_id == team_id else None


def experiment_by_name(session: Session, *, team_id: str, name: str) -> Experiment | None:
    return session.scalars(
        select(Experiment).where(Experiment.team_id == team_id, Experiment.name == name)
    ).first()


def default_experiment(session: Session, *, team_id: str) -> Experiment | None:
    return session.scalars(
        select(Experiment).where(Experiment.team_id == team_id, Experiment.is_default.is_(True))
    ).first()


def experiment_tags(session: Session, experiment_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {i: {} for i in experiment_ids}
    if experiment_ids:
        rows = session.execute(
            select(ExperimentTag.experiment_id, ExperimentTag.key, ExperimentTag.value).where(
                ExperimentTag.experiment_id.in_(experiment_ids)
            )
        )
        for experiment_id, key, value in rows:
            out[experiment_id][key] = value
    return out


def set_experiment_tag(session: Session, experiment_id: str, key: str, value: str) -> None:
    _upsert(session, ExperimentTag, {"experiment_id": experiment_id, "key": key, "value": value})


def experiments_query(team_id: str) -> Select[Experiment]:
    return select(Experiment).where(Experiment.team_id == team_id)


# ---- runs ----


def run(session: Session, *, team_id: str, run_id: str) -> Run | None:
    found = session.get(Run, run_id)
    return found if found is not None and found.team_id == team_id else None


def run_row(session: Session, *, team_id: str, run_id: str) -> tuple[str, str, str] | None:
    """(experiment id, status, lifecycle stage) of a run of the team: what logging checks."""
    row = session.execute(
        select(Run.experiment_id, Run.status, Run.lifecycle_stage).where(
            Run.id == run_id, Run.team_id == team_id
        )
    ).first()
    return (row[0], row[1], row[2]) if row is not None else None


def add_run(session: Session, values: dict[str, Any]) -> None:
    session.execute(insert(Run), [values])


def update_run(session: Session, run_id: str, values: dict[str, Any]) -> None:
    session.execute(update(Run).where(Run.id == run_id).values(**values))


def run_params(session: Session, run_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    return _key_values(session, RunParam, RunParam.run_id, run_ids)


def run_tags(session: Session, run_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    return _key_values(session, RunTag, RunTag.run_id, run_ids)


def latest_metrics(
    session: Session, run_ids: Sequence[str]
) -> dict[str, list[tuple[str, float, int, int]]]:
    """Per run: (key, value, timestamp, step) of each metric's latest point."""
    out: dict[str, list[tuple[str, float, int, int]]] = {i: [] for i in run_ids}
    if run_ids:
        rows = session.execute(
            select(
                LatestMetric.run_id,
                LatestMetric.key,
                LatestMetric.value,
                LatestMetric.timestamp_ms,
                LatestMetric.step,
            )
            .where(LatestMetric.run_id.in_(run_ids))
            .order_by(LatestMetric.run_id, LatestMetric.key)
        )
        for run_id, key, value, timestamp, step in rows:
            out[run_id].append((key, value, timestamp, step))
    return out


def run_outputs(session: Session, run_ids: Sequence[str]) -> dict[str, list[tuple[str, int]]]:
    out: dict[str, list[tuple[str, int]]] = {i: [] for i in run_ids}
    if run_ids:
        rows = session.execute(
            select(RunOutput.run_id, RunOutput.model_id, RunOutput.step).where(
                RunOutput.run_id.in_(run_ids)
            )
        )
        for run_id, model_id, step in rows:
            out[run_id].append((model_id, step))
    return out


def add_run_outputs(session: Session, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        _upsert(session, RunOutput, row, keys=("run_id", "model_id"))


def existing_params(session: Session, run_id: str, keys: Iterable[str]) -> dict[str, str]:
    wanted = list(keys)
    if not wanted:
        return {}
    rows = session.execute(
        select(RunParam.key, RunParam.value).where(
            RunParam.run_id == run_id, RunParam.key.in_(wanted)
        )
    )
    return {key: value for key, value in rows}


def add_params(session: Session, rows: list[dict[str, str]]) -> None:
    if rows:
        session.execute(insert(RunParam), rows)


def set_run_tags(session: Session, rows: list[dict[str, str]]) -> None:
    for row in rows:
        _upsert(session, RunTag, row)


def delete_run_tag(session: Session, run_id: str, key: str) -> int:
    result = session.execute(delete(RunTag).where(RunTag.run_id == run_id, RunTag.key == key))
    return int(getattr(result, "rowcount", 0) or 0)


def add_metrics(
    session: Session, run_id: str, points: Sequence[tuple[str, float, int, int]]
) -> None:
    """Append points (key, value, timestamp, step) and move each key's latest point."""
    if not points:
        return
    session.execute(
        insert(Metric),
        [
            {"run_id": run_id, "key": k, "value": v, "timestamp_ms": t, "step": s}
            for k, v, t, s in points
        ],
    )
    latest: dict[str, tuple[str, float, int, int]] = {}
    for point in points:
        key, value, timestamp, step = point
        held = latest.get(key)
        if held is None or (step, timestamp, value) >= (held[3], held[2], held[1]):
            latest[key] = point
    _upsert_latest(session, run_id, list(latest.values()))


def _upsert_latest(
    session: Session, run_id: str, points: list[tuple[str, float, int, int]]
) -> None:
    dialect = session.get_bind().dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = [
        {"run_id": run_id, "key": k, "value": v, "timestamp_ms": t, "step": s}
        for k, v, t, s in sorted(points)
    ]
    stmt = make(LatestMetric).values(rows)
    new = stmt.excluded
    table = LatestMetric.__table__.c
    newer = or_(
        new.step > table.step,
        and_(new.step == table.step, new.timestamp_ms > table.timestamp_ms),
        and_(
            new.step == table.step,
            new.timestamp_ms == table.timestamp_ms,
            new.value >= table.value,
        ),
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={"value": new.value, "timestamp_ms": new.timestamp_ms, "step": new.step},
            where=newer,
        )
    )


def metric_history(
    session: Session, run_id: str, key: str, *, offset: int, limit: int
) -> list[tuple[str, float, int, int]]:
    rows = session.execute(
        select(Metric.key, Metric.value, Metric.timestamp_ms, Metric.step)
        .where(Metric.run_id == run_id, Metric.key == key)
        .order_by(Metric.step, Metric.timestamp_ms, Metric.id)
        .offset(offset)
        .limit(limit)
    )
    return [(k, v, t, s) for k, v, t, s in rows]


def metric_keys(session: Session, run_ids: Sequence[str]) -> list[str]:
    if not run_ids:
        return []
    return sorted(
        session.scalars(select(LatestMetric.key).where(LatestMetric.run_id.in_(run_ids)).distinct())
    )


def param_keys(session: Session, run_ids: Sequence[str]) -> list[str]:
    if not run_ids:
        return []
    return sorted(
        session.scalars(select(RunParam.key).where(RunParam.run_id.in_(run_ids)).distinct())
    )


def runs_query(team_id: str) -> Select[Run]:
    return select(Run).where(Run.team_id == team_id)


def metric_value(run_id_column: Any, key: str) -> Any:
    """The latest value of metric `key` of the run in `run_id_column` (a scalar subquery)."""
    return (
        select(LatestMetric.value)
        .where(LatestMetric.run_id == run_id_column, LatestMetric.key == key)
        .scalar_subquery()
    )


def param_value(run_id_column: Any, key: str) -> Any:
    return (
        select(RunParam.value)
        .where(RunParam.run_id == run_id_column, RunParam.key == key)
        .scalar_subquery()
    )


def tag_value(run_id_column: Any, key: str) -> Any:
    return (
        select(RunTag.value)
        .where(RunTag.run_id == run_id_column, RunTag.key == key)
        .scalar_subquery()
    )


def has_metric(run_id_column: Any, key: str, condition: Any) -> ColumnElement[bool]:
    return exists().where(
        LatestMetric.run_id == run_id_column, LatestMetric.key == key, condition(LatestMetric.value)
    )


def has_param(run_id_column: Any, key: str, condition: Any) -> ColumnElement[bool]:
    return exists().where(
        RunParam.run_id == run_id_column, RunParam.key == key, condition(RunParam.value)
    )


def has_tag(run_id_column: Any, key: str, condition: Any) -> ColumnElement[bool]:
    return exists().where(
        RunTag.run_id == run_id_column, RunTag.key == key, condition(RunTag.value)
    )


def delete_run(session: Session, run_id: str) -> None:
    session.execute(delete(Run).where(Run.id == run_id))


# ---- logged models ----


def logged_model(session: Session, *, team_id: str, model_id: str) -> LoggedModel | None:
    found = session.get(LoggedModel, model_id)
    return found if found is not None and found.team_id == team_id else None


def logged_model_data(
    session: Session, model_ids: Sequence[str]
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    tags = _key_values(session, LoggedModelTag, LoggedModelTag.model_id, model_ids)
    params = _key_values(session, LoggedModelParam, LoggedModelParam.model_id, model_ids)
    return tags, params


def set_logged_model_tags(session: Session, model_id: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        _upsert(session, LoggedModelTag, {"model_id": model_id, "key": key, "value": value})


def delete_logged_model_tag(session: Session, model_id: str, key: str) -> int:
    result = session.execute(
        delete(LoggedModelTag).where(LoggedModelTag.model_id == model_id, LoggedModelTag.key == key)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def set_logged_model_params(session: Session, model_id: str, params: dict[str, str]) -> None:
    for key, value in params.items():
        _upsert(session, LoggedModelParam, {"model_id": model_id, "key": key, "value": value})


def logged_models_query(team_id: str) -> Select[LoggedModel]:
    return select(LoggedModel).where(LoggedModel.team_id == team_id)


def logged_model_tag_value(id_column: Any, key: str) -> Any:
    return (
        select(LoggedModelTag.value)
        .where(LoggedModelTag.model_id == id_column, LoggedModelTag.key == key)
        .scalar_subquery()
    )


# ---- registered models ----


def registered_model(session: Session, *, team_id: str, name: str) -> RegisteredModel | None:
    return session.scalars(
        select(RegisteredModel).where(
            RegisteredModel.team_id == team_id, RegisteredModel.name == name
        )
    ).first()


def registered_model_by_id(
    session: Session, *, team_id: str, model_id: str
) -> RegisteredModel | None:
    found = session.get(RegisteredModel, model_id)
    return found if found is not None and found.team_id == team_id else None


def registered_model_locked(session: Session, model_id: str) -> RegisteredModel | None:
    """The model's row, locked until the transaction ends (new version numbers)."""
    return session.scalars(
        select(RegisteredModel).where(RegisteredModel.id == model_id).with_for_update()
    ).first()


def registered_models_query(team_id: str) -> Select[RegisteredModel]:
    return select(RegisteredModel).where(RegisteredModel.team_id == team_id)


def registered_model_tags(session: Session, model_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    return _key_values(session, RegisteredModelTag, RegisteredModelTag.model_id, model_ids)


def registered_model_tag_value(id_column: Any, key: str) -> Any:
    return (
        select(RegisteredModelTag.value)
        .where(RegisteredModelTag.model_id == id_column, RegisteredModelTag.key == key)
        .scalar_subquery()
    )


def set_registered_model_tag(session: Session, model_id: str, key: str, value: str) -> None:
    _upsert(session, RegisteredModelTag, {"model_id": model_id, "key": key, "value": value})


def delete_registered_model_tag(session: Session, model_id: str, key: str) -> int:
    result = session.execute(
        delete(RegisteredModelTag).where(
            RegisteredModelTag.model_id == model_id, RegisteredModelTag.key == key
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def aliases(session: Session, model_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {i: {} for i in model_ids}
    if model_ids:
        rows = session.execute(
            select(ModelAlias.model_id, ModelAlias.alias, ModelAlias.version).where(
                ModelAlias.model_id.in_(model_ids)
            )
        )
        for model_id, alias, version in rows:
            out[model_id][alias] = version
    return out


def set_alias(session: Session, model_id: str, alias: str, version: int) -> None:
    _upsert(
        session,
        ModelAlias,
        {"model_id": model_id, "alias": alias, "version": version},
        keys=("model_id", "alias"),
    )


def delete_alias(session: Session, model_id: str, alias: str) -> int:
    result = session.execute(
        delete(ModelAlias).where(ModelAlias.model_id == model_id, ModelAlias.alias == alias)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def model_version(session: Session, model_id: str, version: int) -> ModelVersion | None:
    return session.get(ModelVersion, (model_id, version))


def model_versions(session: Session, model_id: str) -> list[ModelVersion]:
    return list(
        session.scalars(
            select(ModelVersion)
            .where(ModelVersion.model_id == model_id)
            .order_by(ModelVersion.version)
        )
    )


def latest_versions(session: Session, model_ids: Sequence[str]) -> dict[str, list[ModelVersion]]:
    """Per model, its latest version in each stage (MLflow's `latest_versions`)."""
    out: dict[str, list[ModelVersion]] = {i: [] for i in model_ids}
    if not model_ids:
        return out
    newest = (
        select(ModelVersion.model_id, ModelVersion.stage, func.max(ModelVersion.version).label("v"))
        .where(ModelVersion.model_id.in_(model_ids))
        .group_by(ModelVersion.model_id, ModelVersion.stage)
        .subquery()
    )
    rows = session.scalars(
        select(ModelVersion)
        .join(
            newest,
            and_(newest.c.model_id == ModelVersion.model_id, newest.c.v == ModelVersion.version),
        )
        .order_by(ModelVersion.model_id, ModelVersion.version)
    )
    for found in rows:
        out[found.model_id].append(found)
    return out


def model_versions_query(team_id: str) -> Select[ModelVersion, str]:
    return (
        select(ModelVersion, RegisteredModel.name)
        .join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
        .where(ModelVersion.team_id == team_id)
    )


def version_tags(
    session: Session, keys: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], dict[str, str]]:
    out: dict[tuple[str, int], dict[str, str]] = {k: {} for k in keys}
    if keys:
        rows = session.execute(
            select(
                ModelVersionTag.model_id,
                ModelVersionTag.version,
                ModelVersionTag.key,
                ModelVersionTag.value,
            ).where(tuple_(ModelVersionTag.model_id, ModelVersionTag.version).in_(list(keys)))
        )
        for model_id, version, key, value in rows:
            out[(model_id, version)][key] = value
    return out


def version_tag_value(model_column: Any, version_column: Any, key: str) -> Any:
    return (
        select(ModelVersionTag.value)
        .where(
            ModelVersionTag.model_id == model_column,
            ModelVersionTag.version == version_column,
            ModelVersionTag.key == key,
        )
        .scalar_subquery()
    )


def set_version_tag(session: Session, model_id: str, version: int, key: str, value: str) -> None:
    _upsert(
        session,
        ModelVersionTag,
        {"model_id": model_id, "version": version, "key": key, "value": value},
        keys=("model_id", "version", "key"),
    )


def delete_version_tag(session: Session, model_id: str, version: int, key: str) -> int:
    result = session.execute(
        delete(ModelVersionTag).where(
            ModelVersionTag.model_id == model_id,
            ModelVersionTag.version == version,
            ModelVersionTag.key == key,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def record_read(session: Session, values: dict[str, Any]) -> None:
    session.execute(insert(ModelVersionRead), [values])
    column = ModelVersion.downloads if values["kind"] == "download" else ModelVersion.views
    session.execute(
        update(ModelVersion)
        .where(
            ModelVersion.model_id == values["model_id"], ModelVersion.version == values["version"]
        )
        .values({column.key: column + 1})
    )


def reads(session: Session, model_id: str, version: int, *, limit: int) -> list[ModelVersionRead]:
    return list(
        session.scalars(
            select(ModelVersionRead)
            .where(ModelVersionRead.model_id == model_id, ModelVersionRead.version == version)
            .order_by(ModelVersionRead.id.desc())
            .limit(limit)
        )
    )


# ---- artifacts ----


def artifact(session: Session, *, team_id: str, path: str) -> Artifact | None:
    return session.scalars(
        select(Artifact).where(Artifact.team_id == team_id, Artifact.path == path)
    ).first()


def artifacts_under(session: Session, *, team_id: str, prefix: str) -> list[Artifact]:
    """The artifacts at or below `prefix` (a directory path without a trailing slash)."""
    condition = Artifact.path.startswith(prefix + "/", autoescape=True) if prefix else literal(True)
    return list(
        session.scalars(
            select(Artifact).where(Artifact.team_id == team_id, condition).order_by(Artifact.path)
        )
    )


def add_artifact(session: Session, values: dict[str, Any]) -> None:
    session.execute(insert(Artifact), [values])


def update_artifact(session: Session, artifact_id: int, values: dict[str, Any]) -> None:
    session.execute(update(Artifact).where(Artifact.id == artifact_id).values(**values))


def delete_artifacts(session: Session, artifact_ids: Sequence[int]) -> None:
    if artifact_ids:
        session.execute(delete(Artifact).where(Artifact.id.in_(list(artifact_ids))))


def stored_bytes(session: Session, org_id: str) -> int:
    return int(
        session.scalar(
            select(func.coalesce(func.sum(Artifact.size), 0)).where(Artifact.org_id == org_id)
        )
        or 0
    )


# ---- helpers ----


def _key_values(
    session: Session, model: Any, owner: Any, owner_ids: Sequence[str]
) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {i: {} for i in owner_ids}
    if owner_ids:
        rows = session.execute(
            select(owner, model.key, model.value).where(owner.in_(owner_ids)).order_by(model.key)
        )
        for owner_id, key, value in rows:
            out[owner_id][key] = value
    return out


def _upsert(
    session: Session, model: Any, values: dict[str, Any], *, keys: Sequence[str] | None = None
) -> None:
    """Insert the row, or overwrite its non-key columns where it exists."""
    dialect = session.get_bind().dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    index = list(keys) if keys is not None else [k for k in values if k not in ("value",)]
    stmt = make(model).values(values)
    rest = {k: stmt.excluded[k] for k in values if k not in index}
    if rest:
        session.execute(stmt.on_conflict_do_update(index_elements=index, set_=rest))
    else:
        session.execute(stmt.on_conflict_do_nothing(index_elements=index))
