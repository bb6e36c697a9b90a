"""AI spend: the costs of the org and of a team over a chosen period (by provider, model and
member, with the forecast band and the budget line), budgets and their alerts, a team's
analytics with its savings recommendations, and spend anomalies.

Every figure is the one the API's route of the same view answers, read through the same
services (`spend.views.cost_view`, `spend.analytics.view`, the budgets' counters), and each
page and form holds the permission that route holds: `spend:read` to see, `spend:manage` to
change. Each form's route is named for the audit action it records, as the API's is.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import Field
from starlette.datastructures import FormData
from starlette.responses import Response

from tenantry.authz.catalog import Permission
from tenantry.identity import repository as identity_repository
from tenantry.kit.errors import NotFound, Problem
from tenantry.kit.schemas import Input
from tenantry.spend import analytics, anomalies, manage, repository, views
from tenantry.spend.alerts import alert_out
from tenantry.spend.budgets import period_start, rule_of, status_of
from tenantry.spend.models import Budget, BudgetPeriod
from tenantry.spend.schemas import (
    AlertOut,
    AnalyticsOut,
    AnomalyOut,
    BudgetIn,
    BudgetOut,
    BudgetUpdateIn,
    CostViewOut,
)
from tenantry.tenancy import teams
from tenantry.tenancy.models import Team
from tenantry.web.forms import FORM, FormRefused, FormState, parse, query_form, refused
from tenantry.web.pages import changed, every, page_router
from tenantry.web.templating import render
from tenantry.web.visit import Visit, org_page, team_page

router = page_router()

OrgSpendRead = Annotated[Visit, Depends(org_page(Permission.SPEND_READ))]
OrgSpendManage = Annotated[Visit, Depends(org_page(Permission.SPEND_MANAGE))]
TeamSpendRead = Annotated[Visit, Depends(team_page(Permission.SPEND_READ))]
# A budget, an alert or an anomaly of a team is the team's to change: the service authorizes
# on the thing itself, as the API's routes by id do.
OrgMember = Annotated[Visit, Depends(org_page(None))]

MONTHS_OFFERED = 12
BREAKDOWNS = [("provider", "Provider"), ("model", "Model"), ("member", "Member")]
SCOPES = [("org", "Organization"), ("team", "Team"), ("member", "Member"), ("api_key", "API key")]
PERIODS = [("month", "Month"), ("week", "Week"), ("day", "Day")]
ACTIONS = [("notify", "Notify"), ("restrict", "Restrict (refuse new calls)")]
DIMENSIONS = [("", "Any"), ("team", "Team"), ("member", "Member"), ("api_key", "API key"),
              ("model", "Model")]  # fmt: skip


def _team_names(visit: Visit) -> dict[str, str]:
    session, org = visit.ctx.session, visit.current_org
    found = every(lambda page: teams.list_teams(session, visit.principal, org, page))
    return {t.id: t.name for t in found}


def _emails(visit: Visit, user_ids: list[str], team_id: str | None = None) -> dict[str, str]:
    """Emails of members, for those who may see them (as the cost view decides); ids otherwise."""
    if not user_ids or not visit.can(Permission.MEMBER_READ, team_id):
        return {}
    users = identity_repository.users_by_ids(visit.ctx.session, sorted(set(user_ids)))
    return {user_id: user.email for user_id, user in users.items()}


# ---- costs ----


class CostsQuery(Input):
    period: str = Field(default="current", max_length=16)
    by: str = Field(default="provider", pattern="^(provider|model|member|team)$")


def _periods(now: datetime) -> list[tuple[str, str]]:
    offered = [("current", "This month"), ("previous", "Last month"), ("week", "This week"),
               ("day", "Today")]  # fmt: skip
    start = period_start(BudgetPeriod.MONTH, now)
    for _ in range(MONTHS_OFFERED):
        start = period_start(BudgetPeriod.MONTH, start - timedelta(days=1))
        offered.append((start.strftime("%Y-%m"), start.strftime("%B %Y")))
    return offered


def _float(value: str | Decimal | None) -> float | None:
    return None if value is None else float(Decimal(value))


def forecast_chart(view: CostViewOut) -> dict[str, Any]:
    """The period from its start to its end: what was spent by now, then the projection and
    its band to the end, with the view's own budget as a flat line."""
    period, forecast = view.billing_period, view.forecast
    as_of = min(max(forecast.as_of, period.start), period.end)
    labels = [f"{period.start:%Y-%m-%d}", f"{as_of:%Y-%m-%d %H:%M}", f"{period.end:%Y-%m-%d}"]
    spent = _float(period.total_cost)
    band = forecast.confidence_interval
    datasets: list[dict[str, Any]] = [
        {"label": "Spent", "data": [0, spent, None]},
        {"label": "Projected", "data": [None, spent, _float(forecast.projected_total_cost)],
         "dash": True},
        {"label": "Forecast low", "data": [None, spent, _float(band.lower)], "dash": True},
        {"label": "Forecast high", "data": [None, spent, _float(band.upper)], "dash": True,
         "fill": "-1"},
    ]  # fmt: skip
    if view.budget is not None:
        amount = _float(view.budget.amount)
        datasets.append({"label": "Budget", "data": [amount] * 3, "dash": True})
    return {"type": "line", "labels": labels, "unit": "USD", "datasets": datasets}


