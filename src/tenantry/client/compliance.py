"""SDK calls of compliance reports (mixed into `tenantry.client.api.Api`); see that module's
conventions: generate a report (`create_compliance_report`), list and read them, the PDF
(`compliance_report_pdf`), and the monthly schedule."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from tenantry.client._calls import API, Call, endpoint, fields, model, page_query, segment
from tenantry.client.billing import _content
from tenantry.client.models import Page, Result


class ComplianceReportListed(Result):
    id: str
    framework: str
    period: str
    period_start: datetime
    period_end: datetime
    generated_at: datetime
    generated_by: str | None = None
    trigger: str
    digest: str
    summary: dict[str, Any]


class ComplianceReport(Result):
    """The report as generated; `digest` is the SHA-256 of its canonical JSON without the
    digest and signature fields, `signature` the deployment's Ed25519 signature of it."""

    id: str
    org: dict[str, Any]
    framework: str
    framework_title: str
    period: dict[str, Any]
    generated_at: str
    generated_by: str | None = None
    trigger: str
    proves: list[str]
    does_not_prove: list[str]
    summary: dict[str, Any]
    sections: list[dict[str, Any]]
    digest: str
    signature: str
    signature_algorithm: str


class ComplianceSchedule(Result):
    frameworks: list[str]
    recipients: list[str]
    next_run: datetime | None = None
    updated_at: datetime | None = None


class ComplianceCalls:
    """Routes of compliance reports, described once for both clients."""

    @endpoint
    def create_compliance_report(
        self,
        org: str,
        *,
        framework: str,
        period: str | None = None,
        since: date | None = None,
        until: date | None = None,
    ) -> Call[ComplianceReport]:
        """Generate a report for a month (`period`, YYYY-MM) or the days `since`..`until`
        (both included): `soc2`, `gdpr` or `hipaa`."""
        body = fields(
            framework=framework, period=period,
            **{"from": since.isoformat() if since else None,
               "to": until.isoformat() if until else None},
        )  # fmt: skip
        return Call(
            "POST", f"{API}/orgs/{segment(org)}/compliance/reports", model(ComplianceReport),
            body=body,
        )  # fmt: skip

    @endpoint
    def list_compliance_reports(
        self, org: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[ComplianceReportListed]]:
        """The org's reports, oldest first."""
        return Call(
            "GET", f"{API}/orgs/{segment(org)}/compliance/reports",
            model(Page[ComplianceReportListed]), params=page_query(limit, cursor),
        )  # fmt: skip

    @endpoint
    def get_compliance_report(self, org: str, report_id: str) -> Call[ComplianceReport]:
        return Call(
            "GET", f"{API}/orgs/{segment(org)}/compliance/reports/{segment(report_id)}",
            model(ComplianceReport),
        )  # fmt: skip

    @endpoint
    def compliance_report_pdf(self, org: str, report_id: str) -> Call[bytes]:
        """The report as PDF bytes."""
        return Call(
            "GET", f"{API}/orgs/{segment(org)}/compliance/reports/{segment(report_id)}",
            _content, params={"format": "pdf"},
        )  # fmt: skip

    @endpoint
    def compliance_schedule(self, org: str) -> Call[ComplianceSchedule]:
        return Call(
            "GET", f"{API}/orgs/{segment(org)}/compliance/schedule", model(ComplianceSchedule)
        )

    @endpoint
    def set_compliance_schedule(
        self, org: str, *, frameworks: list[str], recipients: list[str] | None = None
    ) -> Call[ComplianceSchedule]:
        """Monthly reports of `frameworks` ([] stops them), emailed to `recipients`."""
        body = {"frameworks": frameworks, "recipients": recipients or []}
        return Call(
            "PUT", f"{API}/orgs/{segment(org)}/compliance/schedule", model(ComplianceSchedule),
            body=body,
        )  # fmt: skip
