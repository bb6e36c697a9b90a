"""Compliance reports of an org for a period: built from the audit trail (access changes,
privileged actions, the chain's verification and a signed checkpoint), the org's current access
(memberships, team roles, grants), governance's violations and approvals, the retention and
classification settings, and the register of data-subject requests.

A report is built once and kept as generated: its JSON is fixed by a SHA-256 digest, which the
deployment's audit key signs, so the JSON and the PDF drawn from it can be checked later. Which
sections a framework prints, and the controls they speak to, is data (`frameworks`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.audit.models import AuditEvent
from tenantry.audit.retention import RETENTION_SETTING, org_retention_days
from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.governance import events
from tenantry.governance.compliance import frameworks as fw
from tenantry.governance.compliance import repository
from tenantry.governance.compliance.models import ComplianceReport, ComplianceSchedule
from tenantry.kit.clock import as_utc
from tenantry.kit.context import Ctx
from tenantry.kit.errors import NotFound, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.kit.pagination import Page, PageRequest
from tenantry.tenancy.models import Organization

REPORT_READY: Final = "compliance.report_ready"
GENERATED_ACTION: Final = "compliance_report.generated"
MAX_PERIOD_DAYS: Final = 366
MONTH: Final = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")

# Changes of who may do what, by the audit action that records them (successful ones only: a
# refused attempt changed nothing, and is listed with the privileged actions when it was one).
ACCESS_CHANGES: Final = (
    "organization.created",
    "organization.onboarded",
    "invitation.accepted",
    "organization.member.updated",
    "organization.member.removed",
    "organization.ownership_transferred",
    "team.member.added",
    "team.member.updated",
    "team.member.removed",
    "role.created",
    "role.updated",
    "role.deleted",
    "grant.created",
    "grant.revoked",
    "grant.bulk_changed",
    "grant.expired",
    "grant_template.applied",
)
# Acts that change how the org is secured, who may sign in, or what leaves it; any operator act
# in the org's chain is privileged too.
PRIVILEGED_ACTIONS: Final = (
    "api_key.created",
    "api_key.revoked",
    "organization.updated",
    "organization.ownership_transferred",
    "organization.security_policy_updated",
    "organization.member.mfa_reset",
    "role.created",
    "role.updated",
    "role.deleted",
    "sso_connection.created",
    "sso_connection.updated",
    "sso_connection.deleted",
    "sso_connection.enabled",
    "sso_connection.disabled",
    "sso_connection.mapping_changed",
    "sso_policy.updated",
    "domain.added",
    "domain.verified",
    "domain.removed",
    "scim_token.created",
    "scim_token.revoked",
    "scim.mapping_changed",
    "rate_limits.updated",
    "plan.overridden",
    "subscription.updated",
    "subscription.canceled",
    "governance.config_updated",
    "policy.created",
    "policy.updated",
    "webhook.created",
    "webhook.updated",
    "webhook.deleted",
    "audit.checkpoint.created",
    "compliance.schedule_updated",
)


# ---- the period ----


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime  # exclusive
    label: str  # "2026-11", or "2026-11-03..2026-11-20" (both days included)

    @property
    def month(self) -> str | None:
        return self.label if MONTH.match(self.label) else None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def month_period(text: str) -> Period:
    found = MONTH.match(text)
    if found is None:
        raise Unprocessable("period is a month, YYYY-MM", code="invalid_period")
    year, month = int(found.group(1)), int(found.group(2))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return Period(start, end, text)


def previous_month(now: datetime) -> Period:
    """The last whole month before `now`: what a monthly schedule reports on."""
    first = as_utc(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    before = first - timedelta(days=1)
    return month_period(f"{before.year:04d}-{before.month:02d}")


def period_of(
    *, month: str | None, since: date | None, until: date | None, now: datetime
) -> Period:
    """A month, or a span of whole days (`until` included); never one that starts later than
    now, nor longer than a year."""
    if month is not None:
        if since is not None or until is not None:
            raise Unprocessable("Give period, or from and to, not both", code="invalid_period")
        period = month_period(month)
    else:
        if since is None or until is None:
            raise Unprocessable("Give period (YYYY-MM), or from and to", code="invalid_period")
        if until < since:
            raise Unprocessable("to is before from", code="invalid_period")
        period = Period(_midnight(since), _midnight(until + timedelta(days=1)), f"{since}..{until}")
    if period.end - period.start > timedelta(days=MAX_PERIOD_DAYS):
        raise Unprocessable(
            f"A report covers at most {MAX_PERIOD_DAYS} days", code="invalid_period"
        )
    if period.start > as_utc(now):
        raise Unprocessable("The period has not begun", code="period_in_future")
    return period


# ---- building ----


def _at(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat().replace("+00:00", "Z") if moment is not None else None


def _event(row: AuditEvent) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "at": _at(row.occurred_at),
        "action": row.action,
        "result": row.result,
        "actor_type": row.actor_type,
        "actor_id": row.actor_id,
        "team_id": row.team_id,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "summary": row.summary,
    }


def _access_review(session: Session, org_id: str, period: Period, now: datetime) -> dict[str, Any]:
    members = [
        {"user_id": u.id, "email": u.email, "role": m.role, "since": _at(m.created_at)}
        for m, u in repository.org_members(session, org_id=org_id)
    ]
    team_members = [
        {
            "team_id": t.id,
            "team": t.slug,
            "user_id": m.user_id,
            "role": m.role,
            "since": _at(m.created_at),
        }
        for m, t in repository.team_members(session, org_id=org_id)
    ]
    grants = [
        {
            "id": g.id,
            **g.describe(),
            "granted_by": g.granted_by,
            "created_at": _at(g.created_at),
        }
        for g in repository.live_grants(session, org_id=org_id, now=now)
    ]
    changes = [
        _event(e)
        for e in repository.events_in(
            session, org_id=org_id, since=period.start, until=period.end, actions=ACCESS_CHANGES
        )
        if e.result == "success"
    ]
    return {
        "as_of": _at(now),
        "members": members,
        "team_members": team_members,
        "grants": grants,
        "changes": changes,
    }


def _privileged_actions(session: Session, org_id: str, period: Period) -> dict[str, Any]:
    named = repository.events_in(
        session, org_id=org_id, since=period.start, until=period.end, actions=PRIVILEGED_ACTIONS
    )
    by_operators = repository.operator_events_in(
        session, org_id=org_id, since=period.start, until=period.end
    )
    rows = {e.seq: e for e in [*named, *by_operators]}
    return {"actions": [_event(rows[seq]) for seq in sorted(rows)]}


def _policy_enforcement(session: Session, org_id: str, period: Period) -> dict[str, Any]:
    violations = repository.violations_in(
        session, org_id=org_id, since=period.start, until=period.end
    )
    approvals = repository.approvals_in(
        session, org_id=org_id, since=period.start, until=period.end
    )
    return {
        "violations": [
            {
                "id": v.id,
                "at": _at(v.at),
                "policy_id": v.policy_id,
                "policy_version": v.policy_version,
                "kind": v.kind,
                "action": v.action,
                "model": v.model,
                "team_id": v.team_id,
                "user_id": v.user_id,
                "api_key_id": v.api_key_id,
                "approval_id": v.approval_id,
            }
            for v in violations
        ],
        "approvals": [
            {
                "id": a.id,
                "requested_at": _at(a.created_at),
                "policy_ids": a.policy_ids,
                "team_id": a.team_id,
                "user_id": a.user_id,
                "status": a.status,
                "decided_by": a.decided_by,
                "decided_at": _at(a.decided_at),
                "used_at": _at(a.used_at),
            }
            for a in approvals
        ],
    }


def _verdict(verdict: audit.Verdict) -> dict[str, Any]:
    fault = verdict.fault
    return {
        "verified": verdict.ok,
        "events_checked": verdict.events_checked,
        "first_seq": verdict.first_seq,
        "last_seq": verdict.last_seq,
        "head_seq": verdict.head_seq,
        "checkpoints_checked": verdict.checkpoints_checked,
        "fault": (
            {"seq": fault.seq, "kind": fault.kind, "detail": fault.detail} if fault else None
        ),
    }


def _retention(session: Session, org: Organization) -> dict[str, Any]:
    settings = org.settings or {}
    configs = repository.governance_configs(session, org_id=org.id)

    def kept(settings: dict[str, Any]) -> dict[str, Any]:
        return {k: settings[k] for k in ("data_classification", "compliance") if k in settings}

    return {
        "plan": org.plan,
        "audit_retention_days": org_retention_days(org.plan, settings),
        "audit_retention_source": "organization"
        if settings.get(RETENTION_SETTING) is not None
        else "plan",
        "organization": next((kept(c.settings) for c in configs if c.team_id == ""), {}),
        "teams": {c.team_id: kept(c.settings) for c in configs if c.team_id != ""},
    }


def _data_subject_requests(session: Session, org_id: str, period: Period) -> dict[str, Any]:
    rows = repository.data_subject_requests_in(
        session, org_id=org_id, since=period.start, until=period.end
    )

    def of(kind: str) -> list[dict[str, Any]]:
        return [
            {
                "id": r.id,
                "at": _at(r.at),
                "subject_id": r.subject_id,
                "requested_by": r.requested_by,
            }
            for r in rows
            if r.kind == kind
        ]

    return {"exports": of("export"), "erasures": of("erasure")}


def _count(key: str, section: dict[str, Any]) -> dict[str, int]:
    lists = {k: v for k, v in section.items() if isinstance(v, list)}
    return {k: len(v) for k, v in lists.items()} if key != fw.AUDIT_INTEGRITY else {}


def digest_of(body: dict[str, Any]) -> str:
    """SHA-256 of the body's canonical JSON (sorted keys, no spaces, UTF-8)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Generation:
    org: Organization
    framework: fw.Framework
    period: Period
    now: datetime
    generated_by: str | None
    trigger: str  # manual | schedule


