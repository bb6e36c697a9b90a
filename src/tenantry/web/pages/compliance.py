"""Compliance reports: the org's reports with their JSON and PDF, generating one (a framework
and a month), and the monthly schedule. Reading needs `audit:read`, as the API's routes do;
generating and scheduling also `governance:manage`, checked by the same service."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import Response

from tenantry.authz.catalog import Permission
from tenantry.governance.compliance import frameworks as fw
from tenantry.governance.compliance import render as report_render
from tenantry.governance.compliance import reports
from tenantry.governance.compliance.schemas import ReportIn, ScheduleIn
from tenantry.http.state import app_state
from tenantry.kit.errors import Forbidden, Problem
from tenantry.web.forms import FormRefused, FormState, parse, refused
from tenantry.web.pages import changed, every, page_router
from tenantry.web.templating import render
from tenantry.web.visit import Visit, org_page

router = page_router()
AuditRead = Annotated[Visit, Depends(org_page(Permission.AUDIT_READ))]
FRAMEWORK_CHOICES = [(name, fw.SPECS[name].title) for name in fw.FRAMEWORKS]


def _page(
    request: Request,
    visit: Visit,
    *,
    form: FormState | None = None,
    schedule_form: FormState | None = None,
    notice: str = "",
    status: int | None = None,
) -> Response:
    org, session, now = visit.current_org, visit.ctx.session, visit.ctx.clock.now()
    rows = every(
        lambda page: reports.list_reports(session, visit.principal, org_id=org.id, page=page)
    )
    rows.reverse()  # newest first on the page
    schedule = reports.read_schedule(session, visit.principal, org_id=org.id)
    last_month = reports.previous_month(now).label
    context: dict[str, Any] = {
        "visit": visit,
        "org": org,
        "reports": [reports.report_listed(r) for r in rows],
        "titles": {name: spec.title for name, spec in fw.SPECS.items()},
        "frameworks": FRAMEWORK_CHOICES,
        "schedule": reports.schedule_out(schedule, now),
        "form": form or FormState({"period": last_month, "framework": "soc2"}),
        "schedule_form": schedule_form or FormState(),
        "can_generate": visit.can(Permission.GOVERNANCE_MANAGE.value),
        "notice": notice,
    }
    code = status or (form.status if form else schedule_form.status if schedule_form else 200)
    return render(request, "compliance.html", context, status=code, block="page")


@router.get("/orgs/{org}/compliance")
def compliance_page(request: Request, visit: AuditRead) -> Response:
    return _page(request, visit)


@router.get("/orgs/{org}/compliance/{report_id}.pdf")
def report_pdf(report_id: str, visit: AuditRead) -> Response:
    row = reports.read_report(
        visit.ctx.session, visit.principal, org_id=visit.current_org.id, report_id=report_id
    )
    return Response(
        report_render.report_pdf(reports.report_out(row)),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{row.id}.pdf"'},
    )


@router.get("/orgs/{org}/compliance/{report_id}.json")
def report_json(report_id: str, visit: AuditRead) -> Response:
    row = reports.read_report(
        visit.ctx.session, visit.principal, org_id=visit.current_org.id, report_id=report_id
    )
    body = json.dumps(reports.report_out(row), indent=2, ensure_ascii=False)
    return Response(
        body,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{row.id}.json"'},
    )


@router.post("/orgs/{org}/compliance", name="compliance_report.generated")
def generate(request: Request, visit: AuditRead) -> Response:
    ctx, org = visit.ctx, visit.current_org
    try:
        body = parse(ReportIn, visit.form)
        period = reports.period_of(month=body.period, since=None, until=None, now=ctx.clock.now())
        row = reports.generate(
            ctx, visit.principal, app_state(request).notary,
            org=org, framework=body.framework, period=period,
        )  # fmt: skip
    except FormRefused as refusal:
        return _page(request, visit, form=refusal.state)
    except Forbidden:
        raise
    except Problem as problem:
        ctx.session.rollback()
        return _page(request, visit, form=refused(problem, visit.form, {}).state)
    label = f"{fw.SPECS[body.framework].title}, {period.label}"
    report_id = row.id
    ctx.done(None, status=201)
    return changed(
        request,
        f"/orgs/{org.slug}/compliance",
        lambda: _page(
            request, visit, notice=f"Report {report_id} generated ({label}).", status=201
        ),
    )


@router.post("/orgs/{org}/compliance/schedule", name="compliance.schedule_updated")
def set_schedule(request: Request, visit: AuditRead) -> Response:
    ctx, org = visit.ctx, visit.current_org
    recipients = [
        r.strip() for r in str(visit.form.get("recipients") or "").replace(",", "\n").splitlines()
    ]
    extra = {
        "frameworks": list(visit.form.getlist("frameworks")),
        "recipients": [r for r in recipients if r],
    }
    try:
        body = parse(ScheduleIn, visit.form, extra=extra)
        reports.set_schedule(
            ctx, visit.principal, org_id=org.id,
            frameworks=list(body.frameworks), recipients=[str(r) for r in body.recipients],
        )  # fmt: skip
    except FormRefused as refusal:
        return _page(request, visit, schedule_form=refusal.state)
    except Forbidden:
        raise
    except Problem as problem:
        ctx.session.rollback()
        return _page(request, visit, schedule_form=refused(problem, visit.form, {}).state)
    ctx.done(None)
    return changed(
        request,
        f"/orgs/{org.slug}/compliance",
        lambda: _page(request, visit, notice="Schedule saved."),
    )
