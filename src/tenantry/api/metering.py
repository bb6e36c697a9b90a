"""HTTP routes of metering: usage ingestion, admission and settle, summaries, quotas, plans.

Usage events, admissions and settles are a high-volume data path: their own rows (events,
reservations) are the record, so they write no audit event per request (refusals still do).
Changing an org's plan overrides is an admin change and is audited.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter

from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.http.auth import (
    BearerDep,
    OrgScope,
    PrincipalDep,
    TeamScope,
    authenticated,
    org_scope,
    team_scope,
)
from tenantry.http.body import JsonBodyRoute
from tenantry.http.work import CtxDep, json_body_schema, parse_json_body
from tenantry.kit.context import Ctx, quota_exempt
from tenantry.kit.errors import Forbidden
from tenantry.kit.money import plain
from tenantry.kit.schemas import Timestamp
from tenantry.metering import admission, alerts, ingest, plans, quotas, recording, summary
from tenantry.metering.meters import METERS
from tenantry.metering.quotas import QuotaStatus
from tenantry.metering.schemas import (
    AdmissionIn,
    AdmissionOut,
    PlanOut,
    PlanOverridesIn,
    PlanQuotaOut,
    QuotaAlertOut,
    QuotaAlertsOut,
    QuotaOut,
    QuotasOut,
    SettledOut,
    SettleIn,
    SummaryOut,
    SummaryRowOut,
    UsageBatchIn,
    UsageEventIn,
    UsageRecordedOut,
)
from tenantry.metering.summary import Granularity, GroupBy
from tenantry.operator import service as operators
from tenantry.plans.catalog import Plan, upgrade_hint
from tenantry.tenancy import scope as tenancy_scope
from tenantry.throttling.limiter import throttle_request

router = APIRouter(prefix="/api/v1", route_class=JsonBodyRoute)

OrgUsageRead = Annotated[OrgScope, Depends(org_scope(Permission.USAGE_READ))]
TeamUsageRead = Annotated[TeamScope, Depends(team_scope(Permission.USAGE_READ))]
QUOTA_WARNING_HEADER = "Tenantry-Quota-Warning"


# Bodies of the endpoints that read their own (`kit.http.parse_json_body`). A usage body with
# `events` at its top is a batch, any other one event: validated once as what it is, and its
# errors name that shape only (`body.batch.events.3.quantity`, `body.event.timestamp`).
_USAGE_BATCH = TypeAdapter(UsageBatchIn)
_USAGE_EVENT = TypeAdapter(UsageEventIn)
# The shape in the OpenAPI document: one or the other.
_USAGE_BODY: TypeAdapter[UsageBatchIn | UsageEventIn] = TypeAdapter(UsageBatchIn | UsageEventIn)


def _usage_body(raw: bytes) -> UsageBatchIn | UsageEventIn:
    """The body as a batch or as one event. Not a union with a discriminator: a callable one
    turns the whole parsed body into Python objects before it is validated, a third of the cost
    of a batch of 1,000 events. A body that does not hold the text `"events"` cannot have it at
    its top; one that does is tried as a batch, and read as one event only when it has no
    `events` at its top after all (or is not an object)."""
    if b'"events"' in raw:
        try:
            return parse_json_body(_USAGE_BATCH, raw, loc=("batch",))
        except RequestValidationError as exc:
            if not any(_not_a_batch(error) for error in exc.errors()):
                raise
    return parse_json_body(_USAGE_EVENT, raw, loc=("event",))


def _not_a_batch(error: Any) -> bool:
    loc = tuple(error["loc"])
    return loc == ("body", "batch") or (
        loc == ("body", "batch", "events") and error["type"] == "missing"
    )


_ADMISSION_BODY = TypeAdapter(AdmissionIn)
_SETTLE_BODY = TypeAdapter(SettleIn)


def _quantity(value: Decimal | None) -> str | None:
    return None if value is None else plain(value)


# ---- usage events ----


@router.post(
    "/usage/events",
    name="usage.recorded",
    response_model=UsageRecordedOut,
    tags=["usage"],
    openapi_extra=json_body_schema(_USAGE_BODY),
)
async def record_usage_events(request: Request, _credential: BearerDep) -> Response:
    """Record one event or a batch of up to 1,000. Each is accepted, a duplicate (its id was
    recorded before: replays change nothing), or rejected with a reason; the rest go in."""
    # The hot path: the body is parsed, the caller authenticated and the batch recorded in one
    # worker thread (`access.dependencies.authenticated`), the body after the credential as
    # for any route.
    raw = await request.body()
    return await authenticated(request, lambda ctx, principal: _record(ctx, principal, raw))


def _record(ctx: Ctx, principal: Principal, raw: bytes) -> Response:
    body = _usage_body(raw)
    if isinstance(body, UsageBatchIn):
        incoming = [
            ingest.IncomingEvent(
                e["id"], e["meter"], e["quantity"], e["timestamp"], e.get("team"), e.get("user"),
                e.get("api_key"), e.get("dimensions") or recording.NO_DIMENSIONS,
            )
            for e in body.events
        ]  # fmt: skip
    else:
        incoming = [
            ingest.IncomingEvent(
                body.id, body.meter, body.quantity, body.timestamp, body.team, body.user,
                body.api_key, body.dimensions,
            )
        ]  # fmt: skip
    done = ingest.ingest(ctx, principal, org_ref=body.org, events=incoming)
    counts = Counter(r.status for r in done.results)
    out = {
        "org_id": done.org_id,
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "results": [
            {"id": event_id, "status": status, "code": code, "detail": detail}
            for event_id, status, code, detail in done.results
        ],
    }
    response = ctx.done(out)
    if done.over_limit:
        response.headers[QUOTA_WARNING_HEADER] = ", ".join(done.over_limit)
    return response


# ---- admission ----


def _admission_out(decided: admission.Admission, request: Request) -> AdmissionOut:
    reservation = decided.reservation
    return AdmissionOut(
        decision=decided.decision,
        reasons=[r.as_dict() for r in decided.reasons],
        warnings=[r.as_dict() for r in decided.warnings],
        reservation_id=reservation.id if reservation else None,
        expires_at=reservation.expires_at if reservation else None,
        remaining={k: _quantity(v) for k, v in decided.remaining.items()},
        rate_limit=_rate_limit_seen(request),
        budgets=decided.sections.get("budgets"),
        estimated_cost=decided.sections.get("estimated_cost"),
        governance=decided.sections.get("governance"),
        approval_id=(decided.sections.get("governance") or {}).get("approval_id"),
    )


def _rate_limit_seen(request: Request) -> dict[str, Any] | None:
    """What throttling's limiter said about this request, when it ran."""
    seen = getattr(request.state, "rate_limit", None)
    if seen is None:
        return None
    if isinstance(seen, dict):
        return seen
    fields = ("limit", "remaining", "reset")
    return {name: getattr(seen, name) for name in fields if hasattr(seen, name)}


