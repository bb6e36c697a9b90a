"""The worker's monthly compliance reports: for each org's schedule, the last whole month's
report of each framework it names, made once (a unique key per org, framework and month), its
`compliance.report_ready` event in the same transaction (to the webhooks' outbox), then an email
to the schedule's recipients once committed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from tenantry.audit import service as audit
from tenantry.governance.compliance import frameworks as fw
from tenantry.governance.compliance import repository
from tenantry.governance.compliance.reports import (
    GENERATED_ACTION,
    Generation,
    build_and_store,
    generation_summary,
    previous_month,
)
from tenantry.kit.db import Database
from tenantry.kit.mail import Mailer, MailNotSent
from tenantry.tenancy import scope as tenancy_scope

log = logging.getLogger("tenantry.compliance")


@dataclass
class ScheduleReport:
    generated: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "<org>:<framework>"
    emails_sent: int = 0


@dataclass(frozen=True)
class _Ready:
    report_id: str
    org_slug: str
    framework: str  # its title
    period: str
    digest: str
    recipients: list[str]


def run_schedules(
    db: Database, notary: audit.Notary, *, now: datetime, mailer: Mailer | None
) -> ScheduleReport:
    """Make every scheduled report due at `now` (the previous month's) that is not made yet."""
    report = ScheduleReport()
    period = previous_month(now)
    with db.session(write=False) as session:
        due = [
            (s.org_id, framework, list(s.recipients))
            for s in repository.unscoped_schedules(session)
            for framework in s.frameworks
        ]
    for org_id, framework, recipients in due:
        try:
            ready = _make_one(db, notary, org_id, framework, recipients, period.label, now)
        except Exception:
            log.exception("could not make the %s report of org %s", framework, org_id)
            report.failed.append(f"{org_id}:{framework}")
            continue
        if ready is not None:
            report.generated.append(ready.report_id)
            report.emails_sent += _email(mailer, ready)
    return report


def _make_one(
    db: Database,
    notary: audit.Notary,
    org_id: str,
    framework: str,
    recipients: list[str],
    month: str,
    now: datetime,
) -> _Ready | None:
    named = fw.framework_named(framework)
    if named is None:  # a framework this version no longer knows
        return None
    key = f"{framework}:{month}"
    with db.session(write=True) as session:
        if repository.scheduled_report(session, org_id=org_id, schedule_key=key) is not None:
            return None
        org = tenancy_scope.orgs_for_maintenance(session, [org_id]).get(org_id)
        if org is None:
            return None
        job = Generation(org, named, previous_month(now), now, None, "schedule")

        def record(report_id: str) -> None:
            audit.append(
                session, now=now, org_id=org_id, actor_type="system", actor_id=None,
                action=GENERATED_ACTION, result="success", subject_id=None,
                personal=audit.Personal(), target_type="compliance_report",
                target_id=report_id, summary=generation_summary(job, report_id),
            )  # fmt: skip

        row = build_and_store(session, notary, job, record=record, schedule_key=key)
        ready = _Ready(row.id, org.slug, fw.SPECS[named].title, month, row.digest, recipients)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # another worker made this month's report first
            return None
    return ready


def _email(mailer: Mailer | None, ready: _Ready) -> int:
    """Without SMTP, the webhook event and the dashboard are the delivery."""
    if mailer is None:
        return 0
    text = (
        f"The {ready.framework} compliance report of {ready.org_slug} for "
        f"{ready.period} is ready.\n\n"
        f"Report: {ready.report_id}\nSHA-256: {ready.digest}\n\n"
        f"Download it: tenantry compliance show {ready.org_slug} {ready.report_id} "
        "-o report.pdf, or from the dashboard's Compliance reports page.\n"
    )
    sent = 0
    for to in ready.recipients:
        try:
            mailer.send(to=to, subject=f"Compliance report {ready.period} is ready", text=text)
            sent += 1
        except MailNotSent:
            log.warning("could not email the compliance report %s to %s", ready.report_id, to)
    return sent
