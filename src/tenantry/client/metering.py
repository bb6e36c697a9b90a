"""SDK calls of metering (mixed into `tenantry.client.api.Api`); see that module's conventions.

Usage (`record_usage`, `team_usage`, `org_usage`), admission (`admit`, `settle`), quotas
(`org_quotas`, `team_quotas`, `quota_alerts`) and plans (`org_plan`, `set_plan_overrides`).
Quantities are `Decimal` or decimal strings; answers carry them as strings, exactly.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from tenantry.client._calls import API, Call, endpoint, fields, iso, model, segment
from tenantry.client.models import Result

Quantity = Decimal | int | str

# ---- results ----


class EventResult(Result):
    id: str
    status: Literal["accepted", "duplicate", "rejected"]
    code: str | None = None
    detail: str | None = None


class UsageRecorded(Result):
    org_id: str
    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResult]


class Admission(Result):
    decision: Literal["allow", "deny"]
    reasons: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    reservation_id: str | None = None
    expires_at: datetime | None = None
    remaining: dict[str, str | None]
    rate_limit: dict[str, Any] | None = None
    budgets: list[dict[str, Any]] | None = None
    estimated_cost: str | None = None
    governance: dict[str, Any] | None = None
    approval_id: str | None = None

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"


class Settled(Result):
    reservation_id: str
    status: str
    team_id: str
    usage: dict[str, str]
    recorded_events: list[str]
    expired_before_settle: bool
    remaining: dict[str, str | None]


class UsageRow(Result):
    meter: str
    unit: str
    group: str | None = None
    bucket: datetime | None = None
    quantity: str
    events: int


class UsageSummary(Result):
    org_id: str
    team_id: str | None = None
    since: datetime
    until: datetime
    group_by: str
    granularity: str | None = None
    totals: dict[str, str]
    rows: list[UsageRow]


class QuotaState(Result):
    key: str
    kind: str
    meter: str | None = None
    limit: str | None = None
    used: str | None = None
    reserved: str
    remaining: str | None = None
    enforcement: str
    period: str
    period_start: datetime | None = None
    period_end: datetime | None = None
    team_used: str | None = None
    overage: str
    overage_cost: str | None = None


class Quotas(Result):
    org_id: str
    team_id: str | None = None
    plan: str
    custom: bool
    upgrade_to: str | None = None
    quotas: list[QuotaState]


class QuotaAlert(Result):
    id: str
    quota: str
    threshold: int
    used: str
    limit: str
    enforcement: str
    period_start: datetime
    created_at: datetime


class QuotaAlerts(Result):
    org_id: str
    alerts: list[QuotaAlert]


class PlanQuota(Result):
    key: str
    kind: str
    meter: str | None = None
    limit: str | None = None
    enforcement: str
    period: str


class Plan(Result):
    org_id: str
    key: str
    name: str
    custom: bool
    monthly_price: str
    yearly_price: str
    currency: str
    quotas: list[PlanQuota]
    rate_limits: dict[str, int]
    overage_rates: dict[str, str]
    upgrade_to: str | None = None


def usage_event(
    event_id: str,
    meter: str,
    quantity: Quantity,
    *,
    timestamp: datetime,
    team: str | None = None,
    user: str | None = None,
    api_key: str | None = None,
    dimensions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One event for `record_usage`; `event_id` is yours, and sending it again records nothing."""
    return fields(
        id=event_id,
        meter=meter,
        quantity=str(quantity),
        timestamp=iso(timestamp),
        team=team,
        user=user,
        api_key=api_key,
        dimensions=dimensions or None,
    )


def _quantities(values: dict[str, Quantity]) -> dict[str, str]:
    return {meter: str(q) for meter, q in values.items()}


def _usage_params(
    since: datetime | None, until: datetime | None, group_by: str | None, granularity: str | None
) -> dict[str, Any]:
    return fields(since=iso(since), until=iso(until), group_by=group_by, granularity=granularity)