@router.post(
    "/admission",
    name="admission.decided",
    response_model=AdmissionOut,
    tags=["usage"],
    openapi_extra=json_body_schema(_ADMISSION_BODY),
)
async def admit(request: Request, _credential: BearerDep) -> Response:
    """May this principal do `action` on `team`, expecting to use `estimate`? An allowed
    admission holds the estimate against the plan's quotas until settled or expired."""
    # The hot path: one worker thread for the whole request (see `record_usage_events`).
    raw = await request.body()
    return await authenticated(request, lambda ctx, principal: _admit(ctx, principal, request, raw))


def _admit(ctx: Ctx, principal: Principal, request: Request, raw: bytes) -> Response:
    body = parse_json_body(_ADMISSION_BODY, raw)
    ttl = timedelta(seconds=body.ttl_seconds or ctx.settings.reservation_ttl_seconds)
    decided = admission.admit(
        ctx,
        principal,
        team_ref=body.team,
        action=body.action,
        estimate=body.estimate,
        provider=body.provider,
        model=body.model,
        ttl=ttl,
        # Whether it came over TLS (the scheme as the server's proxy settings see it): what a
        # classification level's `encryption_required` asks for.
        context={**body.context(), "tls": request.url.scheme == "https"},
    )
    response = ctx.done(_admission_out(decided, request))
    if decided.warnings:
        response.headers[QUOTA_WARNING_HEADER] = ", ".join(
            str(w.extra.get("quota")) for w in decided.warnings
        )
    return response


@router.post(
    "/admission/{reservation_id}/settle",
    name="admission.settled",
    response_model=SettledOut,
    tags=["usage"],
    openapi_extra=json_body_schema(_SETTLE_BODY),
)
async def settle(reservation_id: str, request: Request, _credential: BearerDep) -> Response:
    """Record what the admitted action really used and release the rest of its hold."""
    # The other half of every admitted action: the same one-thread path as `admit`.
    raw = await request.body()
    return await authenticated(
        request, lambda ctx, principal: _settle(ctx, principal, reservation_id, raw)
    )


