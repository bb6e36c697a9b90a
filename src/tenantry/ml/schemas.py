"""Request and response bodies of the registry and tracking on Tenantry's own API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tenantry.kit.schemas import Input

Key = Field(min_length=1, max_length=250)


class ExperimentCreateIn(Input):
    name: str = Field(min_length=1, max_length=500)
    description: str = Field(default="", max_length=8000)
    tags: dict[str, str] = Field(default_factory=dict)


class ExperimentUpdateIn(Input):
    name: str | None = Field(default=None, min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=8000)


class ExperimentOut(BaseModel):
    id: str
    name: str
    description: str
    is_default: bool
    lifecycle_stage: str
    tags: dict[str, str]
    created_ms: int
    updated_ms: int
    tracking_uri_path: str


class RunCreateIn(Input):
    name: str | None = Field(default=None, max_length=250)
    hyperparameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)


class RunUpdateIn(Input):
    status: Literal["running", "finished", "failed", "killed"] | None = None
    name: str | None = Field(default=None, min_length=1, max_length=250)


class MetricPoint(BaseModel):
    key: str
    value: float
    step: int
    timestamp_ms: int


class RunOut(BaseModel):
    id: str
    experiment_id: str
    name: str
    status: str
    start_ms: int
    end_ms: int | None
    lifecycle_stage: str
    hyperparameters: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, MetricPoint]
    artifact_uri: str


class RunPage(BaseModel):
    items: list[RunOut]
    next_page_token: str | None = None


class HyperparametersIn(Input):
    """Hyperparameters, written once each (the same value again is fine)."""

    hyperparameters: dict[str, str | int | float | bool] = Field(min_length=1, max_length=100)


class MetricsIn(Input):
    """Metrics at one step (`log_metrics(step=…)`), or points each with its own step."""

    metrics: dict[str, float] = Field(default_factory=dict, max_length=1000)
    step: int = Field(default=0, ge=-(2**63), lt=2**63)
    timestamp_ms: int | None = Field(default=None, ge=0, lt=2**63)


class TagsIn(Input):
    tags: dict[str, str] = Field(min_length=1, max_length=100)


class MetricHistoryOut(BaseModel):
    key: str
    points: list[MetricPoint]
    next_page_token: str | None = None


class ArtifactOut(BaseModel):
    path: str
    is_dir: bool
    size: int | None = None
    sha256: str | None = None


class CompareOut(BaseModel):
    runs: list[RunOut]
    hyperparameters: list[str]
    metrics: list[str]


class ModelCreateIn(Input):
    name: str = Field(min_length=1, max_length=250)
    description: str = Field(default="", max_length=8000)
    tags: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


class ModelUpdateIn(Input):
    name: str | None = Field(default=None, min_length=1, max_length=250)
    description: str | None = Field(default=None, max_length=8000)
    metadata: dict[str, Any] | None = None


class VersionOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    version: int
    label: str | None
    description: str
    source: str
    run_id: str | None
    logged_model_id: str | None
    framework: str
    stage: str
    status: str
    aliases: list[str]
    tags: dict[str, str]
    downloads: int
    views: int
    created_by: str | None
    created_ms: int
    updated_ms: int


class ModelOut(BaseModel):
    id: str
    name: str
    description: str
    metadata: dict[str, Any]
    tags: dict[str, str]
    aliases: dict[str, int]
    latest_version: int | None
    created_by: str | None
    created_ms: int
    updated_ms: int


class ModelPage(BaseModel):
    items: list[ModelOut]
    next_page_token: str | None = None


class VersionCreateIn(Input):
    source: str = Field(default="", max_length=4000)
    run_id: str | None = Field(default=None, max_length=32)
    label: str | None = Field(default=None, max_length=64)
    framework: str = Field(default="", max_length=100)
    description: str = Field(default="", max_length=8000)
    tags: dict[str, str] = Field(default_factory=dict)


class VersionUpdateIn(Input):
    stage: Literal["none", "staging", "production", "archived"] | None = None
    description: str | None = Field(default=None, max_length=8000)
    label: str | None = Field(default=None, max_length=64)


class AliasIn(Input):
    version: int = Field(ge=1)


class ReadOut(BaseModel):
    kind: str
    actor_type: str
    actor_id: str
    at_ms: int


class UploadedOut(BaseModel):
    path: str
    size: int
    sha256: str