def _build(
    session: Session,
    notary: audit.Notary,
    job: Generation,
    *,
    report_id: str,
    verdict: audit.Verdict,
    checkpoint: dict[str, Any] | None,
) -> dict[str, Any]:
    spec = fw.SPECS[job.framework]
    org, period, now = job.org, job.period, job.now
    data: dict[str, dict[str, Any]] = {}
    for key in spec.sections:
        if key == fw.ACCESS_REVIEW:
            data[key] = _access_review(session, org.id, period, now)
        elif key == fw.PRIVILEGED_ACTIONS:
            data[key] = _privileged_actions(session, org.id, period)
        elif key == fw.POLICY_ENFORCEMENT:
            data[key] = _policy_enforcement(session, org.id, period)
        elif key == fw.AUDIT_INTEGRITY:
            data[key] = {
                **_verdict(verdict),
                "checkpoint": checkpoint,
                "public_key": audit.public_key(notary),
            }
        elif key == fw.RETENTION:
            data[key] = _retention(session, org)
        elif key == fw.DATA_SUBJECT_REQUESTS:
            data[key] = _data_subject_requests(session, org.id, period)
    return {
        "id": report_id,
        "org": {"id": org.id, "slug": org.slug, "name": org.name},
        "framework": job.framework,
        "framework_title": spec.title,
        "period": {
            "label": period.label,
            "start": _at(period.start),
            "end": _at(period.end),
        },
        "generated_at": _at(now),
        "generated_by": job.generated_by,
        "trigger": job.trigger,
        "proves": list(spec.proves),
        "does_not_prove": list(spec.does_not_prove),
        "summary": {key: _count(key, section) for key, section in data.items()},
        "sections": [
            {
                "key": key,
                "title": fw.SECTION_TITLES[key],
                "controls": list(spec.controls[key]),
                **section,
            }
            for key, section in data.items()
        ],
    }


