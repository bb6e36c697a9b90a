"""Bodies of the metering endpoints. Quantities travel as decimal strings (numbers are accepted
on the way in) so that no float ever rounds them; times as RFC 3339 strings."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, Field, StringConstraints, field_validator, with_config
from typing_extensions import TypedDict

from tenantry.kit.schemas import (
    INPUT_ITEM_CONFIG,
    DecimalIn,
    Input,
    Timestamp,
    UnitPrice,
    decimal_in,
)

MAX_BATCH = 1000
MAX_DIMENSIONS = 20

EventId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
IdRef = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Action = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
DimensionValue = Annotated[str, StringConstraints(max_length=256)]


def _check_meters(value: dict[str, Decimal]) -> dict[str, Decimal]:
    if len(value) > MAX_DIMENSIONS:
        raise ValueError(f"at most {MAX_DIMENSIONS} meters")
    return value


EVENT_ID_DOC = "Your id for the event: sending it again records nothing"


class UsageEventIn(Input):
    """One event sent on its own."""

    id: EventId = Field(description=EVENT_ID_DOC)
    meter: Key
    quantity: DecimalIn
    timestamp: Timestamp
    team: IdRef | None = None
    user: IdRef | None = None
    api_key: IdRef | None = None
    dimensions: dict[Key, DimensionValue] = Field(
        default_factory=dict,
        max_length=MAX_DIMENSIONS,
        description=f"provider, model, resource_type, ... (at most {MAX_DIMENSIONS})",
    )
    org: IdRef | None = Field(default=None, description="Needed only with a user's token")


@with_config(INPUT_ITEM_CONFIG)
class UsageEventItem(TypedDict):
    """An event of a batch: the fields of `UsageEventIn` but `org`, checked by pydantic's core
    alone (a batch holds a thousand)."""

    id: Annotated[EventId, Field(description=EVENT_ID_DOC)]
    meter: Key
    quantity: DecimalIn
    timestamp: Timestamp
    team: NotRequired[IdRef | None]
    user: NotRequired[IdRef | None]
    api_key: NotRequired[IdRef | None]
    dimensions: NotRequired[
        Annotated[
            dict[Key, DimensionValue],
            Field(
                max_length=MAX_DIMENSIONS,
                description=f"provider, model, resource_type, ... (at most {MAX_DIMENSIONS})",
            ),
        ]
    ]


class UsageBatchIn(Input):
    org: IdRef | None = Field(default=None, description="Needed only with a user's token")
    events: list[UsageEventItem] = Field(min_length=1, max_length=MAX_BATCH)


class EventResultOut(BaseModel):
    id: str
    status: Literal["accepted", "duplicate", "rejected"]
    code: str | None = None
    detail: str | None = None


class UsageRecordedOut(BaseModel):
    org_id: str
    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResultOut]


class AdmissionIn(Input):
    team: IdRef
    action: Action = Field(description="A permission (model:create) or a label (llm.generate)")
    estimate: dict[Key, DecimalIn] = Field(default_factory=dict)
    provider: Key | None = None
    model: Label | None = None
    ttl_seconds: int | None = Field(default=None, ge=1, le=86_400)
    data_classification: Key | None = Field(
        default=None, description="The data's classification level (public, internal, ...)"
    )
    region: Key | None = Field(default=None, description="Where the request is made or served")
    tags: dict[Key, DimensionValue] = Field(default_factory=dict, max_length=MAX_DIMENSIONS)
    approval_id: IdRef | None = Field(
        default=None, description="An approved request's id, to retry an admission it covers"
    )

    _meters = field_validator("estimate")(_check_meters)

    def context(self) -> dict[str, Any]:
        """What admission's checks read besides the estimate."""
        found = {
            "data_classification": self.data_classification,
            "region": self.region,
            "approval_id": self.approval_id,
        }
        return {
            **{k: v for k, v in found.items() if v is not None},
            **({"tags": dict(self.tags)} if self.tags else {}),
        }


class ReasonOut(BaseModel):
    code: str
    detail: str
    model_config = {"extra": "allow"}


