"""The audit trail: the org's events in a table filtered by actor, action, target, team, result
and time, a live view of new events (Server-Sent Events, shown as rows by htmx's SSE extension),
the chain's verification, and exports (CSV, NDJSON, JSON).

Every route needs `audit:read` on the org, as the API's audit routes do, and reads through the
same service: the list through `audit.service.list_events`, the live view through the API
stream's feed (`audit.live`), the verdict through `verify_chain` and the files through
`audit.export`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import Depends, Header, Request
from pydantic import Field
from starlette.responses import Response, StreamingResponse

from tenantry.api.audit import MAX_SEQ
from tenantry.audit import export, live, service
from tenantry.audit.models import AuditEvent
from tenantry.audit.repository import EventFilters, head_of
from tenantry.authz.catalog import Permission
from tenantry.http.state import app_state
from tenantry.identity import repository as identity_repository
from tenantry.kit.clock import as_utc
from tenantry.kit.errors import BadRequest, Unprocessable
from tenantry.kit.pagination import PageRequest
from tenantry.kit.schemas import Input
from tenantry.kit.streaming import in_threads
from tenantry.tenancy import memberships, teams
from tenantry.web.forms import FormRefused, FormState, parse, query_form
from tenantry.web.pages import every, page_router
from tenantry.web.templating import ENV, is_htmx, render
from tenantry.web.visit import Visit, org_page

router = page_router()
AuditRead = Annotated[Visit, Depends(org_page(Permission.AUDIT_READ))]
ROWS = 50
RESULTS = [("", "Any result"), ("success", "Success"), ("denied", "Denied")]
FORMATS: dict[str, str] = {"csv": "CSV", "ndjson": "NDJSON", "json": "JSON"}


class AuditQuery(Input):
    """The table's filters: the API's list parameters, with days for the time range (`until`
    is the last day shown, included)."""

    actor: str | None = Field(default=None, max_length=40)
    action: str | None = Field(default=None, max_length=64)
    target_type: str | None = Field(default=None, max_length=32)
    target_id: str | None = Field(default=None, max_length=40)
    team: str | None = Field(default=None, max_length=40)
    result: str | None = Field(default=None, max_length=16)
    since: date | None = None
    until: date | None = None
    cursor: str | None = Field(default=None, max_length=200)
    format: Literal["csv", "ndjson", "json"] = "csv"


_BLANK = frozenset(AuditQuery.model_fields)


def _query(request: Request) -> tuple[AuditQuery, FormState]:
    form = query_form(request)
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        return parse(AuditQuery, form, optional_blank=_BLANK), FormState(values)
    except FormRefused as refusal:
        return AuditQuery(), refusal.state


def _filters(query: AuditQuery) -> EventFilters:
    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=UTC)

    return EventFilters(
        actor_id=query.actor,
        action=query.action,
        target_type=query.target_type,
        target_id=query.target_id,
        team_id=query.team,
        result=query.result,
        since=midnight(query.since) if query.since else None,
        until=midnight(query.until + timedelta(days=1)) if query.until else None,
    )


def _filter_query(request: Request) -> str:
    """The page's filters as a query string, without the cursor (for links that keep them)."""
    kept = [
        (k, v) for k, v in request.query_params.multi_items() if v and k not in ("cursor", "format")
    ]
    return urlencode(kept)


# ---- one event as a row (the table and the live view share it) ----


class Names:
    """What the trail's ids are called on the page: people by email, teams by name."""

    def __init__(self, people: dict[str, str], team_names: dict[str, str]) -> None:
        self.people, self.team_names = people, team_names

    def actor(self, actor_type: str, actor_id: str | None) -> str:
        if actor_type == "user" and actor_id:
            return self.people.get(actor_id, actor_id)
        if actor_type == "api_key":
            return f"API key {actor_id}"
        return f"{actor_type} {actor_id}" if actor_id else actor_type

    def team(self, team_id: str | None) -> str:
        return self.team_names.get(team_id, team_id) if team_id else ""


def _row(names: Names, values: dict[str, Any]) -> dict[str, Any]:
    when = values["occurred_at"]
    moment = when if isinstance(when, datetime) else datetime.fromisoformat(str(when))
    target = values["target_type"] or ""
    if values["target_id"]:
        target = f"{target} {values['target_id']}".strip()
    return {
        "seq": values["seq"],
        "when": as_utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "actor": names.actor(values["actor_type"], values["actor_id"]),
        "action": values["action"],
        "target": target,
        "team": names.team(values["team_id"]),
        "result": values["result"],
    }


def _columns(event: AuditEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in _SHOWN}


_SHOWN = (
    *("seq", "occurred_at", "actor_type", "actor_id", "action"),
    *("target_type", "target_id", "team_id", "result"),
)
_ROW = ENV.get_template("audit_row.html")


def live_render(names: Names) -> Callable[[dict[str, Any]], bytes]:
    """An event of the stream as an SSE frame whose data is the table row (one line)."""

    def render_one(record: dict[str, Any]) -> bytes:
        html = _ROW.render(row=_row(names, record), live=True).replace("\n", "")
        return b"id: %d\nevent: audit\ndata: %s\n\n" % (record["seq"], html.encode())

    return render_one


