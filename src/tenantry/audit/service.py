"""Writing and reading audit events. `record` adds the event to the caller's transaction, so an
action and its event commit or vanish together."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tenantry.access.catalog import Permission
from tenantry.access.principal import Principal
from tenantry.access.service import authorize
from tenantry.audit import repository
from tenantry.audit.models import AuditEvent
from tenantry.kit.http import Ctx, Origin
from tenantry.kit.ids import new_id
from tenantry.kit.pagination import Page, PageRequest

SUMMARY_VALUE_LIMIT = 200


def _trim(summary: dict[str, Any]) -> dict[str, Any]:
    """Keep summaries small: long values are cut so the trail never becomes a copy of the data."""
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, str) and len(value) > SUMMARY_VALUE_LIMIT:
            value = value[:SUMMARY_VALUE_LIMIT] + "…"
        out[key] = value
    return out


def build_event(
    *,
    origin: Origin,
    actor_type: str,
    actor_id: str | None,
    action: str,
    org_id: str | None,
    occurred_at: datetime,
    team_id: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    result: str = "success",
    summary: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent(
        id=new_id("evt"),
        org_id=org_id,
        team_id=team_id,
        actor_type=actor_type,
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        result=result,
        ip=origin.ip,
        user_agent=origin.user_agent,
        request_id=origin.request_id,
        occurred_at=occurred_at,
        summary=_trim(summary or {}),
    )


def record(
    ctx: Ctx,
    principal: Principal | None,
    *,
    org_id: str | None,
    target_type: str | None,
    target_id: str | None,
    team_id: str | None = None,
    summary: dict[str, Any] | None = None,
    action: str | None = None,
    actor: tuple[str, str | None] | None = None,
    result: str = "success",
) -> AuditEvent:
    """Add this request's audit event; the action defaults to the route's declared action."""
    name = action or ctx.origin.action
    if not name:
        raise RuntimeError("audit event without an action")
    if ctx.state.get("audited"):
        raise RuntimeError("a request writes exactly one audit event")
    if actor is None:
        actor = (principal.actor_type, principal.actor_id) if principal else ("anonymous", None)
    event = build_event(
        origin=ctx.origin,
        actor_type=actor[0],
        actor_id=actor[1],
        action=name,
        org_id=org_id,
        team_id=team_id,
        target_type=target_type,
        target_id=target_id,
        result=result,
        summary=summary,
        occurred_at=ctx.clock.now(),
    )
    ctx.session.add(event)
    ctx.state["audited"] = True
    return event


def list_events(
    session: Session,
    principal: Principal,
    *,
    org_id: str,
    filters: repository.EventFilters,
    page: PageRequest,
) -> Page[AuditEvent]:
    authorize(session, principal, Permission.AUDIT_READ, org_id=org_id)
    return repository.list_for_org(session, org_id=org_id, filters=filters, page=page)
