"""SDK calls of spend (mixed into `tenantry.client.api.Api`); see that module's conventions.

LLM calls (`record_llm_calls`, `llm_call`), cost views (`team_billing`, `org_costs`), seed 001's
billing settings and alert acknowledgement, budgets, alerts and the price table. Money is in US
dollars as decimal strings, exactly.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from tenantry.client._calls import (
    API,
    Call,
    endpoint,
    fields,
    iso,
    model,
    nothing,
    segment,
    text,
)
from tenantry.client.models import Result

Money = Decimal | int | str


class LlmCallResult(Result):
    id: str
    status: Literal["accepted", "duplicate", "rejected"]
    code: str | None = None
    detail: str | None = None
    cost: str | None = None
    cost_source: str | None = None


class LlmCallsRecorded(Result):
    org_id: str
    accepted: int
    duplicates: int
    rejected: int
    results: list[LlmCallResult]


class CostEntry(Result):
    cost: str
    requests: int


class MemberCost(CostEntry):
    email: str | None = None


class BillingPeriod(Result):
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
    breakdown_by_provider: dict[str, CostEntry]
    breakdown_by_model: dict[str, CostEntry]
    breakdown_by_member: dict[str, MemberCost]
    breakdown_by_team: dict[str, CostEntry]
    unpriced: dict[str, Any]


class BudgetStatus(Result):
    id: str
    name: str
    scope: str
    team_id: str | None = None
    user_id: str | None = None
    api_key_id: str | None = None
    provider: str | None = None
    model: str | None = None
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


class Budget(BudgetStatus):
    org_id: str
    created_at: datetime
    updated_at: datetime


class Budgets(Result):
    org_id: str
    budgets: list[Budget]


class BudgetAlert(Result):
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
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None


class BudgetAlerts(Result):
    org_id: str
    alerts: list[BudgetAlert]


class AlertsSection(Result):
    warning_threshold: int | None = None
    exceeded_action: str | None = None
    current_alerts: list[BudgetAlert]


class CostView(Result):
    org_id: str
    team_id: str | None = None
    billing_period: BillingPeriod
    budget: BudgetStatus | None = None
    budget_alerts: AlertsSection
    budgets: list[BudgetStatus]
    forecast: dict[str, Any]
    settings: dict[str, Any] | None = None


class BillingSettings(Result):
    team_id: str
    monthly_budget: str | None = None
    budget_alerts: dict[str, Any]
    cost_allocation: dict[str, Any]
    reporting: dict[str, Any]
    budget: BudgetStatus | None = None


class AlertAcknowledged(Result):
    action: str
    alert: BudgetAlert


class Price(Result):
    id: str | None = None
    provider: str
    model: str
    input_per_million: str
    output_per_million: str
    cached_input_per_million: str | None = None
    substitution_class: str
    effective_from: datetime
    source: str


class Prices(Result):
    org_id: str | None = None
    at: datetime
    currency: str
    prices: list[Price]


class PricesImported(Result):
    imported: int


def llm_call(
    call_id: str,
    *,
    provider: str,
    model: str,
    team: str | None = None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached_input_tokens: int = 0,
    cost: Money | None = None,
    latency_ms: int | None = None,
    status: str = "success",
    error_kind: str | None = None,
    timestamp: datetime | None = None,
    user: str | None = None,
    api_key: str | None = None,
    tags: dict[str, str] | None = None,
    reservation_id: str | None = None,
) -> dict[str, Any]:
    """One LLM call for `record_llm_calls`; `call_id` is yours: sending it again records nothing.
    Without `cost` it is priced from the price table (or flagged unpriced)."""
    return fields(
        id=call_id,
        team=team,
        user=user,
        api_key=api_key,
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached_input_tokens,
        cost=None if cost is None else str(cost),
        latency_ms=latency_ms,
        status=status,
        error_kind=error_kind,
        timestamp=iso(timestamp),
        tags=tags or None,
        reservation_id=reservation_id,
    )


class Analytics(Result):
    """Seed 001's analytics: the sections asked for (`usage`, `insights`, `compliance`)."""

    org_id: str
    team_id: str | None = None
    period: dict[str, Any]
    currency: str
    usage: dict[str, Any] | None = None
    insights: dict[str, Any] | None = None
    compliance: dict[str, Any] | None = None


