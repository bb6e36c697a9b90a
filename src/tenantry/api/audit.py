"""HTTP routes of the audit trail."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from tenantry.audit import export, live, service
from tenantry.audit.repository import EventFilters
from tenantry.audit.schemas import AuditEventOut, CheckpointOut, PublicKeyOut, VerdictOut
from tenantry.authz.catalog import Permission
from tenantry.http.auth import OrgScope, TeamScope, org_scope, team_scope
from tenantry.http.body import JsonBodyRoute
from tenantry.http.state import app_state
from tenantry.kit.clock import as_utc
from tenantry.kit.errors import BadRequest
from tenantry.kit.pagination import PageDep, PageOut
from tenantry.kit.schemas import Timestamp
from tenantry.kit.streaming import in_threads

router = APIRouter(prefix="/api/v1", route_class=JsonBodyRoute)
AuditReader = Annotated[OrgScope, Depends(org_scope(Permission.AUDIT_READ))]


def event_filters(
    actor: Annotated[str | None, Query(max_length=40)] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="Exact action, or a prefix ending in '.'")
    ] = None,
    target_type: Annotated[str | None, Query(max_length=32)] = None,
    target_id: Annotated[str | None, Query(max_length=40)] = None,
    team: Annotated[str | None, Query(max_length=40)] = None,
    result: Annotated[str | None, Query(max_length=16)] = None,
    since: Annotated[Timestamp | None, Query()] = None,
    until: Annotated[Timestamp | None, Query()] = None,
) -> EventFilters:
    return EventFilters(
        actor_id=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        team_id=team,
        result=result,
        since=as_utc(since) if since else None,
        until=as_utc(until) if until else None,
    )


FiltersDep = Annotated[EventFilters, Depends(event_filters)]


def _without_team(filters: Callable[..., EventFilters]) -> Callable[..., EventFilters]:
    """`filters` without its `team` query parameter: a team's routes take the team from their
    path, and the same filters otherwise (one definition, so the two cannot drift apart)."""

    def team_filters(**given: Any) -> EventFilters:
        return filters(**given, team=None)

    signature = inspect.signature(filters)
    kept = [p for p in signature.parameters.values() if p.name != "team"]
    team_filters.__signature__ = signature.replace(parameters=kept)  # type: ignore[attr-defined]
    return team_filters


TeamFiltersDep = Annotated[EventFilters, Depends(_without_team(event_filters))]


@router.get("/orgs/{org}/audit-events", response_model=PageOut[AuditEventOut], tags=["audit"])
def list_audit_events(
    scope: AuditReader, page: PageDep, filters: FiltersDep
) -> PageOut[AuditEventOut]:
    found = service.list_events(
        scope.ctx.session, scope.principal, org_id=scope.org.id, filters=filters, page=page
    )
    return PageOut(items=[AuditEventOut.of(e) for e in found.items], next_cursor=found.next_cursor)


def _release(scope: OrgScope | TeamScope) -> None:
    """Give the request's connection back before a streamed body starts: the body reads with
    sessions of its own and may outlive the request's dependencies by hours."""
    scope.ctx.session.close()


MAX_SEQ = 2**63 - 1  # the database's BIGINT: a larger value would fail mid-stream, not here
AfterSeq = Annotated[int | None, Query(ge=0, le=MAX_SEQ, description="Start after this seq")]
MaxEvents = Annotated[int | None, Query(ge=1, description="Close after this many")]
Follow = Annotated[bool, Query(description="Wait for new events (false: close when caught up)")]
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)]
STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Server-Sent Events", "content": {"text/event-stream": {}}}
}
EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The export, streamed; NDJSON and JSON verify offline",
        "content": {media: {} for media in export.MEDIA_TYPES.values()},
    }
}


@router.get(
    "/orgs/{org}/audit-events/export",
    response_class=StreamingResponse,
    tags=["audit"],
    responses=EXPORT_RESPONSES,
)
def export_audit_events(
    scope: AuditReader,
    request: Request,
    filters: FiltersDep,
    format: export.ExportFormat = "ndjson",
) -> StreamingResponse:
    """The org's audit trail (or the events matching the filters) as one file of any size."""
    return _export(scope, request, scope.org.id, scope.org.slug, filters, format)


