"""Bodies of spend's endpoints. Money and prices travel as decimal strings (numbers are accepted
on the way in); token counts as integers; times as RFC 3339 strings with a zone."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from tenantry.kit.schemas import Input, Timestamp, decimal_in

MAX_CALLS = 1000
MAX_TAGS = 16
MAX_TOKENS = 10**12

CallId = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=254)]
Provider = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
ModelName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
TagName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
TagValue = Annotated[str, StringConstraints(max_length=256)]
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
# Written as governance's level names are (lower case), so a level's retention finds its calls.
ClassificationLevel = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
    ),
]
Money = Annotated[Decimal, decimal_in(ge=0, le=10**9, decimal_places=6)]
Rate = Annotated[Decimal, decimal_in(ge=0, le=10**6, decimal_places=6)]
Percent = Annotated[int, Field(ge=1, le=100)]


class LlmCallIn(Input):
    """One LLM call. `cost` in dollars when you know it; left out, it is priced from the table
    (`cost_source: computed`), or flagged `unpriced` when the model has no price."""

    id: CallId = Field(description="Your id for the call: sending it again records nothing")
    team: Ref | None = Field(default=None, description="Needed unless the API key has a team")
    user: Ref | None = Field(default=None, description="The member who made it (default: you)")
    api_key: Ref | None = Field(default=None, description="The key it ran under (default: yours)")
    provider: Provider
    model: ModelName
    input_tokens: Tokens = Field(default=0, description="Prompt tokens, cached ones included")
    output_tokens: Tokens = 0
    cached_input_tokens: Tokens = 0
    cost: Money | None = None
    latency_ms: Annotated[int, Field(ge=0, le=86_400_000)] | None = None
    status: Literal["success", "error"] = "success"
    error_kind: Annotated[str, StringConstraints(max_length=64)] | None = None
    timestamp: Timestamp | None = Field(default=None, description="When it ended (now)")
    tags: dict[TagName, TagValue] = Field(
        default_factory=dict,
        max_length=MAX_TAGS,
        description="feature, cost_centre, environment, ... (at most 16)",
    )
    reservation_id: Annotated[str, StringConstraints(max_length=40)] | None = Field(
        default=None, description="The admission this call was made under: settled by it"
    )
    data_classification: ClassificationLevel | None = Field(
        default=None,
        description="The classification level the call's data had: its retention period "
        "purges the call record",
    )
    org: Ref | None = Field(default=None, description="Unused: the team says whose call it is")

    @model_validator(mode="after")
    def _cached_within_input(self) -> Self:
        if self.cached_input_tokens > self.input_tokens:
            raise ValueError("cached_input_tokens are among the input_tokens: at most as many")
        return self


class LlmCallBatchIn(Input):
    calls: list[LlmCallIn] = Field(min_length=1, max_length=MAX_CALLS)


class LlmCallResultOut(BaseModel):
    id: str
    status: Literal["accepted", "duplicate", "rejected"]
    code: str | None = None
    detail: str | None = None
    cost: str | None = None
    cost_source: Literal["caller", "computed", "unpriced"] | None = None


class LlmCallsRecordedOut(BaseModel):
    org_id: str
    accepted: int
    duplicates: int
    rejected: int
    results: list[LlmCallResultOut]


# ---- cost views ----


class CostEntryOut(BaseModel):
    cost: str
    requests: int


class MemberCostOut(CostEntryOut):
    email: str | None = Field(
        default=None, description="Shown to those who may see the team's members"
    )


class UnpricedOut(BaseModel):
    requests: int
    models: list[dict[str, Any]]


class BillingPeriodOut(BaseModel):
    label: str
    start: datetime
    end: datetime
    currency: str
    total_cost: str
    total_requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    computed_cost_requests: int
    breakdown_by_provider: dict[str, CostEntryOut]
    breakdown_by_model: dict[str, CostEntryOut]
    breakdown_by_member: dict[str, MemberCostOut]
    breakdown_by_team: dict[str, CostEntryOut]
    unpriced: UnpricedOut


class BudgetStatusOut(BaseModel):
    id: str
    name: str
    scope: str
    team_id: str | None
    user_id: str | None
    api_key_id: str | None
    provider: str | None
    model: str | None
    period: str
    amount: str
    exceeded_action: str
    period_start: datetime
    period_end: datetime
    spent: str
    reserved: str
    remaining: str
    percent_used: str
    thresholds: list[int] | None = None


class AlertOut(BaseModel):
    id: str
    type: str
    budget_id: str
    threshold: int
    current_value: float
    spent: str
    amount: str
    message: str
    period_start: datetime
    created_at: datetime
    acknowledged: bool
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class BudgetAlertsOut(BaseModel):
    warning_threshold: int | None
    exceeded_action: str | None
    current_alerts: list[AlertOut]


class ConfidenceIntervalOut(BaseModel):
    level: float
    lower: str
    upper: str


class ForecastOut(BaseModel):
    """The period-end projection (docs/spend.md, "Forecasts"): `robust_trend_weekday` while the
    period runs, `actual` once it is over."""

    method: str
    projected_total_cost: str
    as_of: datetime
    confidence_interval: ConfidenceIntervalOut
    confidence_score: float
    trend: Literal["increasing", "stable", "decreasing"]
    weekly_change: float
    history_days: int
    budget_runs_out_on: date | None


class CostViewOut(BaseModel):
    org_id: str
    team_id: str | None
    billing_period: BillingPeriodOut
    budget: BudgetStatusOut | None
    budget_alerts: BudgetAlertsOut
    budgets: list[BudgetStatusOut]
    forecast: ForecastOut
    settings: dict[str, Any] | None = None


# ---- seed 001's settings and actions ----


class BudgetAlertsIn(Input):
    warning_threshold: Percent | None = None
    exceeded_action: Literal["notify", "restrict"] | None = None


class CostAllocationIn(Input):
    method: Literal["usage_based", "even_split"]


class ReportingIn(Input):
    frequency: Literal["daily", "weekly", "monthly"]
    recipients: list[Annotated[str, StringConstraints(max_length=254)]] = Field(
        default_factory=list, max_length=50
    )
    include_member_breakdown: bool = True

    @field_validator("recipients")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for item in value:
            local, _, domain = item.partition("@")
            if not local or "." not in domain:
                raise ValueError(f"{item!r} is not an email address")
        return value


class BillingSettingsIn(Input):
    """Seed 001's body: each part left out stays as it was."""

    monthly_budget: Money | None = None
    budget_alerts: BudgetAlertsIn | None = None
    cost_allocation: CostAllocationIn | None = None
    reporting: ReportingIn | None = None


