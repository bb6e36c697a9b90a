"""HTTP routes of operators (`/api/v1/operator/...`): the deployment's staff acting on tenants.
Only operators may call them (403 `operator_only` for anyone else); each mutating route's `name`
is the audit action it records, in the tenant's chain and in the operator chain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from tenantry.api.metering import plan_out
from tenantry.api.tenancy import link_out
from tenantry.authz.principal import Principal
from tenantry.http.auth import PrincipalDep
from tenantry.http.body import JsonBodyRoute
from tenantry.http.work import CtxDep
from tenantry.kit.context import Ctx
from tenantry.kit.money import plain
from tenantry.kit.pagination import PageDep, PageOut
from tenantry.metering.plans import effective_plan
from tenantry.metering.schemas import PlanOut, PlanOverridesIn
from tenantry.operator import service
from tenantry.operator.schemas import (
    CatalogOut,
    CatalogPlanIn,
    CatalogPlanOut,
    CatalogPlanPatch,
    CatalogQuotaOut,
    SuspendIn,
    TenantCreatedOut,
    TenantCreateIn,
    TenantOut,
    TenantPlanIn,
)
from tenantry.plans import live as live_catalog
from tenantry.plans.catalog import Plan

router = APIRouter(prefix="/api/v1/operator", tags=["operator"], route_class=JsonBodyRoute)

_PROBLEM: dict[str, Any] = {"application/problem+json": {}}


def problems(*answers: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the problems a route answers with: (status, what)."""
    out: dict[int | str, dict[str, Any]] = {
        401: {"description": "No valid credentials", "content": _PROBLEM},
        403: {"description": "`operator_only`: the caller is not an operator", "content": _PROBLEM},
    }
    for status, what in answers:
        found = out.get(status)
        text = f"{found['description']}; {what}" if found else what
        out[status] = {"description": text, "content": _PROBLEM}
    return out


NOT_FOUND = (404, "`not_found`: no such organization")
INVALID = (422, "`validation_error` or `invalid_plan`")


@dataclass
class OperatorScope:
    ctx: Ctx
    principal: Principal


def operator_scope(ctx: CtxDep, principal: PrincipalDep) -> OperatorScope:
    service.require_operator(ctx.session, principal)
    return OperatorScope(ctx, principal)


OperatorDep = Annotated[OperatorScope, Depends(operator_scope)]


def tenant_out(view: service.TenantView) -> TenantOut:
    org = view.org
    return TenantOut(
        id=org.id,
        name=org.name,
        slug=org.slug,
        plan=org.plan,
        status=org.status,
        member_count=view.member_count,
        usage={k: plain(v) for k, v in sorted(view.usage.items())},
        created_at=org.created_at,
    )


def _view(scope: OperatorScope, org: Any) -> TenantOut:
    now = scope.ctx.clock.now()
    return tenant_out(service.tenant_view(scope.ctx.session, org, now=now))


@router.get("/tenants", response_model=PageOut[TenantOut], responses=problems())
def list_tenants(
    scope: OperatorDep,
    page: PageDep,
    q: Annotated[
        str | None, Query(max_length=200, description="Part of a name or slug, or an id")
    ] = None,
    status: Literal["active", "suspended"] | None = None,
    plan: Annotated[str | None, Query(max_length=32)] = None,
) -> PageOut[TenantOut]:
    """Every tenant, with its plan, status, member count and current-period usage."""
    found = service.list_tenants(
        scope.ctx.session, page, now=scope.ctx.clock.now(), q=q, status=status, plan=plan
    )
    return PageOut(items=[tenant_out(v) for v in found.items], next_cursor=found.next_cursor)


@router.post(
    "/tenants",
    name="operator.tenant_created",
    status_code=201,
    response_model=TenantCreatedOut,
    responses=problems((409, "`slug_taken`"), INVALID),
)
def create_tenant(body: TenantCreateIn, scope: OperatorDep) -> Response:
    """A tenant on any plan, owned by `owner_email` (invited if they have no account yet)."""
    ctx = scope.ctx
    created = service.create_tenant(
        ctx,
        scope.principal,
        name=body.name,
        slug=body.slug,
        plan=body.plan,
        owner_email=str(body.owner_email),
    )
    out = TenantCreatedOut.model_validate(
        {
            **_view(scope, created.org).model_dump(),
            "owner_invitation": link_out(ctx, created.owner_invitation)
            if created.owner_invitation
            else None,
        }
    )
    return ctx.done(out, status=201)


@router.get("/tenants/{org}", response_model=TenantOut, responses=problems(NOT_FOUND))
def show_tenant(org: str, scope: OperatorDep) -> TenantOut:
    return _view(scope, service.tenant(scope.ctx.session, org))


@router.get("/tenants/{org}/plan", response_model=PlanOut, responses=problems(NOT_FOUND))
def tenant_plan(org: str, scope: OperatorDep) -> PlanOut:
    """The tenant's effective plan: its catalog plan with any overrides applied."""
    found = service.tenant(scope.ctx.session, org)
    return plan_out(found.id, effective_plan(scope.ctx.session, found.id))


