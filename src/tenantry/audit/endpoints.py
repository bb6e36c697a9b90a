"""HTTP routes of the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from tenantry.access.catalog import Permission
from tenantry.access.dependencies import OrgScope, org_scope
from tenantry.audit import service
from tenantry.audit.repository import EventFilters
from tenantry.audit.schemas import AuditEventOut
from tenantry.kit.clock import as_utc
from tenantry.kit.pagination import PageDep, PageOut

router = APIRouter(prefix="/api/v1")


@router.get("/orgs/{org}/audit-events", response_model=PageOut[AuditEventOut], tags=["audit"])
def list_audit_events(
    scope: Annotated[OrgScope, Depends(org_scope(Permission.AUDIT_READ))],
    page: PageDep,
    actor: Annotated[str | None, Query(max_length=40)] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="Exact action, or a prefix ending in '.'")
    ] = None,
    target_type: Annotated[str | None, Query(max_length=32)] = None,
    target_id: Annotated[str | None, Query(max_length=40)] = None,
    team: Annotated[str | None, Query(max_length=40)] = None,
    result: Annotated[str | None, Query(max_length=16)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> PageOut[AuditEventOut]:
    filters = EventFilters(
        actor_id=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        team_id=team,
        result=result,
        since=as_utc(since) if since else None,
        until=as_utc(until) if until else None,
    )
    found = service.list_events(
        scope.ctx.session, scope.principal, org_id=scope.org.id, filters=filters, page=page
    )
    return PageOut(
        items=[AuditEventOut.model_validate(e) for e in found.items], next_cursor=found.next_cursor
    )
