"""HTTP routes of spend: LLM calls (and LiteLLM's logging payload), cost views in seed 001's
shapes, budgets and their alerts, a team's billing settings, the price table.

Org-level costs are at /orgs/{org}/costs: /orgs/{org}/billing/... belongs to subscriptions and
invoices. LLM calls are a high-volume data path: their rows are the record, so they write no
audit event per request; every change of a rule (a budget, settings, prices, an acknowledgement)
writes one, and each budget alert one of its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Response

from tenantry.authz.catalog import Permission
from tenantry.http.auth import OrgScope, PrincipalDep, TeamScope, org_scope, team_scope
from tenantry.http.body import JsonBodyRoute
from tenantry.http.work import CtxDep
from tenantry.kit.errors import Unprocessable
from tenantry.kit.money import plain
from tenantry.operator import service as operators
from tenantry.spend import (
    analytics,
    anomalies,
    calls,
    chargeback,
    manage,
    pricing,
    repository,
    views,
)
from tenantry.spend.alerts import alert_out
from tenantry.spend.budgets import (
    BudgetRule,
    org_rules,
    rule_of,
    status_of,
)
from tenantry.spend.litellm_payload import call_of
from tenantry.spend.models import Budget, CostCentre
from tenantry.spend.schemas import (
    AlertAcknowledgedOut,
    AlertsOut,
    AnalyticsExportIn,
    AnalyticsOut,
    AnomaliesOut,
    AnomalyOut,
    BillingActionIn,
    BillingSettingsIn,
    BillingSettingsOut,
    BudgetIn,
    BudgetOut,
    BudgetsOut,
    BudgetStatusOut,
    BudgetUpdateIn,
    ChargebackOut,
    CostCentreIn,
    CostCentreOut,
    CostCentresOut,
    CostCentreTeamsIn,
    CostViewOut,
    LiteLLMPayloadIn,
    LlmCallBatchIn,
    LlmCallIn,
    LlmCallsRecordedOut,
    PriceFileIn,
    PriceIn,
    PriceOut,
    PricesImportedOut,
    PricesOut,
    TeamBudgetIn,
)

router = APIRouter(prefix="/api/v1", route_class=JsonBodyRoute)

TeamSpendRead = Annotated[TeamScope, Depends(team_scope(Permission.SPEND_READ))]
TeamSpendManage = Annotated[TeamScope, Depends(team_scope(Permission.SPEND_MANAGE))]
OrgSpendRead = Annotated[OrgScope, Depends(org_scope(Permission.SPEND_READ))]
OrgSpendManage = Annotated[OrgScope, Depends(org_scope(Permission.SPEND_MANAGE))]
PeriodQ = Annotated[
    str | None,
    Query(description="current (this UTC month, the default), previous, day, week or YYYY-MM"),
]
SinceQ = Annotated[datetime | None, Query(description="Start, instead of a period")]
UntilQ = Annotated[datetime | None, Query(description="End, exclusive")]


# ---- LLM calls ----


def _recorded(done: calls.Recorded) -> dict[str, Any]:
    counts = Counter(r.status for r in done.results)
    return {
        "org_id": done.org_id,
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "results": [calls.result_out(r) for r in done.results],
    }


def _incoming(call: LlmCallIn) -> calls.IncomingCall:
    return calls.IncomingCall(
        call.id, call.team, call.user, call.api_key, call.provider, call.model,
        call.input_tokens, call.output_tokens, call.cached_input_tokens, call.cost,
        call.latency_ms, call.status, call.error_kind, call.timestamp, call.tags,
        call.reservation_id, call.data_classification,
    )  # fmt: skip


@router.post(
    "/llm-calls", name="llm_calls.recorded", response_model=LlmCallsRecordedOut, tags=["spend"]
)
def record_llm_calls(
    body: LlmCallBatchIn | LlmCallIn, ctx: CtxDep, principal: PrincipalDep
) -> Response:
    """Record one LLM call or a batch of up to 1,000: each accepted (with its cost and where
    the cost came from), a duplicate (its id was recorded before) or rejected with a reason.
    A call naming a `reservation_id` settles that admission."""
    incoming = body.calls if isinstance(body, LlmCallBatchIn) else [body]
    done = calls.record_calls(ctx, principal, [_incoming(c) for c in incoming])
    return ctx.done(_recorded(done))


@router.post(
    "/integrations/litellm",
    name="litellm_calls.recorded",
    response_model=LlmCallsRecordedOut,
    tags=["spend"],
)
def record_litellm_payload(
    ctx: CtxDep,
    principal: PrincipalDep,
    body: Annotated[
        LiteLLMPayloadIn | list[LiteLLMPayloadIn],
        Body(description="LiteLLM's StandardLoggingPayload, or a list of them"),
    ],
    team: Annotated[str | None, Query(description="The team the calls were made for")] = None,
) -> Response:
    """LiteLLM's standard logging payload, as its generic logging callback sends it (point
    `GENERIC_LOGGER_ENDPOINT` here, with an API key as bearer): each payload one LLM call."""
    payloads = body if isinstance(body, list) else [body]
    if not payloads or len(payloads) > 1000:
        raise Unprocessable("Send 1 to 1,000 payloads", code="invalid_batch")
    incoming = [call_of(p.model_dump(), team=team) for p in payloads]
    for call in incoming:
        if not call.id:
            raise Unprocessable("Every payload needs its `id`", code="missing_id")
    done = calls.record_calls(ctx, principal, incoming)
    return ctx.done(_recorded(done))


# ---- cost views ----


def _settings(session: Any, org_id: str, team_id: str) -> dict[str, Any] | None:
    stored = repository.team_settings(session, org_id=org_id, team_id=team_id)
    if stored is None:
        return None
    return {"cost_allocation": stored.cost_allocation, "reporting": stored.reporting}


@router.get("/teams/{team}/billing", response_model=CostViewOut, tags=["spend"])
def team_billing(
    scope: TeamSpendRead, period: PeriodQ = None, since: SinceQ = None, until: UntilQ = None
) -> dict[str, Any]:
    """The team's LLM spend (with the teams under it) in seed 001's shape: total cost and
    requests, by provider, model and member; its budget, the alerts, the forecast."""
    session, now, team = scope.ctx.session, scope.ctx.clock.now(), scope.team
    chosen = views.choose_period(now, period=period, since=since, until=until)
    view = views.cost_view(
        session, scope.principal, org_id=team.org_id, team_id=team.id, chosen=chosen, now=now
    )
    return view | {"settings": _settings(session, team.org_id, team.id)}


@router.get("/orgs/{org}/costs", response_model=CostViewOut, tags=["spend"])
def org_costs(
    scope: OrgSpendRead, period: PeriodQ = None, since: SinceQ = None, until: UntilQ = None
) -> dict[str, Any]:
    """The org's LLM spend in the same shape as a team's billing view, with every team."""
    session, now = scope.ctx.session, scope.ctx.clock.now()
    chosen = views.choose_period(now, period=period, since=since, until=until)
    return views.cost_view(
        session, scope.principal, org_id=scope.org.id, team_id=None, chosen=chosen, now=now
    )


# ---- analytics ----

IncludeQ = Annotated[
    str | None,
    Query(description="Sections, comma-separated: usage, insights, compliance (all by default)"),
]
DaysQ = Annotated[int, Query(ge=1, le=analytics.MAX_DAYS, description="Days back from now")]
EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The export as a file: CSV rows per day, team, provider, model and "
        "member, or the analytics as JSON",
        "content": {"text/csv": {}, "application/json": {}},
    }
}


def _team_analytics(scope: TeamScope, *, days: int, include: Sequence[str]) -> dict[str, Any]:
    session, team = scope.ctx.session, scope.team
    teams = views.subtree(repository.team_parents(session, team.org_id), team.id)
    return analytics.view(
        session, scope.principal, org_id=team.org_id, team_id=team.id, team_ids=teams,
        days=days, include=include, now=scope.ctx.clock.now(),
    )  # fmt: skip


@router.get("/teams/{team}/analytics", response_model=AnalyticsOut, tags=["spend"])
def team_analytics(scope: TeamSpendRead, include: IncludeQ = None, days: DaysQ = 30) -> Any:
    """Seed 001's analytics of the team (with the teams under it) over the last `days` days:
    `usage` (requests over time by provider, model and member, token efficiency, cost per
    request, latency p50/p95 and success rate per model), `insights` (efficiency score, member
    productivity, model ranking, savings recommendations, forecast), `compliance`."""
    return _team_analytics(scope, days=days, include=analytics.sections(include))


@router.post(
    "/teams/{team}/analytics/export",
    name="analytics.exported",
    response_class=Response,
    responses=EXPORT_RESPONSES,
    tags=["spend"],
)
def export_team_analytics(body: AnalyticsExportIn, scope: TeamSpendRead) -> Response:
    """The team's analytics as a file: `csv` (the usage rows per day, team, provider, model and
    member) or `json` (the sections of `include`). Writes nothing."""
    team = scope.team
    stamp = scope.ctx.clock.now().strftime("%Y%m%d")
    if body.format == "json":
        found = _team_analytics(scope, days=body.days, include=body.include)
        content = AnalyticsOut.model_validate(found).model_dump_json()
        media = "application/json"
    else:
        session = scope.ctx.session
        teams = views.subtree(repository.team_parents(session, team.org_id), team.id)
        span = analytics.window(scope.ctx.clock.now(), body.days)
        gathered = analytics.gather(session, org_id=team.org_id, team_ids=teams, span=span)
        content, media = analytics.export_csv(gathered), "text/csv"
    name = f"analytics-{team.slug}-{stamp}.{body.format}"
    return Response(
        content,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/orgs/{org}/analytics", response_model=AnalyticsOut, tags=["spend"])
def org_analytics(scope: OrgSpendRead, include: IncludeQ = None, days: DaysQ = 30) -> Any:
    """The org's analytics across its teams, with each team's totals and efficiency score."""
    return analytics.view(
        scope.ctx.session, scope.principal, org_id=scope.org.id, team_id=None, team_ids=None,
        days=days, include=analytics.sections(include), now=scope.ctx.clock.now(),
    )  # fmt: skip


# ---- anomalies ----

OpenQ = Annotated[bool, Query(alias="open", description="Unacknowledged only")]


@router.get("/orgs/{org}/anomalies", response_model=AnomaliesOut, tags=["spend"])
def org_anomalies(scope: OrgSpendRead, open_only: OpenQ = False) -> dict[str, Any]:
    """The org's spend anomalies (the latest 500), newest day first, each explained."""
    found = repository.anomalies_of(scope.ctx.session, org_id=scope.org.id, open_only=open_only)
    return {"org_id": scope.org.id, "anomalies": [anomalies.anomaly_out(a) for a in found]}