class BillingSettingsOut(BaseModel):
    team_id: str
    monthly_budget: str | None
    budget_alerts: dict[str, Any]
    cost_allocation: dict[str, Any]
    reporting: dict[str, Any]
    budget: BudgetStatusOut | None


class BillingActionIn(Input):
    action: Literal["acknowledge_alert"]
    alert_id: Annotated[str, StringConstraints(min_length=1, max_length=40)]


class AlertAcknowledgedOut(BaseModel):
    action: str
    alert: AlertOut


# ---- budgets ----


class BudgetIn(Input):
    scope: Literal["org", "team", "member", "api_key"]
    name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
        | None
    ) = None
    team: Ref | None = None
    member: Ref | None = Field(default=None, description="A member budget's member (id or email)")
    api_key: Ref | None = None
    provider: Provider | None = Field(default=None, description="Only this provider's spend")
    model: ModelName | None = Field(default=None, description="Only this model's spend")
    amount: Money
    period: Literal["day", "week", "month"] = "month"
    thresholds: list[Percent] = Field(default_factory=lambda: [80], max_length=10)
    exceeded_action: Literal["notify", "restrict"] = "notify"


class TeamBudgetIn(BudgetIn):
    scope: Literal["org", "team", "member", "api_key"] = "team"


class BudgetUpdateIn(Input):
    name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
        | None
    ) = None
    amount: Money | None = None
    thresholds: list[Percent] | None = Field(default=None, max_length=10)
    exceeded_action: Literal["notify", "restrict"] | None = None


class BudgetOut(BudgetStatusOut):
    org_id: str
    thresholds: list[int] | None = None
    created_at: datetime
    updated_at: datetime


class BudgetsOut(BaseModel):
    org_id: str
    budgets: list[BudgetOut]


class AlertsOut(BaseModel):
    org_id: str
    alerts: list[AlertOut]


# ---- prices ----


class PriceIn(Input):
    provider: Provider
    model: ModelName
    input_per_million: Rate
    output_per_million: Rate
    cached_input_per_million: Rate | None = None
    substitution_class: Annotated[str, StringConstraints(max_length=64)] | None = None
    effective_from: Timestamp


class PriceFileIn(Input):
    """A price file: the shipped `spend/prices.json` is one."""

    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    currency: Literal["usd"] = "usd"
    prices: list[PriceIn] = Field(min_length=1, max_length=5000)


class PriceOut(BaseModel):
    id: str | None = None
    provider: str
    model: str
    input_per_million: str
    output_per_million: str
    cached_input_per_million: str | None
    substitution_class: str
    effective_from: datetime
    source: Literal["org", "imported", "shipped"]


