"""HTTP routes of compliance reports: generate one (one audit event each), list them, read one
as JSON or PDF, and the org's monthly schedule."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from tenantry.authz.catalog import Permission
from tenantry.governance.compliance import render, reports
from tenantry.governance.compliance.models import ComplianceReport
from tenantry.governance.compliance.schemas import (
    ReportIn,
    ReportListed,
    ReportOut,
    ScheduleIn,
    ScheduleOut,
)
from tenantry.http.auth import OrgScope, org_scope
from tenantry.http.body import JsonBodyRoute
from tenantry.http.state import app_state
from tenantry.kit.errors import Unprocessable
from tenantry.kit.pagination import PageDep, PageOut

router = APIRouter(prefix="/api/v1", route_class=JsonBodyRoute)

Reader = Annotated[OrgScope, Depends(org_scope(Permission.AUDIT_READ))]
Manager = Annotated[OrgScope, Depends(org_scope(Permission.GOVERNANCE_MANAGE))]
PDF = "application/pdf"
REPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report as JSON, or as PDF (`{id}.pdf`, `?format=pdf` or "
        "`Accept: application/pdf`)",
        "content": {"application/json": {}, PDF: {}},
    }
}


@router.post(
    "/orgs/{org}/compliance/reports",
    name="compliance_report.generated",
    status_code=201,
    response_model=ReportOut,
    tags=["compliance"],
)
def generate_report(body: ReportIn, scope: Manager, request: Request) -> Response:
    """Generate and keep a report of the org for a month (`period`: YYYY-MM) or a span of days
    (`from`, `to`, both included): SOC 2, GDPR or HIPAA."""
    ctx = scope.ctx
    period = reports.period_of(
        month=body.period, since=body.since, until=body.until, now=ctx.clock.now()
    )
    row = reports.generate(
        ctx, scope.principal, app_state(request).notary,
        org=scope.org, framework=body.framework, period=period,
    )  # fmt: skip
    return ctx.done(ReportOut.model_validate(reports.report_out(row)), status=201)


@router.get(
    "/orgs/{org}/compliance/reports", response_model=PageOut[ReportListed], tags=["compliance"]
)
def list_reports(scope: Reader, page: PageDep) -> PageOut[ReportListed]:
    """The org's reports, oldest first."""
    found = reports.list_reports(scope.ctx.session, scope.principal, org_id=scope.org.id, page=page)
    return PageOut(
        items=[ReportListed.model_validate(reports.report_listed(r)) for r in found.items],
        next_cursor=found.next_cursor,
    )


def _pdf(row: ComplianceReport) -> Response:
    period = row.body["period"]["label"].replace("..", "_")
    name = f"compliance-{row.framework}-{period}-{row.id}.pdf"
    return Response(
        render.report_pdf(reports.report_out(row)),
        media_type=PDF,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/orgs/{org}/compliance/reports/{report_id}",
    response_model=ReportOut,
    responses=REPORT_RESPONSES,
    tags=["compliance"],
)
def show_report(
    report_id: str,
    scope: Reader,
    format: Annotated[str | None, Query(max_length=8, description="`json` or `pdf`")] = None,
    accept: Annotated[str | None, Header(max_length=1000)] = None,
) -> Any:
    """The report as generated (JSON), or as PDF (`crp_….pdf`, `?format=pdf` or
    `Accept: application/pdf`): its sections, the chain's verification and signed checkpoint,
    what it proves and does not, its digest and signature."""
    if format not in (None, "json", "pdf"):
        raise Unprocessable("format is `json` or `pdf`", code="invalid_format")
    # One route for both spellings: a second `{report_id}.pdf` route would be shadowed by this.
    if report_id.endswith(".pdf"):
        report_id, format = report_id.removesuffix(".pdf"), format or "pdf"
    row = reports.read_report(
        scope.ctx.session, scope.principal, org_id=scope.org.id, report_id=report_id
    )
    wants_pdf = format == "pdf" or (format is None and PDF in (accept or ""))
    return _pdf(row) if wants_pdf else reports.report_out(row)


@router.get("/orgs/{org}/compliance/schedule", response_model=ScheduleOut, tags=["compliance"])
def show_schedule(scope: Reader) -> dict[str, Any]:
    """Which frameworks' reports the worker makes each month (of the month before), and who is
    emailed."""
    row = reports.read_schedule(scope.ctx.session, scope.principal, org_id=scope.org.id)
    return reports.schedule_out(row, scope.ctx.clock.now())


@router.put(
    "/orgs/{org}/compliance/schedule",
    name="compliance.schedule_updated",
    response_model=ScheduleOut,
    tags=["compliance"],
)
def set_schedule(body: ScheduleIn, scope: Manager) -> Response:
    """Set the monthly schedule: on the first pass of each month the worker makes the last
    month's report of each framework, sends `compliance.report_ready` to the org's webhooks
    and emails the recipients."""
    ctx = scope.ctx
    row = reports.set_schedule(
        ctx, scope.principal, org_id=scope.org.id,
        frameworks=list(body.frameworks), recipients=[str(r) for r in body.recipients],
    )  # fmt: skip
    return ctx.done(ScheduleOut.model_validate(reports.schedule_out(row, ctx.clock.now())))