@router.get("/teams/{team}/anomalies", response_model=AnomaliesOut, tags=["spend"])
def team_anomalies(scope: TeamSpendRead, open_only: OpenQ = False) -> dict[str, Any]:
    """The spend anomalies of the team and the teams under it: its own cost, its members'
    and its models'."""
    session, team = scope.ctx.session, scope.team
    teams = views.subtree(repository.team_parents(session, team.org_id), team.id)
    found = repository.anomalies_of(
        session, org_id=team.org_id, team_ids=teams, open_only=open_only
    )
    return {"org_id": team.org_id, "anomalies": [anomalies.anomaly_out(a) for a in found]}


@router.post(
    "/anomalies/{anomaly_id}/acknowledge",
    name="spend_anomaly.acknowledged",
    response_model=AnomalyOut,
    tags=["spend"],
)
def acknowledge_anomaly(anomaly_id: str, ctx: CtxDep, principal: PrincipalDep) -> Response:
    """Mark a spend anomaly seen (409 if it already was)."""
    found = anomalies.find(ctx.session, principal, anomaly_id)
    done = anomalies.acknowledge(ctx, principal, found)
    return ctx.done(anomalies.anomaly_out(done))


# ---- cost centres and chargeback ----

MethodQ = Annotated[
    Literal["usage_based", "even_split"],
    Query(description="usage_based (each pays its teams' spend) or even_split"),
]
CSV_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "FOCUS columns, one charge row per day, team, provider and model",
          "content": {"text/csv": {}}}
}  # fmt: skip


