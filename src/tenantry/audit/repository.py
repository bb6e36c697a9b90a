"""Queries of the audit trail, always for one org."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tenantry.audit.models import AuditEvent
from tenantry.kit.pagination import Page, PageRequest, paginate


@dataclass(frozen=True)
class EventFilters:
    actor_id: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    team_id: str | None = None
    result: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_for_org(
    session: Session, *, org_id: str, filters: EventFilters, page: PageRequest
) -> Page[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.org_id == org_id)
    if filters.actor_id:
        query = query.where(AuditEvent.actor_id == filters.actor_id)
    if filters.action:
        # A trailing dot asks for a family (`team.` → team.created, team.member.added, …).
        if filters.action.endswith("."):
            query = query.where(AuditEvent.action.startswith(filters.action, autoescape=True))
        else:
            query = query.where(AuditEvent.action == filters.action)
    if filters.target_type:
        query = query.where(AuditEvent.target_type == filters.target_type)
    if filters.target_id:
        query = query.where(AuditEvent.target_id == filters.target_id)
    if filters.team_id:
        query = query.where(AuditEvent.team_id == filters.team_id)
    if filters.result:
        query = query.where(AuditEvent.result == filters.result)
    if filters.since:
        query = query.where(AuditEvent.occurred_at >= filters.since)
    if filters.until:
        query = query.where(AuditEvent.occurred_at < filters.until)
    return paginate(session, query, AuditEvent.id, page)


def delete_for_org(session: Session, *, org_id: str) -> None:
    session.execute(delete(AuditEvent).where(AuditEvent.org_id == org_id))