class MeteringCalls:
    """Routes of metering, described once for both clients."""

    @endpoint
    def record_usage(
        self, events: list[dict[str, Any]], *, org: str | None = None
    ) -> Call[UsageRecorded]:
        """Record up to 1,000 events (see `usage_event`); each is accepted, a duplicate, or
        rejected with a reason. `org` is needed only with a user's token and no team."""
        return Call(
            "POST", f"{API}/usage/events", model(UsageRecorded), body=fields(org=org, events=events)
        )

    @endpoint
    def admit(
        self,
        team: str,
        action: str,
        *,
        estimate: dict[str, Quantity] | None = None,
        provider: str | None = None,
        model_name: str | None = None,
        ttl_seconds: int | None = None,
        data_classification: str | None = None,
        region: str | None = None,
        tags: dict[str, str] | None = None,
        approval_id: str | None = None,
    ) -> Call[Admission]:
        """May this principal do `action` on `team`, expecting to use `estimate`? A request a
        policy sent for approval is retried with the `approval_id` it was given, once approved."""
        body = fields(
            team=team,
            action=action,
            estimate=_quantities(estimate or {}),
            provider=provider,
            model=model_name,
            ttl_seconds=ttl_seconds,
            data_classification=data_classification,
            region=region,
            tags=tags,
            approval_id=approval_id,
        )
        return Call("POST", f"{API}/admission", model(Admission), body=body)

    @endpoint
    def settle(self, reservation_id: str, usage: dict[str, Quantity]) -> Call[Settled]:
        """Record what an admitted action used and release the rest of its hold."""
        return Call(
            "POST",
            f"{API}/admission/{segment(reservation_id)}/settle",
            model(Settled),
            body={"usage": _quantities(usage)},
        )

    @endpoint
    def team_usage(
        self,
        team: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        group_by: str | None = None,
        granularity: str | None = None,
    ) -> Call[UsageSummary]:
        params = _usage_params(since, until, group_by, granularity)
        return Call("GET", f"{API}/teams/{segment(team)}/usage", model(UsageSummary), params=params)

    @endpoint
    def org_usage(
        self,
        org: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        group_by: str | None = None,
        granularity: str | None = None,
    ) -> Call[UsageSummary]:
        params = _usage_params(since, until, group_by, granularity)
        return Call("GET", f"{API}/orgs/{segment(org)}/usage", model(UsageSummary), params=params)

    @endpoint
    def org_quotas(self, org: str) -> Call[Quotas]:
        return Call("GET", f"{API}/orgs/{segment(org)}/quotas", model(Quotas))

    @endpoint
    def team_quotas(self, team: str) -> Call[Quotas]:
        return Call("GET", f"{API}/teams/{segment(team)}/quotas", model(Quotas))

    @endpoint
    def quota_alerts(self, org: str) -> Call[QuotaAlerts]:
        return Call("GET", f"{API}/orgs/{segment(org)}/quota-alerts", model(QuotaAlerts))

    @endpoint
    def org_plan(self, org: str) -> Call[Plan]:
        return Call("GET", f"{API}/orgs/{segment(org)}/plan", model(Plan))

    @endpoint
    def set_plan_overrides(
        self,
        org: str,
        *,
        name: str | None = None,
        quotas: dict[str, dict[str, Any]] | None = None,
        rate_limits: dict[str, int] | None = None,
        overage_rates: dict[str, Quantity | None] | None = None,
    ) -> Call[Plan]:
        """Replace the org's overrides (a custom plan); no arguments: back to the catalog.
        Operators only (403 `operator_only` for the org's own members): see
        `set_tenant_overrides`."""
        body = fields(
            name=name,
            quotas=quotas,
            rate_limits=rate_limits,
            overage_rates={k: None if v is None else str(v) for k, v in overage_rates.items()}
            if overage_rates
            else None,
        )
        return Call("PUT", f"{API}/orgs/{segment(org)}/plan-overrides", model(Plan), body=body)