def _export(
    scope: OrgScope | TeamScope,
    request: Request,
    chain_id: str,
    name: str,
    filters: EventFilters,
    format: export.ExportFormat,
) -> StreamingResponse:
    state = app_state(request)
    filename = export.filename(name, format, state.clock.now())
    _release(scope)
    body = export.chunks(
        state.db,
        state.notary,
        state.clock,
        export.ExportRequest(chain_id=chain_id, format=format, filters=filters),
    )
    return StreamingResponse(
        in_threads(body),
        media_type=export.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _resume_point(last_event_id: str | None, after_seq: int | None) -> int:
    # A reconnecting EventSource repeats the original URL and adds the header: the header is
    # the newer news.
    if last_event_id is not None:
        text = last_event_id.strip()
        if not (text.isascii() and text.isdigit() and int(text) <= MAX_SEQ):
            raise BadRequest(
                "Last-Event-ID must be the seq of an audit event", code="invalid_last_event_id"
            )
        return int(text)
    return after_seq or 0


@router.get(
    "/orgs/{org}/audit-events/stream",
    response_class=StreamingResponse,
    tags=["audit"],
    responses=STREAM_RESPONSES,
)
def stream_audit_events(
    scope: AuditReader,
    request: Request,
    after_seq: AfterSeq = None,
    max_events: MaxEvents = None,
    follow: Follow = True,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """The org's audit events as Server-Sent Events (`id: <seq>`, `event: audit`), oldest first,
    then live; resume with `Last-Event-ID` or `after_seq`."""
    start = _resume_point(last_event_id, after_seq)
    return _stream(scope, request, scope.org.id, EventFilters(), start, max_events, follow)


def _stream(
    scope: OrgScope | TeamScope,
    request: Request,
    chain_id: str,
    filters: EventFilters,
    after_seq: int,
    max_events: int | None,
    follow: bool,
) -> StreamingResponse:
    _release(scope)
    feed = live.Feed(
        db=app_state(request).db,
        chain_id=chain_id,
        after_seq=after_seq,
        filters=filters,
        max_events=max_events,
        follow=follow,
        # Read per request rather than bound at import, so a test can shorten the poll.
        poll_seconds=live.POLL_SECONDS,
        heartbeat_seconds=live.HEARTBEAT_SECONDS,
    )
    return StreamingResponse(
        live.frames(feed),
        media_type="text/event-stream",
        # Proxies must pass each frame on as it comes rather than buffer the response.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/orgs/{org}/audit-events/verify", response_model=VerdictOut, tags=["audit"])
def verify_audit_events(scope: AuditReader, request: Request) -> VerdictOut:
    """Recompute the org's chain: every hash, link and signed checkpoint, and the tail."""
    verdict = service.verify_chain(
        scope.ctx.session,
        app_state(request).notary,
        chain_id=scope.org.id,
        workers=scope.ctx.settings.audit_verify_workers,
    )
    return VerdictOut.of(verdict)


@router.get("/orgs/{org}/audit-checkpoints", response_model=list[CheckpointOut], tags=["audit"])
def list_checkpoints(scope: AuditReader) -> list[CheckpointOut]:
    rows = service.checkpoints(scope.ctx.session, chain_id=scope.org.id)
    return [CheckpointOut.model_validate(cp) for cp in rows]


@router.post(
    "/orgs/{org}/audit-checkpoints",
    name="audit.checkpoint.created",
    status_code=201,
    response_model=CheckpointOut,
    tags=["audit"],
)
def create_checkpoint(scope: AuditReader, request: Request) -> Response:
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
        app_state(request).notary,
        chain_id=scope.org.id,
        now=ctx.clock.now(),
        reason="manual",
    )
    assert cp is not None  # the event just recorded is in the chain
    return ctx.done(CheckpointOut.model_validate(cp), status=201)


@router.get("/audit/public-key", response_model=PublicKeyOut, tags=["audit"])
def audit_public_key(request: Request) -> PublicKeyOut:
    """The Ed25519 key that signs checkpoints, for verifying exports anywhere."""
    return PublicKeyOut(**service.public_key(app_state(request).notary))


# ---- a team's own events, for the team's admins and owners (docs/audit.md, "A team's events") ----

TeamAuditReader = Annotated[TeamScope, Depends(team_scope(Permission.AUDIT_READ))]


@router.get("/teams/{team}/audit-events", response_model=PageOut[AuditEventOut], tags=["audit"])
def list_team_audit_events(
    scope: TeamAuditReader, page: PageDep, filters: TeamFiltersDep
) -> PageOut[AuditEventOut]:
    """The events recorded in this team, newest first: what the org's list shows with
    `team=<this team>`, readable by whoever holds `audit:read` on the team."""
    found = service.list_team_events(
        scope.ctx.session,
        scope.principal,
        org_id=scope.team.org_id,
        team_id=scope.team.id,
        filters=filters,
        page=page,
    )
    return PageOut(items=[AuditEventOut.of(e) for e in found.items], next_cursor=found.next_cursor)


@router.get(
    "/teams/{team}/audit-events/export",
    response_class=StreamingResponse,
    tags=["audit"],
    responses=EXPORT_RESPONSES,
)
def export_team_audit_events(
    scope: TeamAuditReader,
    request: Request,
    filters: TeamFiltersDep,
    format: export.ExportFormat = "ndjson",
) -> StreamingResponse:
    """The team's events as one file: an export of the org's chain filtered to the team (its
    header says `filtered` and names the team), each event verifiable offline."""
    team = scope.team
    only_team = replace(filters, team_id=team.id)
    return _export(scope, request, team.org_id, f"team-{team.slug}", only_team, format)


@router.get(
    "/teams/{team}/audit-events/stream",
    response_class=StreamingResponse,
    tags=["audit"],
    responses=STREAM_RESPONSES,
)
def stream_team_audit_events(
    scope: TeamAuditReader,
    request: Request,
    after_seq: AfterSeq = None,
    max_events: MaxEvents = None,
    follow: Follow = True,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """The team's events as Server-Sent Events; `id` is the event's seq in the org's chain, so
    a resumed stream (`Last-Event-ID`) goes on after the last one it showed."""
    start = _resume_point(last_event_id, after_seq)
    only_team = EventFilters(team_id=scope.team.id)
    return _stream(scope, request, scope.team.org_id, only_team, start, max_events, follow)