def breakdown_rows(
    view: CostViewOut, by: str, team_names: dict[str, str]
) -> list[tuple[str, str, int]]:
    """A breakdown of the view as (name, cost, requests), biggest first, as the API orders it;
    a member is shown by the email the API gives (to those who may see it)."""
    period = view.billing_period
    if by == "member":
        members = period.breakdown_by_member
        return [(e.email or key, e.cost, e.requests) for key, e in members.items()]
    if by == "team":
        found = period.breakdown_by_team
        return [(team_names.get(key, key), e.cost, e.requests) for key, e in found.items()]
    found = period.breakdown_by_model if by == "model" else period.breakdown_by_provider
    return [(key, e.cost, e.requests) for key, e in found.items()]


def _costs(request: Request, visit: Visit, team: Team | None) -> Response:
    ctx, org = visit.ctx, visit.current_org
    now = ctx.clock.now()
    form = query_form(request)
    state = FormState()
    try:
        query = parse(CostsQuery, form, optional_blank=frozenset({"period", "by"}))
        chosen = views.choose_period(now, period=query.period, since=None, until=None)
    except FormRefused as refusal:
        state, query = refusal.state, CostsQuery()
        chosen = views.choose_period(now, period=None, since=None, until=None)
    except Problem as problem:
        if problem.status in (403, 404):
            raise
        state, query = refused(problem, form, {"invalid_period": "period"}).state, CostsQuery()
        chosen = views.choose_period(now, period=None, since=None, until=None)
    found = views.cost_view(
        ctx.session,
        visit.principal,
        org_id=org.id,
        team_id=team.id if team else None,
        chosen=chosen,
        now=now,
    )
    view = CostViewOut.model_validate(found)
    names = _team_names(visit)
    by = query.by if query.by != "team" or team is None else "provider"
    rows = breakdown_rows(view, by, names)
    breakdowns = [("provider", "Provider"), ("model", "Model"), ("member", "Member")]
    if team is None:
        breakdowns.append(("team", "Team"))
    context = {
        "visit": visit,
        "org": org,
        "team": team,
        "view": view,
        "form": state,
        "period": query.period if not state.failed else "current",
        "periods": _periods(now),
        "by": by,
        "breakdowns": breakdowns,
        "tables": [(key, label, breakdown_rows(view, key, names)) for key, label in breakdowns],
        "chart": {
            "type": "bar",
            "labels": [name for name, _, _ in rows],
            "unit": "USD",
            "datasets": [{"label": "Cost", "data": [_float(cost) for _, cost, _ in rows]}],
        },
        "forecast_chart": forecast_chart(view),
        "team_names": names,
        "teams_shown": [
            (tid, name) for tid, name in names.items() if visit.can(Permission.SPEND_READ, tid)
        ],
    }
    status = state.status if state.failed else 200
    return render(request, "spend/costs.html", context, status=status)