class PricesOut(BaseModel):
    org_id: str | None = None
    at: datetime
    currency: str
    prices: list[PriceOut]


class PricesImportedOut(BaseModel):
    imported: int


# ---- admission's part ----

ADMISSION_BUDGETS_DOC = (
    "Every budget that applied (spend): what it has spent, holds and has left in its period; "
    "`decided` marks the one that refused"
)


# ---- LiteLLM ----


class LiteLLMPayloadIn(Input):
    """LiteLLM's `StandardLoggingPayload`, as its generic logging callback sends it: the fields
    of LiteLLM 1.82 (others are refused, as in every body). What is read is in
    `spend.litellm_payload`."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    api_base: Any = None
    cache_hit: Any = None
    cache_key: Any = None
    call_type: Any = None
    completionStartTime: Any = None
    completion_tokens: Any = None
    cost_breakdown: Any = None
    custom_llm_provider: Any = None
    endTime: Any = None
    end_user: Any = None
    error_information: Any = None
    error_str: Any = None
    guardrail_information: Any = None
    hidden_params: Any = None
    id: Any = None
    messages: Any = None
    metadata: Any = None
    model: Any = None
    model_group: Any = None
    model_id: Any = None
    model_map_information: Any = None
    model_parameters: Any = None
    prompt_tokens: Any = None
    request_tags: Any = None
    requester_ip_address: Any = None
    response: Any = None
    response_cost: Any = None
    response_cost_failure_debug_info: Any = None
    response_time: Any = None
    saved_cache_cost: Any = None
    standard_built_in_tools_params: Any = None
    startTime: Any = None
    status: Any = None
    status_fields: Any = None
    stream: Any = None
    total_tokens: Any = None
    trace_id: Any = None
    user_agent: Any = None


# ---- analytics ----


class AnalyticsOut(BaseModel):
    """Seed 001's analytics: the sections asked for by `include` (docs/spend.md, "Analytics")."""

    org_id: str
    team_id: str | None
    period: dict[str, Any]
    currency: str
    usage: dict[str, Any] | None = None
    insights: dict[str, Any] | None = None
    compliance: dict[str, Any] | None = None


Section = Literal["usage", "insights", "compliance"]


class AnalyticsExportIn(Input):
    format: Literal["csv", "json"] = "csv"
    days: Annotated[int, Field(ge=1, le=400)] = 30
    include: list[Section] = Field(
        default=["usage", "insights", "compliance"],
        min_length=1,
        description="Sections of a JSON export (CSV is the usage rows)",
    )


# ---- anomalies ----


class AnomalyOut(BaseModel):
    """A day's cost far above its subject's baseline, and how far (docs/spend.md)."""

    id: str
    anomaly_id: str
    dimension: Literal["team", "member", "api_key", "model"]
    team_id: str | None
    subject: str
    day: str
    value: str
    baseline: str
    mad: str
    score: str
    history_days: int
    message: str
    created_at: datetime
    acknowledged: bool
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class AnomaliesOut(BaseModel):
    org_id: str
    anomalies: list[AnomalyOut]


# ---- cost centres and chargeback ----

Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
TeamRefs = Annotated[list[Annotated[str, StringConstraints(max_length=40)]], Field(max_length=500)]


class CostCentreIn(Input):
    name: Name
    code: Code = Field(description="The finance system's code, unique in the org")
    teams: TeamRefs = Field(default_factory=list, description="Team ids charged here")


class CostCentreTeamsIn(Input):
    teams: TeamRefs = Field(description="Exactly the cost centre's teams from now on")


class CostCentreOut(BaseModel):
    id: str
    org_id: str
    name: str
    code: str
    teams: list[str]
    created_at: datetime
    updated_at: datetime


class CostCentresOut(BaseModel):
    org_id: str
    cost_centres: list[CostCentreOut]


class CentreChargeOut(BaseModel):
    id: str
    code: str
    name: str
    teams: list[str]
    teams_with_spend: list[str]
    usage_cost: str = Field(description="What its teams spent")
    requests: int
    charged: str = Field(description="What it is charged by the method")
    share: str = Field(description="Percent of the total charged")


class UnallocatedOut(BaseModel):
    usage_cost: str
    requests: int
    teams: list[str]
    charged: str


class ChargebackOut(BaseModel):
    org_id: str
    period: dict[str, Any]
    method: Literal["usage_based", "even_split"]
    currency: str
    total_cost: str
    total_requests: int
    cost_centres: list[CentreChargeOut]
    unallocated: UnallocatedOut