def _centre_out(session: Any, row: CostCentre) -> dict[str, Any]:
    return chargeback.centre_out(row, chargeback.teams_of(session, row.org_id).get(row.id, []))


@router.get("/orgs/{org}/cost-centres", response_model=CostCentresOut, tags=["spend"])
def list_cost_centres(scope: OrgSpendRead) -> dict[str, Any]:
    """The org's cost centres with their teams, by code."""
    session = scope.ctx.session
    members = chargeback.teams_of(session, scope.org.id)
    rows = repository.cost_centres_of(session, scope.org.id)
    return {
        "org_id": scope.org.id,
        "cost_centres": [chargeback.centre_out(r, members.get(r.id, [])) for r in rows],
    }


@router.post(
    "/orgs/{org}/cost-centres",
    name="cost_centre.created",
    status_code=201,
    response_model=CostCentreOut,
    tags=["spend"],
)
def create_cost_centre(body: CostCentreIn, scope: OrgSpendManage) -> Response:
    """A cost centre (409 if its code is taken), with the teams charged to it (a team named
    moves here from any other)."""
    row = chargeback.create(
        scope.ctx, scope.principal, org_id=scope.org.id, name=body.name, code=body.code,
        teams=body.teams,
    )  # fmt: skip
    return scope.ctx.done(_centre_out(scope.ctx.session, row), status=201)