class AdmissionOut(BaseModel):
    decision: Literal["allow", "deny"]
    reasons: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    reservation_id: str | None
    expires_at: datetime | None
    remaining: dict[str, str | None]
    rate_limit: dict[str, Any] | None = None
    # What admission holders add (spend's budgets: every one that applied, and the cost held).
    budgets: list[dict[str, Any]] | None = Field(
        default=None,
        description="Every budget that applied: what it has spent, holds and has left in its "
        "period; `decided` marks the one that refused",
    )
    estimated_cost: str | None = Field(
        default=None, description="The cost held against the budgets, in dollars"
    )
    governance: dict[str, Any] | None = Field(
        default=None,
        description="The policies' decision: every policy that matched, the values its "
        "conditions saw, the exceptions that applied, and the approval request made or used",
    )
    approval_id: str | None = Field(
        default=None, description="The approval request made (or used) by this admission"
    )


class SettleIn(Input):
    usage: dict[Key, DecimalIn]

    _meters = field_validator("usage")(_check_meters)


class SettledOut(BaseModel):
    reservation_id: str
    status: str
    team_id: str
    usage: dict[str, str]
    recorded_events: list[str]
    expired_before_settle: bool
    remaining: dict[str, str | None]


class SummaryRowOut(BaseModel):
    meter: str
    unit: str
    group: str | None
    bucket: datetime | None
    quantity: str
    events: int


class SummaryOut(BaseModel):
    org_id: str
    team_id: str | None
    since: datetime
    until: datetime
    group_by: str
    granularity: str | None
    totals: dict[str, str]
    rows: list[SummaryRowOut]


class QuotaOut(BaseModel):
    key: str
    kind: str
    meter: str | None
    limit: str | None
    used: str | None
    reserved: str
    remaining: str | None
    enforcement: str
    period: str
    period_start: datetime | None
    period_end: datetime | None
    team_used: str | None = None
    overage: str
    overage_cost: str | None


class QuotasOut(BaseModel):
    org_id: str
    team_id: str | None
    plan: str
    custom: bool
    upgrade_to: str | None
    quotas: list[QuotaOut]


class QuotaOverrideIn(Input):
    limit: Annotated[Decimal, decimal_in(ge=0)] | None = None
    enforcement: Literal["hard", "soft"] | None = None


class RateLimitsIn(Input):
    org_per_minute: int | None = Field(default=None, ge=1, le=10_000_000)
    org_burst: int | None = Field(default=None, ge=1, le=10_000_000)
    key_per_minute: int | None = Field(default=None, ge=1, le=10_000_000)
    key_burst: int | None = Field(default=None, ge=1, le=10_000_000)


class PlanOverridesIn(Input):
    """The org's whole set of overrides (PUT replaces it; `{}` removes every override)."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    quotas: dict[Key, QuotaOverrideIn] = Field(default_factory=dict)
    rate_limits: RateLimitsIn | None = None
    overage_rates: dict[Key, UnitPrice | None] = Field(default_factory=dict)

    def as_overrides(self) -> dict[str, Any]:
        return {
            "name": self.name or None,
            "quotas": {
                k: v.model_dump(mode="json", exclude_unset=True) for k, v in self.quotas.items()
            },
            "rate_limits": self.rate_limits.model_dump(exclude_none=True)
            if self.rate_limits
            else {},
            "overage_rates": {
                k: None if v is None else str(v) for k, v in self.overage_rates.items()
            },
        }


class PlanQuotaOut(BaseModel):
    key: str
    kind: str
    meter: str | None
    limit: str | None
    enforcement: str
    period: str


class PlanOut(BaseModel):
    org_id: str
    key: str
    name: str
    custom: bool
    monthly_price: str
    yearly_price: str
    currency: str
    quotas: list[PlanQuotaOut]
    rate_limits: dict[str, int]
    overage_rates: dict[str, str]
    upgrade_to: str | None


class QuotaAlertOut(BaseModel):
    id: str
    quota: str
    threshold: int
    used: str
    limit: str
    enforcement: str
    period_start: datetime
    created_at: datetime


class QuotaAlertsOut(BaseModel):
    org_id: str
    alerts: list[QuotaAlertOut]
