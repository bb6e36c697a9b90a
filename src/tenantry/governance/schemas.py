"""Request and response bodies of governance. Rules and exceptions are JSON checked by
`governance.conditions` (so a refusal names the condition at fault); the rest here."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from tenantry.kit.schemas import Input, check_settings_size, decimal_in

Text = Annotated[str, StringConstraints(max_length=2000)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
TagValue = Annotated[str, StringConstraints(max_length=256)]
Quantity = Annotated[Decimal, decimal_in(ge=0, le=10**12, decimal_places=6)]
PolicyKind = Literal["cost_control", "model_access", "data_handling", "usage", "custom"]
Status = Literal["draft", "active", "disabled"]


class PolicyIn(Input):
    name: Short
    description: Text | None = None
    type: PolicyKind = "custom"
    status: Status = "draft"
    rules: dict[str, Any] = Field(
        description="{conditions: [{field, operator, value} | {all|any: [...]} | {not: {...}}], "
        "actions: [{type: allow|deny|require_approval|log|notify, parameters}]}"
    )
    exceptions: dict[str, Any] | None = Field(
        default=None, description="{roles, users (ids or emails), api_keys, time_windows}"
    )


class PolicyPatchIn(Input):
    name: Short | None = None
    description: Text | None = None
    type: PolicyKind | None = None
    status: Status | None = None
    rules: dict[str, Any] | None = None
    exceptions: dict[str, Any] | None = None


class PolicyActionIn(Input):
    """Seed 001's body: `{"action": "create_policy", "policy": {...}}`; `update_policy` names
    the policy to change."""

    action: Literal["create_policy", "update_policy"]
    policy_id: Ref | None = None
    policy: PolicyPatchIn


# ---- data classification (seed 001) ----

LevelName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
    ),
]
Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
# Regions are compared without case ("us" is "US"): ISO codes or the deployment's own names.
Region = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, min_length=1, max_length=64)
]
MAX_LEVELS = 50


class HandlingRequirements(Input):
    """What admission enforces for requests of a level (docs/governance.md#data-classification).
    Strict types: `"true"` or `"90"` are refused, not read as a bool or a number."""

    encryption_required: StrictBool = Field(
        default=False, description="Admitted only over TLS (an https request)"
    )
    access_logging: StrictBool = Field(
        default=False, description="Each admitted request writes an audit event"
    )
    retention_period_days: Annotated[StrictInt, Field(ge=1, le=36_500)] | None = Field(
        default=None, description="Recorded LLM calls of the level are purged after these days"
    )
    geographic_restrictions: list[Region] | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The only regions a request may name (it must name one); none: anywhere",
    )
    approval_required: StrictBool = Field(
        default=False, description="Each request waits for an approval, used once"
    )


class ClassificationLevelIn(Input):
    categories: list[Category] = Field(default_factory=list, max_length=100)
    handling_requirements: HandlingRequirements = Field(default_factory=HandlingRequirements)


class DataClassificationIn(Input):
    """Seed 001's `data_classification`: the levels an org (or a team) defines, each with its
    categories and handling requirements. The default levels (public, internal, confidential,
    restricted) always exist; a level named here replaces its default."""

    levels: dict[LevelName, ClassificationLevelIn] = Field(
        default_factory=dict, max_length=MAX_LEVELS
    )


class GovernanceConfigIn(Input):
    """The time zone conditions read the time of day in; the data classification, checked;
    seed 001's other sections are kept as sent."""

    timezone: Key | None = Field(default=None, description="IANA name; UTC when none is set")
    data_classification: DataClassificationIn | None = None
    compliance: dict[str, Any] | None = None
    notifications: dict[str, Any] | None = None

    def settings(self) -> dict[str, Any]:
        return self.model_dump(exclude={"timezone"}, exclude_none=True)


class DryRunIn(Input):
    days: int = Field(default=30, ge=1, le=366)
    rules: dict[str, Any] | None = Field(default=None, description="Try these rules instead")
    exceptions: dict[str, Any] | None = None


class ExplainIn(Input):
    team: Ref
    action: Short = "llm.generate"
    provider: Key | None = None
    model: Short | None = None
    estimate: dict[Key, Quantity] = Field(default_factory=dict)
    data_classification: Key | None = None
    region: Key | None = None
    tags: dict[Key, TagValue] = Field(default_factory=dict, max_length=20)


class DecisionIn(Input):
    reason: Text | None = None


class PolicyOut(BaseModel):
    id: str
    org_id: str
    team_id: str | None
    name: str
    description: str
    type: str
    status: str
    rules: dict[str, Any]
    exceptions: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    versions: list[dict[str, Any]] | None = None


class PoliciesOut(BaseModel):
    policies: list[PolicyOut]


class GovernanceOut(BaseModel):
    team_id: str
    policies: list[PolicyOut]
    config: dict[str, Any]
    approvals_pending: int
    audit: dict[str, Any] | None = None


class ConfigOut(BaseModel):
    timezone: str
    settings: dict[str, Any]


class ApprovalOut(BaseModel):
    id: str
    org_id: str
    team_id: str
    user_id: str | None
    api_key_id: str | None
    policy_ids: list[str]
    request: dict[str, Any]
    estimated_cost: str | None
    approvers: dict[str, Any]
    status: str
    created_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    used_at: datetime | None


class ApprovalsOut(BaseModel):
    approvals: list[ApprovalOut]


class ViolationOut(BaseModel):
    id: str
    at: datetime
    policy_id: str
    policy_version: int
    team_id: str
    user_id: str | None
    api_key_id: str | None
    kind: str
    action: str
    model: str | None
    values: dict[str, Any]
    approval_id: str | None


class ViolationsOut(BaseModel):
    violations: list[ViolationOut]


class DryRunOut(BaseModel):
    policy_id: str
    version: int
    changed: bool
    days: int
    since: datetime
    until: datetime
    calls: int
    would: dict[str, Any]
    by_member: dict[str, Any]
    by_model: dict[str, Any]
    by_day: dict[str, Any]


class ClassificationLevelOut(BaseModel):
    categories: list[str]
    handling_requirements: dict[str, Any]
    configured: bool = Field(description="Set by the org or team; false: a default level")


class ClassificationOut(BaseModel):
    org_id: str
    team_id: str | None
    defined_by: str | None = Field(
        description="Whose configuration applies: the team's (or a team above it), the org's "
        "(`org`), or none (the defaults)"
    )
    levels: dict[str, ClassificationLevelOut]


class ClassificationDecisionOut(BaseModel):
    level: str
    region: str | None
    outcome: str = Field(description="allow | deny | require_approval")
    reasons: list[dict[str, Any]]
    handling_requirements: dict[str, Any]
    categories: list[str]


class ExplainOut(BaseModel):
    decision: str
    evaluated: int
    matched: list[dict[str, Any]]
    excepted: list[dict[str, Any]]
    values: dict[str, Any]
    policies_applicable: list[str]
    classification: ClassificationDecisionOut | None = None
    model_access: dict[str, Any] | None = Field(
        default=None, description="Model access's decision and the rule deciding"
    )


# ---- model access (seed 003's `ai_configuration`) ----

# A model or provider name, or a pattern with `*` and `?` (`gpt-4*`, `openai/*`); two names stand
# for a kind of model: `fine_tuned_models` (`ft:*`) and `custom_models` (provider `custom`).
AccessPattern = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/@*?+-]+$"
    ),
]