@router.put(
    "/orgs/{org}/cost-centres/{cost_centre_id}/teams",
    name="cost_centre.updated",
    response_model=CostCentreOut,
    tags=["spend"],
)
def set_cost_centre_teams(
    cost_centre_id: str, body: CostCentreTeamsIn, scope: OrgSpendManage
) -> Response:
    """Set exactly the teams charged to a cost centre."""
    session = scope.ctx.session
    row = chargeback.find(session, org_id=scope.org.id, cost_centre_id=cost_centre_id)
    chargeback.set_teams(scope.ctx, scope.principal, row, body.teams)
    return scope.ctx.done(_centre_out(session, row))


@router.delete(
    "/orgs/{org}/cost-centres/{cost_centre_id}",
    name="cost_centre.deleted",
    status_code=204,
    tags=["spend"],
)
def delete_cost_centre(cost_centre_id: str, scope: OrgSpendManage) -> Response:
    """Delete a cost centre: its teams' spend is unallocated from then on."""
    row = chargeback.find(scope.ctx.session, org_id=scope.org.id, cost_centre_id=cost_centre_id)
    chargeback.delete(scope.ctx, scope.principal, row)
    return scope.ctx.done(None, status=204)


@router.get("/orgs/{org}/chargeback", response_model=ChargebackOut, tags=["spend"])
def chargeback_report(
    scope: OrgSpendRead,
    period: PeriodQ = None,
    since: SinceQ = None,
    until: UntilQ = None,
    method: MethodQ = "usage_based",
) -> dict[str, Any]:
    """What each cost centre is charged for the period, and what no cost centre owns."""
    chosen = views.choose_period(scope.ctx.clock.now(), period=period, since=since, until=until)
    return chargeback.report(scope.ctx.session, org_id=scope.org.id, chosen=chosen, method=method)