def _settle(ctx: Ctx, principal: Principal, reservation_id: str, raw: bytes) -> Response:
    body = parse_json_body(_SETTLE_BODY, raw)
    done = admission.settle(ctx, principal, reservation_id, body.usage)
    reservation = done.reservation
    out = SettledOut(
        reservation_id=reservation.id,
        status=reservation.status,
        team_id=reservation.team_id,
        usage={k: plain(v) for k, v in body.usage.items()},
        recorded_events=done.recorded,
        expired_before_settle=done.expired_before_settle,
        remaining={k: _quantity(v) for k, v in done.remaining.items()},
    )
    return ctx.done(out)


# ---- summaries ----

SinceQ = Annotated[Timestamp | None, Query(description="Start (taken down to the hour)")]
UntilQ = Annotated[Timestamp | None, Query(description="End, exclusive (taken up to the hour)")]
GroupByQ = Annotated[GroupBy, Query()]
GranularityQ = Annotated[Granularity | None, Query()]


def _summary_out(found: summary.Summary) -> SummaryOut:
    return SummaryOut(
        org_id=found.org_id,
        team_id=found.team_id,
        since=found.since,
        until=found.until,
        group_by=found.group_by,
        granularity=found.granularity,
        totals={k: plain(v) for k, v in sorted(found.totals().items())},
        rows=[
            SummaryRowOut(
                meter=r.meter,
                unit=METERS[r.meter].unit,
                group=r.group,
                bucket=r.bucket,
                quantity=plain(r.quantity),
                events=r.events,
            )
            for r in found.rows
        ],
    )


@router.get("/teams/{team}/usage", response_model=SummaryOut, tags=["usage"])
def team_usage(
    scope: TeamUsageRead,
    since: SinceQ = None,
    until: UntilQ = None,
    group_by: GroupByQ = "meter",
    granularity: GranularityQ = None,
) -> SummaryOut:
    """The team's usage per meter (and member, provider or model), from hourly rollups."""
    found = summary.summarize(
        scope.ctx.session,
        org_id=scope.team.org_id,
        team_id=scope.team.id,
        since=since,
        until=until,
        group_by=group_by,
        granularity=granularity,
        now=scope.ctx.clock.now(),
    )
    return _summary_out(found)


@router.get("/orgs/{org}/usage", response_model=SummaryOut, tags=["usage"])
def org_usage(
    scope: OrgUsageRead,
    since: SinceQ = None,
    until: UntilQ = None,
    group_by: GroupByQ = "meter",
    granularity: GranularityQ = None,
) -> SummaryOut:
    """The org's usage per meter (and member, provider or model), from hourly rollups."""
    found = summary.summarize(
        scope.ctx.session,
        org_id=scope.org.id,
        team_id=None,
        since=since,
        until=until,
        group_by=group_by,
        granularity=granularity,
        now=scope.ctx.clock.now(),
    )
    return _summary_out(found)


# ---- quotas and plans ----


def _quota_out(status: QuotaStatus) -> QuotaOut:
    quota = status.quota
    return QuotaOut(
        key=quota.key,
        kind=quota.kind.value,
        meter=quota.meter,
        limit=_quantity(quota.limit),
        used=_quantity(status.used),
        reserved=plain(status.reserved),
        remaining=_quantity(status.remaining),
        enforcement=quota.enforcement.value,
        period=quota.period.value,
        period_start=status.period_start,
        period_end=status.period_end,
        team_used=_quantity(status.team_used),
        overage=plain(status.overage),
        overage_cost=_quantity(status.overage_cost),
    )


def _quotas_out(
    scope_org_id: str, team_id: str | None, plan: Plan, rows: list[QuotaStatus]
) -> QuotasOut:
    return QuotasOut(
        org_id=scope_org_id,
        team_id=team_id,
        plan=plan.key,
        custom=plan.custom,
        upgrade_to=upgrade_hint(plan.key),
        quotas=[_quota_out(s) for s in rows],
    )


