"""Every query of compliance reports, tenant-scoped: the reports and schedules, and the reads
of other domains' rows a report is built from (their tables, never their services)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tenantry.access.models import Grant
from tenantry.audit.models import AuditEvent
from tenantry.governance.compliance.models import ComplianceReport, ComplianceSchedule
from tenantry.governance.models import ApprovalRequest, GovernanceConfig, Violation
from tenantry.identity.models import User
from tenantry.kit.pagination import Page, PageRequest, paginate
from tenantry.privacy.models import DataSubjectRequest
from tenantry.tenancy.models import OrgMembership, Team, TeamMembership

# ---- reports and schedules ----


def report_in_org(session: Session, *, org_id: str, report_id: str) -> ComplianceReport | None:
    found = session.get(ComplianceReport, report_id)
    return found if found is not None and found.org_id == org_id else None


def reports_of_org(session: Session, *, org_id: str, page: PageRequest) -> Page[ComplianceReport]:
    """Oldest first: ids are time-sortable, so the id alone orders them."""
    query = select(ComplianceReport).where(ComplianceReport.org_id == org_id)
    return paginate(session, query, ComplianceReport.id, page)


def scheduled_report(
    session: Session, *, org_id: str, schedule_key: str
) -> ComplianceReport | None:
    query = select(ComplianceReport).where(
        ComplianceReport.org_id == org_id, ComplianceReport.schedule_key == schedule_key
    )
    return session.scalars(query).first()


def schedule_of(session: Session, *, org_id: str) -> ComplianceSchedule | None:
    return session.get(ComplianceSchedule, org_id)


def unscoped_schedules(session: Session) -> list[ComplianceSchedule]:
    """Every org's schedule: the worker makes the month's reports of them all."""
    query = select(ComplianceSchedule).order_by(ComplianceSchedule.org_id)
    return list(session.scalars(query))


# ---- what a report is built from ----


def events_in(
    session: Session, *, org_id: str, since: datetime, until: datetime, actions: Sequence[str]
) -> list[AuditEvent]:
    """The org chain's events of [since, until) with one of `actions`, in chain order."""
    t = AuditEvent
    query = select(t).where(
        t.chain_id == org_id,
        t.occurred_at >= since,
        t.occurred_at < until,
        t.action.in_(list(actions)),
    )
    return list(session.scalars(query.order_by(t.seq)))


def operator_events_in(
    session: Session, *, org_id: str, since: datetime, until: datetime
) -> list[AuditEvent]:
    """What the deployment's operators did in the org's chain in [since, until)."""
    t = AuditEvent
    query = select(t).where(
        t.chain_id == org_id,
        t.occurred_at >= since,
        t.occurred_at < until,
        t.actor_type == "operator",
    )
    return list(session.scalars(query.order_by(t.seq)))


def org_members(session: Session, *, org_id: str) -> list[tuple[OrgMembership, User]]:
    query = (
        select(OrgMembership, User)
        .join(User, User.id == OrgMembership.user_id)
        .where(OrgMembership.org_id == org_id)
        .order_by(OrgMembership.created_at, OrgMembership.id)
    )
    return [(m, u) for m, u in session.execute(query)]


def team_members(session: Session, *, org_id: str) -> list[tuple[TeamMembership, Team]]:
    query = (
        select(TeamMembership, Team)
        .join(Team, Team.id == TeamMembership.team_id)
        .where(TeamMembership.org_id == org_id)
        .order_by(Team.slug, TeamMembership.created_at, TeamMembership.id)
    )
    return [(m, t) for m, t in session.execute(query)]


def live_grants(session: Session, *, org_id: str, now: datetime) -> list[Grant]:
    query = select(Grant).where(
        Grant.org_id == org_id, (Grant.expires_at.is_(None)) | (Grant.expires_at > now)
    )
    return list(session.scalars(query.order_by(Grant.created_at, Grant.id)))


def violations_in(
    session: Session, *, org_id: str, since: datetime, until: datetime
) -> list[Violation]:
    t = Violation
    query = select(t).where(t.org_id == org_id, t.at >= since, t.at < until)
    return list(session.scalars(query.order_by(t.at, t.id)))


def approvals_in(
    session: Session, *, org_id: str, since: datetime, until: datetime
) -> list[ApprovalRequest]:
    """Approval requests made in [since, until), with whatever became of them."""
    t = ApprovalRequest
    query = select(t).where(t.org_id == org_id, t.created_at >= since, t.created_at < until)
    return list(session.scalars(query.order_by(t.created_at, t.id)))


def data_subject_requests_in(
    session: Session, *, org_id: str, since: datetime, until: datetime
) -> list[DataSubjectRequest]:
    t = DataSubjectRequest
    query = select(t).where(t.org_id == org_id, t.at >= since, t.at < until)
    return list(session.scalars(query.order_by(t.at, t.id)))


def governance_configs(session: Session, *, org_id: str) -> list[GovernanceConfig]:
    """The org's configuration (team_id "") and its teams', org first."""
    query = select(GovernanceConfig).where(GovernanceConfig.org_id == org_id)
    return list(session.scalars(query.order_by(GovernanceConfig.team_id)))