@router.put(
    "/tenants/{org}/plan",
    name="operator.plan_changed",
    response_model=TenantOut,
    responses=problems(
        NOT_FOUND, (409, "`subscription_active`: the plan moves through billing"), INVALID
    ),
)
def set_tenant_plan(org: str, body: TenantPlanIn, scope: OperatorDep) -> Response:
    """Put the tenant on a plan outside billing (a contract)."""
    found = service.tenant(scope.ctx.session, org)
    service.set_plan(scope.ctx, scope.principal, found, body.plan)
    return scope.ctx.done(_view(scope, found))


@router.put(
    "/tenants/{org}/plan-overrides",
    name="operator.plan_overridden",
    response_model=PlanOut,
    responses=problems(NOT_FOUND, (422, "`validation_error`, `unknown_quota`, `unknown_meter`")),
)
def set_tenant_overrides(org: str, body: PlanOverridesIn, scope: OperatorDep) -> Response:
    """Replace the tenant's overrides of its plan (a custom plan); `{}` goes back to the
    catalog plan."""
    found = service.tenant(scope.ctx.session, org)
    plan = service.set_overrides(scope.ctx, scope.principal, found, body.as_overrides())
    return scope.ctx.done(plan_out(found.id, plan))


@router.post(
    "/tenants/{org}/suspend",
    name="operator.tenant_suspended",
    response_model=TenantOut,
    responses=problems(NOT_FOUND, (409, "`tenant_suspended`: suspended already"), INVALID),
)
def suspend_tenant(org: str, body: SuspendIn, scope: OperatorDep) -> Response:
    """Refuse the tenant's members and API keys on everything in it (403 `tenant_suspended`);
    nothing is deleted."""
    found = service.tenant(scope.ctx.session, org)
    service.suspend(scope.ctx, scope.principal, found, reason=body.reason)
    return scope.ctx.done(_view(scope, found))


@router.post(
    "/tenants/{org}/resume",
    name="operator.tenant_resumed",
    response_model=TenantOut,
    responses=problems(NOT_FOUND, (409, "`tenant_not_suspended`")),
)
def resume_tenant(org: str, scope: OperatorDep) -> Response:
    """Reactivate a suspended tenant: everything works again as it did."""
    found = service.tenant(scope.ctx.session, org)
    service.resume(scope.ctx, scope.principal, found)
    return scope.ctx.done(_view(scope, found))


# ---- the plan catalog ----


def catalog_plan_out(plan: Plan, upgrade_to: str | None) -> CatalogPlanOut:
    return CatalogPlanOut(
        key=plan.key,
        name=plan.name,
        monthly_price=plain(plan.monthly_price),
        yearly_price=plain(plan.yearly_price),
        currency=plan.currency,
        quotas=[
            CatalogQuotaOut(
                key=q.key,
                kind=q.kind.value,
                limit=None if q.limit is None else plain(q.limit),
                enforcement=q.enforcement.value,
                period=q.period.value,
                meter=q.meter,
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
        audit_retention_days=plan.audit_retention_days,
        upgrade_to=upgrade_to,
    )


@router.get("/plans", response_model=CatalogOut, responses=problems())
def list_catalog(scope: OperatorDep) -> CatalogOut:
    """The plan catalog as the deployment has it (the shipped plans with operators' edits)."""
    catalog = live_catalog.current(scope.ctx.session)
    return CatalogOut(
        version=catalog.version,
        plans=[catalog_plan_out(p, catalog.upgrade_hint(k)) for k, p in catalog.plans.items()],
    )


@router.post(
    "/plans",
    name="operator.plan_added",
    status_code=201,
    response_model=CatalogPlanOut,
    responses=problems(
        (409, "`plan_exists`"), (422, "`validation_error`, `unknown_quota`, `unknown_meter`")
    ),
)
def add_catalog_plan(body: CatalogPlanIn, scope: OperatorDep) -> Response:
    """A new plan in the catalog: tenants can subscribe to it, operators give it."""
    changes = body.model_dump(mode="json", exclude_unset=True, exclude={"key"})
    changes.setdefault("name", body.name)
    plan, upgrade_to = service.save_plan(scope.ctx, scope.principal, body.key, changes, new=True)
    return scope.ctx.done(catalog_plan_out(plan, upgrade_to), status=201)


@router.patch(
    "/plans/{plan_key}",
    name="operator.plan_edited",
    response_model=CatalogPlanOut,
    responses=problems(
        (404, "`not_found`: no such plan"),
        (422, "`validation_error`, `unknown_quota`, `unknown_meter`, `invalid_plan`"),
    ),
)
def edit_catalog_plan(plan_key: str, body: CatalogPlanPatch, scope: OperatorDep) -> Response:
    """Change a plan of the catalog (prices, quotas, rate limits, overage rates): every org on
    it follows at once, in every process."""
    changes = body.model_dump(mode="json", exclude_unset=True)
    plan, upgrade_to = service.save_plan(scope.ctx, scope.principal, plan_key, changes, new=False)
    return scope.ctx.done(catalog_plan_out(plan, upgrade_to))