class RateLimitsIn(Input):
    requests_per_minute: int | None = Field(default=None, ge=0, le=10**9)
    tokens_per_day: int | None = Field(default=None, ge=0, le=10**12)
    concurrent_requests: int | None = Field(default=None, ge=0, le=10**6)


class ModelAccessIn(Input):
    """Seed 003's `ai_configuration` as written (also accepted wrapped in
    `{"ai_configuration": …}`); `providers` is the same for providers."""

    model_access: dict[AccessPattern, bool] = Field(
        default_factory=dict,
        max_length=200,
        description="{model or pattern: true (allow) | false (deny)}; with any true, only "
        "matching models are allowed",
    )
    providers: dict[AccessPattern, bool] = Field(
        default_factory=dict, max_length=50, description="{provider or pattern: true | false}"
    )
    rate_limits: RateLimitsIn = Field(default_factory=RateLimitsIn)
    safety_settings: dict[str, Any] | None = Field(
        default=None, description="Kept as sent; admission does not read them"
    )

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"ai_configuration"}:
            return value["ai_configuration"]
        return value

    _size = field_validator("safety_settings")(check_settings_size)


class RateLimitsOut(BaseModel):
    requests_per_minute: int | None
    tokens_per_day: int | None
    concurrent_requests: int | None


class ModelAccessOut(BaseModel):
    org_id: str
    scope: Literal["org", "team", "api_key"]
    subject_id: str
    configured: bool = Field(description="False: nothing set here yet (everything inherited)")
    model_access: dict[str, bool]
    providers: dict[str, bool]
    rate_limits: RateLimitsOut
    safety_settings: dict[str, Any] | None
    updated_at: datetime | None


class EffectiveModelAccessOut(BaseModel):
    org_id: str
    team_id: str | None
    api_key_id: str | None
    layers: list[ModelAccessOut] = Field(
        description="What applies, broadest first: the org, the teams from the root down, the key"
    )
    models: dict[str, list[dict[str, Any]]] = Field(
        description="`allow` and `deny`: every pattern with the scope that set it"
    )
    providers: dict[str, list[dict[str, Any]]]
    rate_limits: dict[str, dict[str, Any] | None] = Field(
        description="The narrowest limit of each kind and the scope that set it (null: none)"
    )
    check: dict[str, Any] | None = Field(
        default=None, description="With `model`/`provider`: the decision and the rule deciding"
    )
