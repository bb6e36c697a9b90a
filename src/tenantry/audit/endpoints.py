"""HTTP routes of the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from tenantry.access.catalog import Permission
from tenantry.access.dependencies import OrgScope, org_scope
from tenantry.audit import service
from tenantry.audit.repository import EventFilters
from tenantry.audit.schemas import AuditEventOut, CheckpointOut, PublicKeyOut, VerdictOut
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
    return PageOut(items=[AuditEventOut.of(e) for e in found.items], next_cursor=found.next_cursor)


@router.get("/orgs/{org}/audit-events/verify", response_model=VerdictOut, tags=["audit"])
def verify_audit_events(
    scope: Annotated[OrgScope, Depends(org_scope(Permission.AUDIT_READ))], request: Request
) -> VerdictOut:
    """Recompute the org's chain: every hash, link and signed checkpoint, and the tail."""
    verdict = service.verify_chain(
        scope.ctx.session, request.app.state.notary, chain_id=scope.org.id
    )
    return VerdictOut.of(verdict)


@router.get("/orgs/{org}/audit-checkpoints", response_model=list[CheckpointOut], tags=["audit"])
def list_checkpoints(
    scope: Annotated[OrgScope, Depends(org_scope(Permission.AUDIT_READ))],
) -> list[CheckpointOut]:
    rows = service.checkpoints(scope.ctx.session, chain_id=scope.org.id)
    return [CheckpointOut.model_validate(cp) for cp in rows]


@router.post(
    "/orgs/{org}/audit-checkpoints",
    name="audit.checkpoint.created",
    status_code=201,
    response_model=CheckpointOut,
    tags=["audit"],
)
def create_checkpoint(
    scope: Annotated[OrgScope, Depends(org_scope(Permission.AUDIT_READ))], request: Request
) -> Response:
    """Sign the chain's head now (the worker also does this periodically and at each purge).
    The checkpoint covers the event that records its creation."""
    ctx = scope.ctx
    service.record(
        ctx,
        scope.principal,
        org_id=scope.org.id,
        target_type="organization",
        target_id=scope.org.id,
    )
    cp = service.make_checkpoint(
        ctx.session,
        request.app.state.notary,
        chain_id=scope.org.id,
        now=ctx.clock.now(),
        reason="manual",
    )
    assert cp is not None  # the event just recorded is in the chain
    return ctx.done(CheckpointOut.model_validate(cp), status=201)


@router.get("/audit/public-key", response_model=PublicKeyOut, tags=["audit"])
def audit_public_key(request: Request) -> PublicKeyOut:
    """The Ed25519 key that signs checkpoints, for verifying exports anywhere."""
    return PublicKeyOut(**service.public_key(request.app.state.notary))