def build_and_store(
    session: Session,
    notary: audit.Notary,
    job: Generation,
    *,
    record: Any,
    schedule_key: str | None = None,
) -> ComplianceReport:
    """Verify the chain, write the generation's audit event (`record(report_id)`), sign the
    chain's head, then build, digest, sign and keep the report, and emit `compliance.report_ready`
    in this transaction."""
    report_id = new_id("crp")
    # Verified before anything of this transaction is written: the fast pass reads committed
    # rows, and the events it proves are the period's.
    verdict = audit.verify_chain(session, notary, chain_id=job.org.id)
    record(report_id)
    signed = audit.make_checkpoint(
        session, notary, chain_id=job.org.id, now=job.now, reason="compliance"
    )
    checkpoint = (
        {
            "id": signed.id,
            "seq": signed.seq,
            "hash": signed.hash,
            "created_at": _at(signed.created_at),
            "signature": signed.signature,
            "covers": "every event verified above and this report's generation event",
        }
        if signed is not None
        else None
    )
    body = _build(session, notary, job, report_id=report_id, verdict=verdict, checkpoint=checkpoint)
    digest = digest_of(body)
    row = ComplianceReport(
        id=report_id,
        org_id=job.org.id,
        framework=job.framework,
        period_start=job.period.start,
        period_end=job.period.end,
        generated_at=job.now,
        generated_by=job.generated_by,
        trigger=job.trigger,
        schedule_key=schedule_key,
        digest=digest,
        signature=notary.sign(bytes.fromhex(digest)),
        body=body,
    )
    session.add(row)
    session.flush()
    events.emit(
        session,
        events.GovernanceEvent(
            id=report_id,
            type=REPORT_READY,
            org_id=job.org.id,
            team_id=None,
            occurred_at=job.now,
            data={
                "report_id": report_id,
                "framework": job.framework,
                "period": job.period.label,
                "trigger": job.trigger,
                "digest": digest,
            },
        ),
    )
    return row