class Anomaly(Result):
    id: str
    dimension: str
    team_id: str | None = None
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
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None


class Anomalies(Result):
    org_id: str
    anomalies: list[Anomaly]


class CostCentre(Result):
    id: str
    org_id: str
    name: str
    code: str
    teams: list[str]
    created_at: datetime
    updated_at: datetime


class CostCentres(Result):
    org_id: str
    cost_centres: list[CostCentre]


class CentreCharge(Result):
    id: str
    code: str
    name: str
    teams: list[str]
    teams_with_spend: list[str]
    usage_cost: str
    requests: int
    charged: str
    share: str


class Unallocated(Result):
    usage_cost: str
    requests: int
    teams: list[str]
    charged: str


class Chargeback(Result):
    org_id: str
    period: dict[str, Any]
    method: str
    currency: str
    total_cost: str
    total_requests: int
    cost_centres: list[CentreCharge]
    unallocated: Unallocated


def _period(period: str | None, since: datetime | None, until: datetime | None) -> dict[str, Any]:
    return fields(period=period, since=iso(since), until=iso(until))


class SpendCalls:
    """Routes of spend, described once for both clients."""

    @endpoint
    def record_llm_calls(self, calls: list[dict[str, Any]]) -> Call[LlmCallsRecorded]:
        """Record up to 1,000 LLM calls (see `llm_call`)."""
        return Call("POST", f"{API}/llm-calls", model(LlmCallsRecorded), body={"calls": calls})

    @endpoint
    def team_billing(
        self,
        team: str,
        *,
        period: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Call[CostView]:
        """The team's LLM spend by provider, model and member, its budget, alerts, forecast."""
        return Call(
            "GET",
            f"{API}/teams/{segment(team)}/billing",
            model(CostView),
            params=_period(period, since, until),
        )

    @endpoint
    def org_costs(
        self,
        org: str,
        *,
        period: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Call[CostView]:
        return Call(
            "GET",
            f"{API}/orgs/{segment(org)}/costs",
            model(CostView),
            params=_period(period, since, until),
        )

    @endpoint
    def set_billing_settings(
        self,
        team: str,
        *,
        monthly_budget: Money | None = None,
        budget_alerts: dict[str, Any] | None = None,
        cost_allocation: dict[str, Any] | None = None,
        reporting: dict[str, Any] | None = None,
    ) -> Call[BillingSettings]:
        """Seed 001's settings: a monthly budget with its alerts, cost allocation, reporting."""
        body = fields(
            monthly_budget=None if monthly_budget is None else str(monthly_budget),
            budget_alerts=budget_alerts,
            cost_allocation=cost_allocation,
            reporting=reporting,
        )
        return Call(
            "PUT",
            f"{API}/teams/{segment(team)}/billing/settings",
            model(BillingSettings),
            body=body,
        )

    @endpoint
    def acknowledge_team_alert(self, team: str, alert_id: str) -> Call[AlertAcknowledged]:
        """Seed 001's `{"action": "acknowledge_alert", "alert_id": ...}` on a team's billing."""
        return Call(
            "POST",
            f"{API}/teams/{segment(team)}/billing",
            model(AlertAcknowledged),
            body={"action": "acknowledge_alert", "alert_id": alert_id},
        )

    @endpoint
    def list_budgets(self, org: str) -> Call[Budgets]:
        return Call("GET", f"{API}/orgs/{segment(org)}/budgets", model(Budgets))

    @endpoint
    def team_budgets(self, team: str) -> Call[Budgets]:
        """The budgets that apply to a team's spend."""
        return Call("GET", f"{API}/teams/{segment(team)}/budgets", model(Budgets))

    @endpoint
    def create_budget(
        self,
        org: str,
        *,
        scope: str,
        amount: Money,
        team: str | None = None,
        member: str | None = None,
        api_key: str | None = None,
        provider: str | None = None,
        model_name: str | None = None,
        period: str | None = None,
        thresholds: list[int] | None = None,
        exceeded_action: str | None = None,
        name: str | None = None,
    ) -> Call[Budget]:
        """A budget on the org, a team, a member within a team or an API key."""
        body = fields(
            scope=scope,
            amount=str(amount),
            team=team,
            member=member,
            api_key=api_key,
            provider=provider,
            model=model_name,
            period=period,
            thresholds=thresholds,
            exceeded_action=exceeded_action,
            name=name,
        )
        return Call("POST", f"{API}/orgs/{segment(org)}/budgets", model(Budget), body=body)

    @endpoint
    def create_team_budget(
        self,
        team: str,
        *,
        amount: Money,
        scope: str | None = None,
        member: str | None = None,
        provider: str | None = None,
        model_name: str | None = None,
        period: str | None = None,
        thresholds: list[int] | None = None,
        exceeded_action: str | None = None,
        name: str | None = None,
    ) -> Call[Budget]:
        body = fields(
            scope=scope,
            amount=str(amount),
            member=member,
            provider=provider,
            model=model_name,
            period=period,
            thresholds=thresholds,
            exceeded_action=exceeded_action,
            name=name,
        )
        return Call("POST", f"{API}/teams/{segment(team)}/budgets", model(Budget), body=body)

    @endpoint
    def get_budget(self, budget_id: str) -> Call[Budget]:
        return Call("GET", f"{API}/budgets/{segment(budget_id)}", model(Budget))

    @endpoint
    def update_budget(
        self,
        budget_id: str,
        *,
        amount: Money | None = None,
        thresholds: list[int] | None = None,
        exceeded_action: str | None = None,
        name: str | None = None,
    ) -> Call[Budget]:
        body = fields(
            amount=None if amount is None else str(amount),
            thresholds=thresholds,
            exceeded_action=exceeded_action,
            name=name,
        )
        return Call("PATCH", f"{API}/budgets/{segment(budget_id)}", model(Budget), body=body)

    @endpoint
    def delete_budget(self, budget_id: str) -> Call[None]:
        return Call("DELETE", f"{API}/budgets/{segment(budget_id)}", nothing)

    @endpoint
    def budget_alerts(self, org: str, *, open_only: bool | None = None) -> Call[BudgetAlerts]:
        params = fields(open=None if open_only is None else str(open_only).lower())
        return Call(
            "GET", f"{API}/orgs/{segment(org)}/budget-alerts", model(BudgetAlerts), params=params
        )

    @endpoint
    def acknowledge_alert(self, alert_id: str) -> Call[AlertAcknowledged]:
        return Call(
            "POST",
            f"{API}/budget-alerts/{segment(alert_id)}/acknowledge",
            model(AlertAcknowledged),
        )

    @endpoint
    def list_prices(self, *, at: datetime | None = None) -> Call[Prices]:
        """The deployment's price table, the entry in force for each model."""
        return Call("GET", f"{API}/llm-prices", model(Prices), params=fields(at=iso(at)))

    @endpoint
    def import_prices(self, prices: list[dict[str, Any]]) -> Call[PricesImported]:
        """Import a price file's `prices` into the deployment's table (operators only)."""
        return Call("POST", f"{API}/llm-prices", model(PricesImported), body={"prices": prices})

    @endpoint
    def org_prices(self, org: str, *, at: datetime | None = None) -> Call[Prices]:
        return Call(
            "GET", f"{API}/orgs/{segment(org)}/llm-prices", model(Prices), params=fields(at=iso(at))
        )

    @endpoint
    def set_org_prices(self, org: str, prices: list[dict[str, Any]]) -> Call[Prices]:
        """The org's own rates, as a price file's `prices`."""
        return Call(
            "POST",
            f"{API}/orgs/{segment(org)}/llm-prices",
            model(Prices),
            body={"prices": prices},
        )

    @endpoint
    def delete_org_price(self, org: str, price_id: str) -> Call[None]:
        return Call("DELETE", f"{API}/orgs/{segment(org)}/llm-prices/{segment(price_id)}", nothing)

    # ---- analytics, anomalies, cost centres ----

    @endpoint
    def team_analytics(
        self, team: str, *, include: list[str] | None = None, days: int | None = None
    ) -> Call[Analytics]:
        """The team's analytics over the last `days` days (30): usage, insights (efficiency,
        member productivity, model ranking, savings recommendations, forecast), compliance."""
        params = fields(include=",".join(include) if include else None, days=days)
        return Call(
            "GET", f"{API}/teams/{segment(team)}/analytics", model(Analytics), params=params
        )

    @endpoint
    def export_team_analytics(
        self,
        team: str,
        *,
        format: str = "csv",
        days: int | None = None,
        include: list[str] | None = None,
    ) -> Call[str]:
        """The team's analytics as a file's text: CSV usage rows, or the JSON sections."""
        body = fields(format=format, days=days, include=include)
        return Call("POST", f"{API}/teams/{segment(team)}/analytics/export", text, body=body)

    @endpoint
    def org_analytics(
        self, org: str, *, include: list[str] | None = None, days: int | None = None
    ) -> Call[Analytics]:
        """The org's analytics across its teams."""
        params = fields(include=",".join(include) if include else None, days=days)
        return Call("GET", f"{API}/orgs/{segment(org)}/analytics", model(Analytics), params=params)

    @endpoint
    def org_anomalies(self, org: str, *, open_only: bool | None = None) -> Call[Anomalies]:
        params = fields(open=None if open_only is None else str(open_only).lower())
        return Call("GET", f"{API}/orgs/{segment(org)}/anomalies", model(Anomalies), params=params)

    @endpoint
    def team_anomalies(self, team: str, *, open_only: bool | None = None) -> Call[Anomalies]:
        params = fields(open=None if open_only is None else str(open_only).lower())
        return Call(
            "GET", f"{API}/teams/{segment(team)}/anomalies", model(Anomalies), params=params
        )

    @endpoint
    def acknowledge_anomaly(self, anomaly_id: str) -> Call[Anomaly]:
        return Call("POST", f"{API}/anomalies/{segment(anomaly_id)}/acknowledge", model(Anomaly))

    @endpoint
    def list_cost_centres(self, org: str) -> Call[CostCentres]:
        return Call("GET", f"{API}/orgs/{segment(org)}/cost-centres", model(CostCentres))

    @endpoint
    def create_cost_centre(
        self, org: str, *, name: str, code: str, teams: list[str] | None = None
    ) -> Call[CostCentre]:
        body = fields(name=name, code=code, teams=teams)
        return Call("POST", f"{API}/orgs/{segment(org)}/cost-centres", model(CostCentre), body=body)

    @endpoint
    def set_cost_centre_teams(
        self, org: str, cost_centre_id: str, teams: list[str]
    ) -> Call[CostCentre]:
        return Call(
            "PUT",
            f"{API}/orgs/{segment(org)}/cost-centres/{segment(cost_centre_id)}/teams",
            model(CostCentre),
            body={"teams": teams},
        )

    @endpoint
    def delete_cost_centre(self, org: str, cost_centre_id: str) -> Call[None]:
        return Call(
            "DELETE", f"{API}/orgs/{segment(org)}/cost-centres/{segment(cost_centre_id)}", nothing
        )

    @endpoint
    def chargeback(
        self,
        org: str,
        *,
        method: str | None = None,
        period: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Call[Chargeback]:
        """What each cost centre is charged for a period (usage_based or even_split)."""
        params = _period(period, since, until) | fields(method=method)
        return Call(
            "GET", f"{API}/orgs/{segment(org)}/chargeback", model(Chargeback), params=params
        )

    @endpoint
    def chargeback_focus(
        self,
        org: str,
        *,
        period: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Call[str]:
        """The period's spend as a FinOps FOCUS CSV."""
        return Call(
            "GET",
            f"{API}/orgs/{segment(org)}/chargeback/focus",
            text,
            params=_period(period, since, until),
        )
