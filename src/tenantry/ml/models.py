"""Tables of the model registry and experiment tracking. Every tenant-owned table leads with
`org_id` and `team_id`: things belong to one team.

Times the MLflow protocol carries (a run's start and end, a metric's timestamp, creation and
update times) are int64 milliseconds since the epoch, as the client sends and reads them: kept
as such, they go in and out with no conversion on the hot paths (logging metrics).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.kit.db import Base, JSONType

# An autoincrementing 64-bit key; SQLite autoincrements only its INTEGER PRIMARY KEY (the rowid).
BigSerial = BigInteger().with_variant(Integer, "sqlite")

ACTIVE = "active"
DELETED = "deleted"


def _org() -> Mapped[str]:
    return mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))


def _team() -> Mapped[str]:
    return mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))


# ---- tracking ----


class Experiment(Base):
    """A team's named set of runs. Each team has a default one (`is_default`), which MLflow's
    client names experiment "0"."""

    __tablename__ = "ml_experiments"
    __table_args__ = (
        UniqueConstraint("team_id", "name"),
        Index("ix_ml_experiments_org_id_lifecycle", "org_id", "lifecycle_stage"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = _org()
    team_id: Mapped[str] = _team()
    name: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    lifecycle_stage: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class ExperimentTag(Base):
    __tablename__ = "ml_experiment_tags"

    experiment_id: Mapped[str] = mapped_column(
        ForeignKey("ml_experiments.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Run(Base):
    """One training run: 32 hexadecimal characters of id, as MLflow's clients expect."""

    __tablename__ = "ml_runs"
    __table_args__ = (Index("ix_ml_runs_experiment_id_start_ms", "experiment_id", "start_ms"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = _org()
    team_id: Mapped[str] = _team()
    experiment_id: Mapped[str] = mapped_column(ForeignKey("ml_experiments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(250), default="")
    # The name the client gives its user (MLflow's `user_id`, often the OS login).
    user_name: Mapped[str] = mapped_column(String(250), default="")
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    lifecycle_stage: Mapped[str] = mapped_column(String(16), default=ACTIVE)


class RunParam(Base):
    """A hyperparameter: written once (the same value again is fine)."""

    __tablename__ = "ml_run_params"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("ml_runs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunTag(Base):
    """A run's tag: the last value written wins."""

    __tablename__ = "ml_run_tags"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("ml_runs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Metric(Base):
    """Every point of every metric of a run, appended (a history over steps)."""

    __tablename__ = "ml_metrics"
    __table_args__ = (Index("ix_ml_metrics_run_id_key_step", "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(BigSerial, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("ml_runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(250))
    value: Mapped[float] = mapped_column(Float)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    step: Mapped[int] = mapped_column(BigInteger, default=0)


class LatestMetric(Base):
    """Each metric's latest point (highest step, then latest timestamp): what a run shows and
    what search filters and sorts on, kept as points arrive so no search reads the history."""

    __tablename__ = "ml_latest_metrics"
    __table_args__ = (Index("ix_ml_latest_metrics_key_value", "key", "value"),)

    run_id: Mapped[str] = mapped_column(
        ForeignKey("ml_runs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    step: Mapped[int] = mapped_column(BigInteger)


class LoggedModel(Base):
    """A model logged from a run (MLflow 3's `log_model`): its artifacts, params and tags."""

    __tablename__ = "ml_logged_models"
    __table_args__ = (Index("ix_ml_logged_models_experiment_id", "experiment_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = _org()
    team_id: Mapped[str] = _team()
    experiment_id: Mapped[str] = mapped_column(ForeignKey("ml_experiments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(250))
    source_run_id: Mapped[str | None] = mapped_column(
        ForeignKey("ml_runs.id", ondelete="SET NULL"), nullable=True
    )
    model_type: Mapped[str] = mapped_column(String(250), default="")
    status: Mapped[str] = mapped_column(String(32))
    lifecycle_stage: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class LoggedModelTag(Base):
    __tablename__ = "ml_logged_model_tags"

    model_id: Mapped[str] = mapped_column(
        ForeignKey("ml_logged_models.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class LoggedModelParam(Base):
    __tablename__ = "ml_logged_model_params"

    model_id: Mapped[str] = mapped_column(
        ForeignKey("ml_logged_models.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunOutput(Base):
    """A logged model a run produced, at a step."""

    __tablename__ = "ml_run_outputs"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("ml_runs.id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[str] = mapped_column(
        ForeignKey("ml_logged_models.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(BigInteger, default=0)


# ---- registry ----


class RegisteredModel(Base):
    """A team's registered model: its versions, tags, aliases and free-form metadata."""

    __tablename__ = "ml_registered_models"
    __table_args__ = (UniqueConstraint("team_id", "name"), Index("ix_ml_rm_org_id", "org_id"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = _org()
    team_id: Mapped[str] = _team()
    name: Mapped[str] = mapped_column(String(250))
    description: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    # The highest version number ever given: numbers are never reused after a delete.
    last_version: Mapped[int] = mapped_column(Integer, default=0)


class RegisteredModelTag(Base):
    __tablename__ = "ml_registered_model_tags"

    model_id: Mapped[str] = mapped_column(
        ForeignKey("ml_registered_models.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ModelVersion(Base):
    """One version of a registered model: where it came from (a run, a logged model, an
    uploaded file), its framework, stage, aliases and status, and who read it how often."""

    __tablename__ = "ml_model_versions"
    __table_args__ = (Index("ix_ml_model_versions_run_id", "run_id"),)

    model_id: Mapped[str] = mapped_column(
        ForeignKey("ml_registered_models.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[str] = _org()
    team_id: Mapped[str] = _team()
    label: Mapped[str | None] = mapped_column(String(64), nullable=True)  # a semantic version
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(Text, default="")
    run_id: Mapped[str | None] = mapped_column(
        ForeignKey("ml_runs.id", ondelete="SET NULL"), nullable=True
    )
    logged_model_id: Mapped[str | None] = mapped_column(
        ForeignKey("ml_logged_models.id", ondelete="SET NULL"), nullable=True
    )
    framework: Mapped[str] = mapped_column(String(100), default="")
    stage: Mapped[str] = mapped_column(String(16), default="None")
    status: Mapped[str] = mapped_column(String(32), default="READY")
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    downloads: Mapped[int] = mapped_column(BigInteger, default=0)
    views: Mapped[int] = mapped_column(BigInteger, default=0)


class ModelVersionTag(Base):
    __tablename__ = "ml_model_version_tags"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_id", "version"],
            ["ml_model_versions.model_id", "ml_model_versions.version"],
            ondelete="CASCADE",
        ),
    )

    model_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ModelAlias(Base):
    """A name (`champion`) pointing at one version of a registered model."""

    __tablename__ = "ml_model_aliases"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_id", "version"],
            ["ml_model_versions.model_id", "ml_model_versions.version"],
            ondelete="CASCADE",
        ),
    )

    model_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    alias: Mapped[str] = mapped_column(String(250), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class ModelVersionRead(Base):
    """Who downloaded or viewed a model version, and when."""

    __tablename__ = "ml_model_version_reads"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_id", "version"],
            ["ml_model_versions.model_id", "ml_model_versions.version"],
            ondelete="CASCADE",
        ),
        Index("ix_ml_model_version_reads_version", "model_id", "version", "at_ms"),
    )

    id: Mapped[int] = mapped_column(BigSerial, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = _org()
    model_id: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # download | view
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(40))
    at_ms: Mapped[int] = mapped_column(BigInteger)


# ---- artifacts ----


class Artifact(Base):
    """A stored file: a run's, a logged model's or a model version's, by its path under the
    team's artifact root (`<experiment>/<run>/artifacts/…`, `<experiment>/models/<id>/artifacts/…`,
    `registry/<model>/<version>/…`), with its size and sha256. The bytes are in the artifact
    store, under the org and team."""

    __tablename__ = "ml_artifacts"
    __table_args__ = (
        UniqueConstraint("team_id", "path"),
        Index("ix_ml_artifacts_org_id", "org_id"),
    )

    id: Mapped[int] = mapped_column(BigSerial, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = _org()
    team_id: Mapped[str] = _team()
    path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
