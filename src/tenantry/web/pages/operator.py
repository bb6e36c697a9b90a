"""The operator console: every tenant with its plan, status, members and this period's usage;
putting one on a plan outside billing, suspending and resuming it; and the plan catalog.

Only the deployment's operators may open it: anyone else gets the API's 403 `operator_only`.
Each changing route's `name` is the API route's audit action, recorded in the tenant's chain
and the operator chain alike (`operator.service`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import Response

from tenantry.kit.errors import Forbidden, NotFound, Problem
from tenantry.kit.pagination import PageRequest
from tenantry.operator import service
from tenantry.operator.schemas import SuspendIn, TenantPlanIn
from tenantry.plans import live as live_catalog
from tenantry.web.forms import FormRefused, FormState, parse, query_form, refused, text_fields
from tenantry.web.pages import changed, page_router
from tenantry.web.templating import render
from tenantry.web.visit import Visit, signed_in

router = page_router()
TENANT_ROWS = 100
STATUSES = [("", "Any status"), ("active", "Active"), ("suspended", "Suspended")]


def operator_visit(visit: Annotated[Visit, Depends(signed_in)]) -> Visit:
    """A signed-in operator's visit; 403 `operator_only` for anyone else, as the API answers."""
    service.require_operator(visit.ctx.session, visit.principal)
    return visit


OperatorDep = Annotated[Visit, Depends(operator_visit)]


def _tenants_page(
    request: Request,
    visit: Visit,
    *,
    notice: str = "",
    problem: Problem | None = None,
    failed: dict[str, FormState] | None = None,
) -> Response:
    session, now = visit.ctx.session, visit.ctx.clock.now()
    query = query_form(request)
    values = text_fields(query)
    q = values.get("q", "").strip()[:200] or None
    status = values.get("status") if values.get("status") in ("active", "suspended") else None
    plan = values.get("plan", "").strip()[:32] or None
    cursor = values.get("cursor") or None
    found = service.list_tenants(
        session,
        PageRequest(limit=TENANT_ROWS, cursor=cursor),
        now=now,
        q=q,
        status=status,
        plan=plan,
    )
    catalog = live_catalog.current(session)
    context: dict[str, Any] = {
        "visit": visit,
        "tenants": found.items,
        "next_cursor": found.next_cursor,
        "filters": FormState(values),
        "statuses": STATUSES,
        "plan_filter": [("", "Any plan")] + [(k, p.name) for k, p in catalog.plans.items()],
        "plan_choices": [(k, p.name) for k, p in catalog.plans.items()],
        "failed": failed or {},
        "notice": notice,
        "problem": problem,
    }
    code = (
        problem.status
        if problem
        else next((f.status for f in (failed or {}).values() if f.failed), 200)
    )
    return render(request, "operator/tenants.html", context, status=code, block="page")


@router.get("/operator")
def tenants(request: Request, visit: OperatorDep) -> Response:
    return _tenants_page(request, visit)


def _tenant(visit: Visit, org: str) -> Any:
    return service.tenant(visit.ctx.session, org)


@router.post("/operator/tenants/{org}/plan", name="operator.plan_changed")
def set_plan(request: Request, org: str, visit: OperatorDep) -> Response:
    target = _tenant(visit, org)
    try:
        body = parse(TenantPlanIn, visit.form)
        service.set_plan(visit.ctx, visit.principal, target, body.plan)
    except FormRefused as refusal:
        return _tenants_page(request, visit, failed={target.id: refusal.state})
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        visit.ctx.session.rollback()
        state = refused(problem, visit.form, {"invalid_plan": "plan"}).state
        return _tenants_page(request, visit, failed={target.id: state})
    name, plan = target.name, target.plan
    visit.ctx.done(None)
    return changed(
        request, "/operator", lambda: _tenants_page(request, visit, notice=f"{name} is on {plan}.")
    )


@router.post("/operator/tenants/{org}/suspend", name="operator.tenant_suspended")
def suspend(request: Request, org: str, visit: OperatorDep) -> Response:
    target = _tenant(visit, org)
    try:
        body = parse(SuspendIn, visit.form, optional_blank=frozenset({"reason"}))
        service.suspend(visit.ctx, visit.principal, target, reason=body.reason)
    except FormRefused as refusal:
        return _tenants_page(request, visit, failed={target.id: refusal.state})
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        visit.ctx.session.rollback()
        return _tenants_page(request, visit, problem=problem)
    name = target.name
    visit.ctx.done(None)
    return changed(
        request, "/operator", lambda: _tenants_page(request, visit, notice=f"{name} suspended.")
    )


@router.post("/operator/tenants/{org}/resume", name="operator.tenant_resumed")
def resume(request: Request, org: str, visit: OperatorDep) -> Response:
    target = _tenant(visit, org)
    try:
        service.resume(visit.ctx, visit.principal, target)
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        visit.ctx.session.rollback()
        return _tenants_page(request, visit, problem=problem)
    name = target.name
    visit.ctx.done(None)
    return changed(
        request, "/operator", lambda: _tenants_page(request, visit, notice=f"{name} resumed.")
    )


@router.get("/operator/plans")
def plan_catalog(request: Request, visit: OperatorDep) -> Response:
    catalog = live_catalog.current(visit.ctx.session)
    context = {
        "visit": visit,
        "catalog": catalog,
        "plans": [(p, catalog.upgrade_hint(k)) for k, p in catalog.plans.items()],
    }
    return render(request, "operator/plans.html", context)