@router.get(
    "/orgs/{org}/chargeback/focus",
    response_class=Response,
    responses=CSV_RESPONSES,
    tags=["spend"],
)
def chargeback_focus(
    scope: OrgSpendRead, period: PeriodQ = None, since: SinceQ = None, until: UntilQ = None
) -> Response:
    """The period's LLM spend as a FinOps FOCUS CSV, ready for a FinOps tool."""
    chosen = views.choose_period(scope.ctx.clock.now(), period=period, since=since, until=until)
    content = chargeback.focus_csv(
        scope.ctx.session, org_id=scope.org.id, org_name=scope.org.name, chosen=chosen
    )
    name = f"focus-{scope.org.slug}-{chosen.label}.csv"
    return Response(
        content,
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# ---- seed 001: settings and actions ----


def _settings_out(
    team_id: str, budget: Budget | None, stored: Any, now: datetime, session: Any
) -> BillingSettingsOut:
    status = None
    if budget is not None:
        rule = rule_of(budget)
        key = rule.key(now)
        state = repository.counters(session, org_id=budget.org_id, keys=[key]).get(key)
        status = status_of(rule, state, key[1]) | {"thresholds": list(rule.thresholds)}
    return BillingSettingsOut(
        team_id=team_id,
        monthly_budget=plain(budget.amount) if budget else None,
        budget_alerts={
            "warning_threshold": min(budget.thresholds) if budget and budget.thresholds else None,
            "exceeded_action": budget.exceeded_action if budget else None,
        },
        cost_allocation=stored.cost_allocation if stored else {},
        reporting=stored.reporting if stored else {},
        budget=BudgetStatusOut.model_validate(status) if status else None,
    )


@router.put(
    "/teams/{team}/billing/settings",
    name="billing_settings.updated",
    response_model=BillingSettingsOut,
    tags=["spend"],
)
def set_billing_settings(body: BillingSettingsIn, scope: TeamSpendManage) -> Response:
    """Seed 001's settings: `monthly_budget` with `budget_alerts` (`warning_threshold` %,
    `exceeded_action` notify or restrict) set the team's monthly budget; `cost_allocation` and
    `reporting` are kept. Parts left out stay as they were."""
    alerts_in = body.budget_alerts
    settings = manage.TeamSettings(
        monthly_budget=body.monthly_budget,
        warning_threshold=alerts_in.warning_threshold if alerts_in else None,
        exceeded_action=alerts_in.exceeded_action if alerts_in else None,
        cost_allocation=body.cost_allocation.model_dump() if body.cost_allocation else None,
        reporting=body.reporting.model_dump() if body.reporting else None,
    )
    team = scope.team
    budget, stored = manage.set_team_settings(
        scope.ctx, scope.principal, org_id=team.org_id, team_id=team.id, settings=settings
    )
    out = _settings_out(team.id, budget, stored, scope.ctx.clock.now(), scope.ctx.session)
    return scope.ctx.done(out)


@router.post(
    "/teams/{team}/billing",
    name="budget_alert.acknowledged",
    response_model=AlertAcknowledgedOut,
    tags=["spend"],
)
def billing_action(body: BillingActionIn, scope: TeamSpendManage) -> Response:
    """Seed 001's actions on a team's billing: `{"action": "acknowledge_alert", "alert_id":
    ...}` marks one of the team's budget alerts seen."""
    found = manage.find_alert(scope.ctx.session, scope.principal, body.alert_id)
    acknowledged = manage.acknowledge_alert(
        scope.ctx, scope.principal, found, team_id=scope.team.id
    )
    rules = manage.rules_by_id(scope.ctx.session, found.org_id)
    return scope.ctx.done(
        {"action": body.action, "alert": alert_out(acknowledged, rules.get(found.budget_id))}
    )


# ---- budgets ----


def _budget_out(session: Any, row: Budget, now: datetime) -> dict[str, Any]:
    rule = rule_of(row)
    key = rule.key(now)
    state = repository.counters(session, org_id=row.org_id, keys=[key]).get(key)
    return status_of(rule, state, key[1]) | {
        "org_id": row.org_id,
        "thresholds": list(rule.thresholds),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _spec(body: BudgetIn) -> manage.BudgetSpec:
    return manage.BudgetSpec(
        scope=body.scope,
        name=body.name,
        team=body.team,
        member=body.member,
        api_key=body.api_key,
        provider=body.provider,
        model=body.model,
        amount=body.amount,
        period=body.period,
        thresholds=body.thresholds,
        exceeded_action=body.exceeded_action,
    )


def _budgets_out(session: Any, org_id: str, rows: list[Budget], now: datetime) -> BudgetsOut:
    return BudgetsOut.model_validate(
        {"org_id": org_id, "budgets": [_budget_out(session, row, now) for row in rows]}
    )


@router.get("/orgs/{org}/budgets", response_model=BudgetsOut, tags=["spend"])
def org_budgets(scope: OrgSpendRead) -> BudgetsOut:
    """Every budget of the org, with its current period's spend."""
    session = scope.ctx.session
    rows = repository.budgets_of(session, scope.org.id)
    return _budgets_out(session, scope.org.id, rows, scope.ctx.clock.now())


@router.post(
    "/orgs/{org}/budgets",
    name="budget.created",
    status_code=201,
    response_model=BudgetOut,
    tags=["spend"],
)
def create_org_budget(body: BudgetIn, scope: OrgSpendManage) -> Response:
    """A budget on the org, a team, a member within a team or an API key (optionally one
    provider's or model's spend only); 409 if that target already has one for the period."""
    row = manage.create_budget(scope.ctx, scope.principal, org_id=scope.org.id, spec=_spec(body))
    return scope.ctx.done(_budget_out(scope.ctx.session, row, scope.ctx.clock.now()), status=201)


@router.get("/teams/{team}/budgets", response_model=BudgetsOut, tags=["spend"])
def team_budgets(scope: TeamSpendRead) -> BudgetsOut:
    """The budgets that apply to the team's spend: its own and its members', those of the teams
    above it and the org's."""
    session, team = scope.ctx.session, scope.team
    parents = repository.team_parents(session, team.org_id)
    shown = {rule.id for rule in views.rules_for(session, team.org_id, team.id, parents)}
    rows = [b for b in repository.budgets_of(session, team.org_id) if b.id in shown]
    return _budgets_out(session, team.org_id, rows, scope.ctx.clock.now())


@router.post(
    "/teams/{team}/budgets",
    name="team_budget.created",
    status_code=201,
    response_model=BudgetOut,
    tags=["spend"],
)
def create_team_budget(body: TeamBudgetIn, scope: TeamSpendManage) -> Response:
    """A budget on the team (scope `team`, the default) or on a member within it (`member`)."""
    row = manage.create_budget(
        scope.ctx,
        scope.principal,
        org_id=scope.team.org_id,
        spec=_spec(body),
        team_id=scope.team.id,
    )
    return scope.ctx.done(_budget_out(scope.ctx.session, row, scope.ctx.clock.now()), status=201)


@router.get("/budgets/{budget_id}", response_model=BudgetOut, tags=["spend"])
def show_budget(budget_id: str, ctx: CtxDep, principal: PrincipalDep) -> dict[str, Any]:
    """A budget with its current period's spend, holds and what is left."""
    found = manage.find_budget(ctx.session, principal, budget_id)
    manage.authorize_budget(ctx.session, principal, Permission.SPEND_READ, found)
    return _budget_out(ctx.session, found, ctx.clock.now())


@router.patch(
    "/budgets/{budget_id}", name="budget.updated", response_model=BudgetOut, tags=["spend"]
)
def update_budget(
    budget_id: str, body: BudgetUpdateIn, ctx: CtxDep, principal: PrincipalDep
) -> Response:
    """Change a budget's name, amount, thresholds or action; its target and period stay."""
    found = manage.find_budget(ctx.session, principal, budget_id)
    manage.authorize_budget(ctx.session, principal, Permission.SPEND_MANAGE, found)
    row = manage.update_budget(ctx, principal, found, body.model_dump(exclude_unset=True))
    return ctx.done(_budget_out(ctx.session, row, ctx.clock.now()))


@router.delete("/budgets/{budget_id}", name="budget.deleted", status_code=204, tags=["spend"])
def delete_budget(budget_id: str, ctx: CtxDep, principal: PrincipalDep) -> Response:
    """Delete a budget (its counters and alerts with it)."""
    found = manage.find_budget(ctx.session, principal, budget_id)
    manage.authorize_budget(ctx.session, principal, Permission.SPEND_MANAGE, found)
    manage.delete_budget(ctx, principal, found)
    return ctx.done(None, status=204)


# ---- alerts ----


@router.get("/orgs/{org}/budget-alerts", response_model=AlertsOut, tags=["spend"])
def org_budget_alerts(
    scope: OrgSpendRead,
    open_only: Annotated[bool, Query(alias="open", description="Unacknowledged only")] = False,
) -> AlertsOut:
    """Every budget alert of the org, oldest first."""
    session, org_id = scope.ctx.session, scope.org.id
    rules: dict[str, BudgetRule] = {rule.id: rule for rule in org_rules(session, org_id)}
    found = repository.alerts_of(session, org_id=org_id, open_only=open_only)
    return AlertsOut.model_validate(
        {"org_id": org_id, "alerts": [alert_out(a, rules.get(a.budget_id)) for a in found]}
    )


@router.post(
    "/budget-alerts/{alert_id}/acknowledge",
    name="budget_alert.acknowledged",
    response_model=AlertAcknowledgedOut,
    tags=["spend"],
)
def acknowledge_alert(alert_id: str, ctx: CtxDep, principal: PrincipalDep) -> Response:
    """Mark a budget alert seen (409 if it already was)."""
    found = manage.find_alert(ctx.session, principal, alert_id)
    acknowledged = manage.acknowledge_alert(ctx, principal, found)
    rules = manage.rules_by_id(ctx.session, found.org_id)
    return ctx.done(
        {
            "action": "acknowledge_alert",
            "alert": alert_out(acknowledged, rules.get(found.budget_id)),
        }
    )


# ---- prices ----


def _price_out(entry: pricing.PriceEntry) -> PriceOut:
    return PriceOut(
        id=entry.id,
        provider=entry.provider,
        model=entry.model,
        input_per_million=plain(entry.input_per_million),
        output_per_million=plain(entry.output_per_million),
        cached_input_per_million=None
        if entry.cached_input_per_million is None
        else plain(entry.cached_input_per_million),
        substitution_class=entry.substitution_class,
        effective_from=entry.effective_from,
        source=entry.source,
    )


def _entries(prices: list[PriceIn]) -> list[pricing.PriceEntry]:
    return [
        pricing.PriceEntry(
            provider=pricing.provider_name(p.provider),
            model=p.model,
            effective_from=p.effective_from,
            input_per_million=p.input_per_million,
            output_per_million=p.output_per_million,
            cached_input_per_million=p.cached_input_per_million,
            substitution_class=p.substitution_class or "unclassified",
            source="imported",
        )
        for p in prices
    ]


AtQ = Annotated[datetime | None, Query(description="Prices in force at this moment (now)")]


@router.get("/llm-prices", response_model=PricesOut, tags=["spend"])
def list_prices(ctx: CtxDep, principal: PrincipalDep, at: AtQ = None) -> PricesOut:
    """The deployment's price table: the shipped list with what its operators imported, the
    entry in force for each model."""
    moment = at or ctx.clock.now()
    entries = pricing.current(pricing.deployment_entries(ctx.session), moment)
    return PricesOut(at=moment, currency="usd", prices=[_price_out(e) for e in entries])


@router.post(
    "/llm-prices",
    name="llm_prices.imported",
    response_model=PricesImportedOut,
    tags=["spend"],
)
def import_prices(body: PriceFileIn, ctx: CtxDep, principal: PrincipalDep) -> Response:
    """Import a price file (the shipped `prices.json` is one) into the deployment's table: each
    entry added, or replacing the one of the same model and date. Operators only."""
    operators.require_operator(ctx.session, principal)
    count = manage.import_prices(ctx, principal, _entries(body.prices))
    return ctx.done(PricesImportedOut(imported=count))


@router.get("/orgs/{org}/llm-prices", response_model=PricesOut, tags=["spend"])
def org_prices(scope: OrgSpendRead, at: AtQ = None) -> PricesOut:
    """The prices the org's calls are charged at: its own rates over the deployment's."""
    session, moment = scope.ctx.session, at or scope.ctx.clock.now()
    entries = [*pricing.deployment_entries(session), *pricing.org_entries(session, scope.org.id)]
    return PricesOut(
        org_id=scope.org.id,
        at=moment,
        currency="usd",
        prices=[_price_out(e) for e in pricing.current(entries, moment)],
    )


@router.post(
    "/orgs/{org}/llm-prices",
    name="llm_prices.set",
    response_model=PricesOut,
    tags=["spend"],
)
def set_org_prices(body: PriceFileIn, scope: OrgSpendManage) -> Response:
    """The org's own rates (negotiated discounts), in a price file's shape: each entry added, or
    replacing the org's entry of the same model and date."""
    rows = manage.set_org_prices(scope.ctx, scope.principal, scope.org.id, _entries(body.prices))
    entries = [pricing.PriceEntry(
        r.provider, r.model, r.effective_from, r.input_per_million, r.output_per_million,
        r.cached_input_per_million, r.substitution_class, "org", r.id,
    ) for r in rows]  # fmt: skip
    out = PricesOut(
        org_id=scope.org.id,
        at=scope.ctx.clock.now(),
        currency="usd",
        prices=[_price_out(e) for e in entries],
    )
    return scope.ctx.done(out)


@router.delete(
    "/orgs/{org}/llm-prices/{price_id}",
    name="llm_price.deleted",
    status_code=204,
    tags=["spend"],
)
def delete_org_price(price_id: str, scope: OrgSpendManage) -> Response:
    """Remove one of the org's own rates: the deployment's price applies again."""
    manage.delete_org_price(scope.ctx, scope.principal, scope.org.id, price_id)
    return scope.ctx.done(None, status=204)