@router.get("/orgs/{org}/quotas", response_model=QuotasOut, tags=["usage"])
@quota_exempt
def org_quotas(scope: OrgUsageRead) -> QuotasOut:
    """Each quota of the org's plan: limit, used, reserved, remaining, enforcement, period."""
    session, now = scope.ctx.session, scope.ctx.clock.now()
    rows = quotas.quota_statuses(session, scope.org.id, now=now)
    return _quotas_out(scope.org.id, None, plans.effective_plan(session, scope.org.id), rows)


@router.get("/teams/{team}/quotas", response_model=QuotasOut, tags=["usage"])
@quota_exempt
def team_quotas(scope: TeamUsageRead) -> QuotasOut:
    """The org's quotas (which its teams share), with this team's own part as `team_used`."""
    session, now, team = scope.ctx.session, scope.ctx.clock.now(), scope.team
    rows = quotas.quota_statuses(session, team.org_id, now=now, team_id=team.id)
    return _quotas_out(team.org_id, team.id, plans.effective_plan(session, team.org_id), rows)


@router.get("/orgs/{org}/quota-alerts", response_model=QuotaAlertsOut, tags=["usage"])
def quota_alerts(scope: OrgUsageRead) -> QuotaAlertsOut:
    """Alerts raised when a metered quota passed 80% and 100% of its limit, oldest first."""
    found = alerts.quota_alerts(scope.ctx.session, scope.org.id)
    return QuotaAlertsOut(
        org_id=scope.org.id,
        alerts=[
            QuotaAlertOut(
                id=a.id,
                quota=a.quota_key,
                threshold=a.threshold,
                used=plain(a.used),
                limit=plain(a.limit),
                enforcement=a.enforcement,
                period_start=a.period_start,
                created_at=a.created_at,
            )
            for a in found
        ],
    )


def plan_out(org_id: str, plan: Plan) -> PlanOut:
    return PlanOut(
        org_id=org_id,
        key=plan.key,
        name=plan.name,
        custom=plan.custom,
        monthly_price=plain(plan.monthly_price),
        yearly_price=plain(plan.yearly_price),
        currency=plan.currency,
        quotas=[
            PlanQuotaOut(
                key=q.key,
                kind=q.kind.value,
                meter=q.meter,
                limit=_quantity(q.limit),
                enforcement=q.enforcement.value,
                period=q.period.value,
            )
            for q in plan.quotas.values()
        ],
        rate_limits={
            "org_per_minute": plan.rate_limits.org_per_minute,
            "org_burst": plan.rate_limits.org_burst,
            "key_per_minute": plan.rate_limits.key_per_minute,
            "key_burst": plan.rate_limits.key_burst,
        },
        overage_rates={k: plain(v) for k, v in sorted(plan.overage_rates.items())},
        upgrade_to=upgrade_hint(plan.key),
    )


@router.get("/orgs/{org}/plan", response_model=PlanOut, tags=["usage"])
@quota_exempt
def org_plan(scope: OrgUsageRead) -> PlanOut:
    """The org's effective plan: its catalog plan with any overrides applied."""
    return plan_out(scope.org.id, plans.effective_plan(scope.ctx.session, scope.org.id))


@router.put(
    "/orgs/{org}/plan-overrides",
    name="plan.overridden",
    response_model=PlanOut,
    tags=["usage"],
    responses={
        403: {
            "description": "`operator_only`: custom plans are set by the deployment's operators "
            "(PUT /api/v1/operator/tenants/{org}/plan-overrides does the same)",
            "content": {"application/problem+json": {}},
        },
        404: {
            "description": "`not_found`: no such organization, or not yours",
            "content": {"application/problem+json": {}},
        },
    },
)
@quota_exempt
def set_plan_overrides(
    org: str, body: PlanOverridesIn, ctx: CtxDep, principal: PrincipalDep, request: Request
) -> Response:
    """Replace the org's overrides of its plan (a custom plan); `{}` goes back to the catalog.
    Custom plans are the operator's: the org's own members, owners included, get 403
    `operator_only` (and others 404, as everywhere)."""
    if not operators.is_operator(ctx.session, principal):
        found = tenancy_scope.resolve_org(ctx.session, principal, org)
        request.state.audit_org_id = found.id
        throttle_request(request, ctx, principal, org_id=found.id)  # as any org route
        raise Forbidden(
            "Custom plans are set by the deployment's operators",
            code="operator_only",
            org_id=found.id,
        )
    target = operators.tenant(ctx.session, org)
    plan = operators.set_overrides(ctx, principal, target, body.as_overrides())
    return ctx.done(plan_out(target.id, plan))