def generation_summary(job: Generation, report_id: str) -> dict[str, Any]:
    return {
        "report_id": report_id,
        "framework": job.framework,
        "period": job.period.label,
        "trigger": job.trigger,
    }


# ---- the service ----


def generate(
    ctx: Ctx,
    principal: Principal,
    notary: audit.Notary,
    *,
    org: Organization,
    framework: fw.Framework,
    period: Period,
) -> ComplianceReport:
    """A report now, on demand; its generation is one audit event."""
    authorize(ctx.session, principal, Permission.GOVERNANCE_MANAGE, org_id=org.id)
    # A report carries the audit trail: only those who may read it may make one.
    authorize(ctx.session, principal, Permission.AUDIT_READ, org_id=org.id)
    job = Generation(org, framework, period, ctx.clock.now(), principal.user_id, "manual")

    def record(report_id: str) -> None:
        audit.record(
            ctx, principal, org_id=org.id, target_type="compliance_report",
            target_id=report_id, summary=generation_summary(job, report_id),
        )  # fmt: skip

    return build_and_store(ctx.session, notary, job, record=record)


def list_reports(
    session: Session, principal: Principal, *, org_id: str, page: PageRequest
) -> Page[ComplianceReport]:
    authorize(session, principal, Permission.AUDIT_READ, org_id=org_id)
    return repository.reports_of_org(session, org_id=org_id, page=page)


def read_report(
    session: Session, principal: Principal, *, org_id: str, report_id: str
) -> ComplianceReport:
    authorize(session, principal, Permission.AUDIT_READ, org_id=org_id)
    found = repository.report_in_org(session, org_id=org_id, report_id=report_id)
    if found is None:
        raise NotFound("Compliance report not found")
    return found


def report_out(row: ComplianceReport) -> dict[str, Any]:
    """The report as generated, with its digest and signature."""
    return {
        **row.body,
        "digest": row.digest,
        "signature": row.signature,
        "signature_algorithm": "Ed25519",
    }


def report_listed(row: ComplianceReport) -> dict[str, Any]:
    return {
        "id": row.id,
        "framework": row.framework,
        "period": row.body["period"]["label"],
        "period_start": row.period_start,
        "period_end": row.period_end,
        "generated_at": row.generated_at,
        "generated_by": row.generated_by,
        "trigger": row.trigger,
        "digest": row.digest,
        "summary": row.body.get("summary", {}),
    }


# ---- the schedule ----


def schedule_out(row: ComplianceSchedule | None, now: datetime) -> dict[str, Any]:
    first = as_utc(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    next_run = (first + timedelta(days=32)).replace(day=1)
    if row is None:
        return {"frameworks": [], "recipients": [], "next_run": None, "updated_at": None}
    return {
        "frameworks": row.frameworks,
        "recipients": row.recipients,
        "next_run": next_run if row.frameworks else None,
        "updated_at": row.updated_at,
    }


def read_schedule(
    session: Session, principal: Principal, *, org_id: str
) -> ComplianceSchedule | None:
    authorize(session, principal, Permission.AUDIT_READ, org_id=org_id)
    return repository.schedule_of(session, org_id=org_id)


def set_schedule(
    ctx: Ctx,
    principal: Principal,
    *,
    org_id: str,
    frameworks: list[fw.Framework],
    recipients: list[str],
) -> ComplianceSchedule:
    """Monthly reports of these frameworks (none: no schedule), emailed to `recipients`."""
    authorize(ctx.session, principal, Permission.GOVERNANCE_MANAGE, org_id=org_id)
    authorize(ctx.session, principal, Permission.AUDIT_READ, org_id=org_id)
    now = ctx.clock.now()
    ordered: list[str] = [f for f in fw.FRAMEWORKS if f in set(frameworks)]
    emails = sorted({r.strip().lower() for r in recipients})
    row = repository.schedule_of(ctx.session, org_id=org_id)
    before = ",".join(row.frameworks) if row is not None else None
    if row is None:
        row = ComplianceSchedule(org_id=org_id, frameworks=ordered, recipients=emails)
        ctx.session.add(row)
    row.frameworks, row.recipients = ordered, emails
    row.updated_by, row.updated_at = principal.user_id, now
    audit.record(
        ctx, principal, org_id=org_id, target_type="organization", target_id=org_id,
        summary={"frameworks": ",".join(ordered), "recipients": len(emails),
                 "before": before},
    )  # fmt: skip
    return row