def _names(visit: Visit) -> Names:
    session, org, principal = visit.ctx.session, visit.current_org, visit.principal
    rows = every(lambda page: memberships.list_org_members(session, principal, org, page))
    users = identity_repository.users_by_ids(session, [m.user_id for m in rows])
    every_team = every(lambda page: teams.list_teams(session, principal, org, page))
    return Names({u.id: u.email for u in users.values()}, {t.id: t.name for t in every_team})


# ---- the page ----


def _page(request: Request, visit: Visit, *, verdict: service.Verdict | None = None) -> Response:
    session, org = visit.ctx.session, visit.current_org
    query, state = _query(request)
    names = _names(visit)
    events: list[dict[str, Any]] = []
    next_cursor = None
    if not state.failed:
        try:
            found = service.list_events(
                session,
                visit.principal,
                org_id=org.id,
                filters=_filters(query),
                page=PageRequest(limit=ROWS, cursor=query.cursor),
            )
        except BadRequest as problem:  # a cursor that is not one
            state = FormState(state.values, {"_form": problem.detail}, problem.status)
        else:
            events = [_row(names, _columns(view.event)) for view in found.items]
            next_cursor = found.next_cursor
    head = head_of(session, chain_id=org.id)
    filters = _filter_query(request)
    context = {
        "visit": visit,
        "org": org,
        "form": state,
        "query": query,
        "events": events,
        "next_cursor": next_cursor,
        "filters": filters,
        "people": sorted(((k, v) for k, v in names.people.items()), key=lambda kv: kv[1]),
        "teams": sorted(names.team_names.items(), key=lambda kv: kv[1].lower()),
        "results": RESULTS,
        "formats": FORMATS,
        "head_seq": head.seq if head is not None else 0,
        "verdict": verdict,
    }
    status = state.status if state.failed else 200
    return render(
        request, "audit.html", context, status=status, block="verdict" if verdict else None
    )


@router.get("/orgs/{org}/audit")
def audit_page(request: Request, visit: AuditRead) -> Response:
    return _page(request, visit)


@router.get("/orgs/{org}/audit/verify")
def verify(request: Request, visit: AuditRead) -> Response:
    """The chain recomputed (every hash, link and signed checkpoint), as the API's verify."""
    verdict = service.verify_chain(
        visit.ctx.session,
        app_state(request).notary,
        chain_id=visit.current_org.id,
        workers=visit.ctx.settings.audit_verify_workers,
    )
    if is_htmx(request):  # the page asks for the verdict's part only, once it is shown
        context = {"visit": visit, "org": visit.current_org, "verdict": verdict}
        return render(request, "audit.html", context, block="verdict")
    return _page(request, visit, verdict=verdict)


def _refuse_bad_query(state: FormState) -> None:
    if state.failed:
        field, detail = next(iter(state.errors.items()))
        raise Unprocessable(f"{field}: {detail}", code="validation_error")


@router.get("/orgs/{org}/audit/live")
def live_view(
    request: Request,
    visit: AuditRead,
    after_seq: int = 0,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> Response:
    """The events written after `after_seq` (the head when the page was shown) that match the
    page's filters, as Server-Sent Events whose data is the table row; an EventSource that
    reconnects goes on after the last one it got (`Last-Event-ID`)."""
    query, state = _query(request)
    _refuse_bad_query(state)
    start = after_seq
    if last_event_id is not None:
        text = last_event_id.strip()
        if not (text.isascii() and text.isdigit() and int(text) <= MAX_SEQ):
            raise BadRequest(
                "Last-Event-ID must be the seq of an audit event", code="invalid_last_event_id"
            )
        start = int(text)
    if not 0 <= start <= MAX_SEQ:
        raise BadRequest("after_seq must be the seq of an audit event", code="invalid_after_seq")
    names = _names(visit)
    # The time range of the table does not apply to what happens from now on.
    filters = replace(_filters(query), since=None, until=None)
    org_id = visit.current_org.id
    # The body reads with sessions of its own and may run for hours: the request's goes back.
    visit.ctx.session.close()
    feed = live.Feed(
        db=app_state(request).db,
        chain_id=org_id,
        after_seq=start,
        filters=filters,
        poll_seconds=live.POLL_SECONDS,
        heartbeat_seconds=live.HEARTBEAT_SECONDS,
        render=live_render(names),
    )
    return StreamingResponse(
        live.frames(feed),
        media_type="text/event-stream",
        headers={"X-Accel-Buffering": "no"},
    )


@router.get("/orgs/{org}/audit/export")
def export_events(request: Request, visit: AuditRead) -> Response:
    """The events matching the page's filters as one file, streamed: CSV, or NDJSON and JSON,
    which verify offline as the API's exports do."""
    query, state = _query(request)
    _refuse_bad_query(state)
    org = visit.current_org
    fmt = query.format
    stored = app_state(request)
    filename = export.filename(org.slug, fmt, stored.clock.now())
    visit.ctx.session.close()
    body = export.chunks(
        stored.db,
        stored.notary,
        stored.clock,
        export.ExportRequest(chain_id=org.id, format=fmt, filters=_filters(query)),
    )
    return StreamingResponse(
        in_threads(body),
        media_type=export.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