@router.get("/orgs/{org}/costs")
def org_costs_page(request: Request, visit: OrgSpendRead) -> Response:
    return _costs(request, visit, None)


@router.get("/orgs/{org}/teams/{team}/costs")
def team_costs_page(request: Request, visit: TeamSpendRead) -> Response:
    return _costs(request, visit, visit.current_team)


# ---- budgets and alerts ----


def budget_shown(session: Any, row: Budget, now: datetime) -> BudgetOut:
    """A budget with its current period's spend, as the API's budget routes answer it."""
    rule = rule_of(row)
    key = rule.key(now)
    state = repository.counters(session, org_id=row.org_id, keys=[key]).get(key)
    return BudgetOut.model_validate(
        status_of(rule, state, key[1])
        | {
            "org_id": row.org_id,
            "thresholds": list(rule.thresholds),
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
    )


def _thresholds(form: FormData) -> list[str] | None:
    """The thresholds field (`80, 100`) as the list the API's body carries; None when blank."""
    text = str(form.get("thresholds") or "").strip()
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _budgets_page(
    request: Request,
    visit: Visit,
    *,
    form: FormState | None = None,
    edit_form: FormState | None = None,
    edit_id: str = "",
    notice: str = "",
    problem: Problem | None = None,
    status: int = 200,
) -> Response:
    session, org, now = visit.ctx.session, visit.current_org, visit.ctx.clock.now()
    rows = repository.budgets_of(session, org.id)
    budgets = [budget_shown(session, row, now) for row in rows]
    rules = manage.rules_by_id(session, org.id)
    open_only = request.query_params.get("open") == "on"
    alerts = [
        AlertOut.model_validate(alert_out(a, rules.get(a.budget_id)))
        for a in repository.alerts_of(session, org_id=org.id, open_only=open_only)
    ]
    alert_teams = {a.id: a.team_id or None for a in repository.alerts_of(session, org_id=org.id)}
    emails = _emails(visit, [b.user_id for b in budgets if b.user_id])
    failed = [s for s in (form, edit_form) if s is not None and s.failed]
    context = {
        "visit": visit,
        "org": org,
        "budgets": budgets,
        "budget_names": {b.id: b.name for b in budgets},
        "alerts": list(reversed(alerts)),  # newest first
        "alert_teams": alert_teams,
        "open_only": open_only,
        "emails": emails,
        "team_names": _team_names(visit),
        "scopes": SCOPES,
        "periods": PERIODS,
        "actions": ACTIONS,
        "form": form or FormState(values={"thresholds": "80", "period": "month"}),
        "edit_form": edit_form or FormState(),
        "blank": FormState(),
        "edit_id": edit_id,
        "notice": notice,
        "problem": problem,
    }
    status = failed[0].status if failed else status
    return render(request, "spend/budgets.html", context, status=status, block="page")


@router.get("/orgs/{org}/budgets")
def budgets_page(request: Request, visit: OrgSpendRead) -> Response:
    return _budgets_page(request, visit)


BUDGET_FIELDS = {
    "team_required": "team",
    "member_required": "member",
    "api_key_required": "api_key",
    "budget_exists": FORM,
}


@router.post("/orgs/{org}/budgets", name="budget.created")
def create_budget(request: Request, visit: OrgSpendManage) -> Response:
    ctx = visit.ctx
    blank = frozenset({"name", "team", "member", "api_key", "provider", "model"})
    thresholds = _thresholds(visit.form)
    extra: dict[str, Any] = {} if thresholds is None else {"thresholds": thresholds}
    try:
        body = parse(BudgetIn, visit.form, optional_blank=blank, extra=extra)
        row = manage.create_budget(
            ctx,
            visit.principal,
            org_id=visit.current_org.id,
            spec=manage.BudgetSpec(
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
            ),
        )
    except FormRefused as refusal:
        return _budgets_page(request, visit, form=refusal.state)
    except Problem as problem:
        ctx.session.rollback()
        state = refused(problem, visit.form, BUDGET_FIELDS).state
        return _budgets_page(request, visit, form=state)
    ctx.done(None, status=201)
    said = f"Budget “{row.name}” created."
    return changed(
        request, _budgets_base(visit), lambda: _budgets_page(request, visit, notice=said)
    )


def _budgets_base(visit: Visit) -> str:
    return f"/orgs/{visit.current_org.slug}/budgets"


def _budget(visit: Visit, budget_id: str) -> Budget:
    found = manage.find_budget(visit.ctx.session, visit.principal, budget_id)
    if found.org_id != visit.current_org.id:  # reached only through its own org
        raise NotFound("Budget not found")
    manage.authorize_budget(visit.ctx.session, visit.principal, Permission.SPEND_MANAGE, found)
    return found


@router.post("/orgs/{org}/budgets/{budget_id}/edit", name="budget.updated")
def update_budget(request: Request, budget_id: str, visit: OrgMember) -> Response:
    ctx = visit.ctx
    found = _budget(visit, budget_id)
    blank = frozenset({"name", "amount", "exceeded_action"})
    thresholds = _thresholds(visit.form)
    extra: dict[str, Any] = {} if thresholds is None else {"thresholds": thresholds}
    try:
        body = parse(BudgetUpdateIn, visit.form, optional_blank=blank, extra=extra)
        manage.update_budget(ctx, visit.principal, found, body.model_dump(exclude_unset=True))
    except FormRefused as refusal:
        return _budgets_page(request, visit, edit_form=refusal.state, edit_id=budget_id)
    except Problem as problem:
        ctx.session.rollback()
        state = refused(problem, visit.form).state
        return _budgets_page(request, visit, edit_form=state, edit_id=budget_id)
    ctx.done(None)
    said = f"Budget “{found.name}” saved."
    return changed(
        request, _budgets_base(visit), lambda: _budgets_page(request, visit, notice=said)
    )


@router.post("/orgs/{org}/budgets/{budget_id}/delete", name="budget.deleted")
def delete_budget(request: Request, budget_id: str, visit: OrgMember) -> Response:
    ctx = visit.ctx
    found = _budget(visit, budget_id)
    name = found.name
    manage.delete_budget(ctx, visit.principal, found)
    ctx.done(None, status=204)
    said = f"Budget “{name}” deleted."
    return changed(
        request, _budgets_base(visit), lambda: _budgets_page(request, visit, notice=said)
    )


@router.post("/orgs/{org}/budget-alerts/{alert_id}/acknowledge", name="budget_alert.acknowledged")
def acknowledge_alert(request: Request, alert_id: str, visit: OrgMember) -> Response:
    ctx = visit.ctx
    found = manage.find_alert(ctx.session, visit.principal, alert_id)
    if found.org_id != visit.current_org.id:
        raise NotFound("Alert not found")
    try:
        manage.acknowledge_alert(ctx, visit.principal, found)
    except Problem as problem:
        if problem.status in (403, 404):
            raise
        ctx.session.rollback()
        return _budgets_page(request, visit, problem=problem, status=problem.status)
    ctx.done(None)
    return changed(
        request,
        _budgets_base(visit),
        lambda: _budgets_page(request, visit, notice="Alert acknowledged."),
    )


# ---- a team's analytics and savings recommendations ----


class AnalyticsQuery(Input):
    days: int = Field(default=30, ge=1, le=analytics.MAX_DAYS)


@router.get("/orgs/{org}/teams/{team}/analytics")
def team_analytics_page(request: Request, visit: TeamSpendRead) -> Response:
    ctx, team = visit.ctx, visit.current_team
    form = query_form(request)
    state = FormState()
    try:
        query = parse(AnalyticsQuery, form, optional_blank=frozenset({"days"}))
    except FormRefused as refusal:
        state, query = refusal.state, AnalyticsQuery()
    subtree = views.subtree(repository.team_parents(ctx.session, team.org_id), team.id)
    found = analytics.view(
        ctx.session, visit.principal, org_id=team.org_id, team_id=team.id, team_ids=subtree,
        days=query.days, include=("usage", "insights"), now=ctx.clock.now(),
    )  # fmt: skip
    shown = AnalyticsOut.model_validate(found)
    usage, insights = shown.usage or {}, shown.insights or {}
    daily = usage.get("requests_over_time", [])
    context = {
        "visit": visit,
        "org": visit.current_org,
        "team": team,
        "form": state,
        "days": query.days,
        "period": shown.period,
        "usage": usage,
        "insights": insights,
        "savings": insights.get("cost_optimization_opportunities") or {},
        "chart": {
            "type": "bar",
            "labels": [str(d["date"]) for d in daily],
            "unit": "requests",
            "datasets": [{"label": "Requests", "data": [d["requests"] for d in daily]}],
        },
    }
    return render(
        request, "spend/analytics.html", context, status=state.status if state.failed else 200
    )


# ---- anomalies ----


class AnomaliesQuery(Input):
    open: bool = False
    dimension: str = Field(default="", pattern="^(|team|member|api_key|model)$")
    team: str = Field(default="", max_length=40)


def _anomalies_page(
    request: Request,
    visit: Visit,
    *,
    notice: str = "",
    problem: Problem | None = None,
    status: int = 200,
) -> Response:
    session, org = visit.ctx.session, visit.current_org
    form = query_form(request)
    state = FormState()
    try:
        query = parse(AnomaliesQuery, form, optional_blank=frozenset({"dimension", "team"}))
    except FormRefused as refusal:
        state, query = refusal.state, AnomaliesQuery()
    names = _team_names(visit)
    team_ids = None
    if query.team:
        if query.team not in names:
            raise NotFound("Team not found")
        team_ids = views.subtree(repository.team_parents(session, org.id), query.team)
    rows = repository.anomalies_of(session, org_id=org.id, team_ids=team_ids, open_only=query.open)
    shown = [AnomalyOut.model_validate(anomalies.anomaly_out(r)) for r in rows]
    if query.dimension:
        shown = [a for a in shown if a.dimension == query.dimension]
    members = [a.subject for a in shown if a.dimension == "member"]
    context = {
        "visit": visit,
        "org": org,
        "anomalies": shown,
        "form": state,
        "query": query,
        "dimensions": DIMENSIONS,
        "team_choices": [("", "Every team"), *sorted(names.items(), key=lambda kv: kv[1])],
        "team_names": names,
        "emails": _emails(visit, members),
        "notice": notice,
        "problem": problem,
    }
    status = state.status if state.failed else status
    return render(request, "spend/anomalies.html", context, status=status, block="page")


@router.get("/orgs/{org}/anomalies")
def anomalies_page(request: Request, visit: OrgSpendRead) -> Response:
    return _anomalies_page(request, visit)


@router.post("/orgs/{org}/anomalies/{anomaly_id}/acknowledge", name="spend_anomaly.acknowledged")
def acknowledge_anomaly(request: Request, anomaly_id: str, visit: OrgMember) -> Response:
    ctx = visit.ctx
    found = anomalies.find(ctx.session, visit.principal, anomaly_id)
    if found.org_id != visit.current_org.id:
        raise NotFound("Anomaly not found")
    try:
        anomalies.acknowledge(ctx, visit.principal, found)
    except Problem as problem:
        if problem.status in (403, 404):
            raise
        ctx.session.rollback()
        return _anomalies_page(request, visit, problem=problem, status=problem.status)
    ctx.done(None)
    location = f"/orgs/{visit.current_org.slug}/anomalies"
    return changed(
        request,
        location,
        lambda: _anomalies_page(request, visit, notice="Anomaly acknowledged."),
    )
