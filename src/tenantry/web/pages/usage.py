"""Usage: a chart over time (by hour or day) of one meter, by member, provider or model, over a
date range; the totals of every meter over that range, as the API's summary gives them; the
same rows as CSV; and each quota with what is left of it.

The page reads the summary the API's usage routes read (`metering.summary.summarize`) with the
same authorization: `usage:read` on the org, or on the team when one is chosen, so a member who
may read only their team's usage sees that team's.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import Field
from starlette.datastructures import FormData
from starlette.responses import Response

from tenantry.authz.catalog import Permission
from tenantry.authz.service import authorize
from tenantry.identity import repository as identity_repository
from tenantry.kit.errors import NotFound, Problem, Unprocessable
from tenantry.kit.money import plain
from tenantry.kit.schemas import Input
from tenantry.metering import plans, quotas, summary
from tenantry.metering.meters import METERS
from tenantry.metering.summary import Granularity, GroupBy, Summary
from tenantry.tenancy import scope as tenancy_scope
from tenantry.tenancy import teams
from tenantry.tenancy.models import Team
from tenantry.web.forms import FormRefused, FormState, parse, query_form, refused
from tenantry.web.pages import every, page_router
from tenantry.web.templating import render
from tenantry.web.visit import Visit, org_page

router = page_router()
# Any member may open the page; what it shows is authorized below, as the API's routes do.
OrgMember = Annotated[Visit, Depends(org_page(None))]

GROUPS: list[tuple[str, str]] = [
    ("meter", "Meter only"),
    ("member", "Member"),
    ("provider", "Provider"),
    ("model", "Model"),
]
GRANULARITIES: list[tuple[str, str]] = [("day", "Day"), ("hour", "Hour")]
DEFAULT_DAYS = 30
NONE_GROUP = "(none)"


class UsageQuery(Input):
    """The page's query: the API's summary parameters, with days for the range (`until` is the
    last day shown, included)."""

    since: date | None = None
    until: date | None = None
    group_by: GroupBy = "meter"
    granularity: Granularity = "day"
    meter: str = Field(default="", max_length=64)
    team: str = Field(default="", max_length=40)


def _read_query(form: FormData) -> UsageQuery:
    blank = frozenset({"since", "until", "group_by", "granularity", "meter", "team"})
    return parse(UsageQuery, form, optional_blank=blank)


def _range(query: UsageQuery, today: date) -> tuple[date, date]:
    until = query.until or today
    since = query.since or until - timedelta(days=DEFAULT_DAYS - 1)
    return since, until


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _scope_team(visit: Visit, query: UsageQuery, choices: list[Team]) -> Team | None:
    """The team whose usage is shown (None: the org's), authorized as the API's routes are."""
    session, principal, org = visit.ctx.session, visit.principal, visit.current_org
    if query.team:
        team = tenancy_scope.resolve_team(session, principal, query.team)
        if team.org_id != org.id:
            raise NotFound("Team not found")
        authorize(session, principal, Permission.USAGE_READ, org_id=org.id, team_id=team.id)
        return team
    if visit.can(Permission.USAGE_READ):
        return None
    # Someone who may read only some teams' usage starts on the first of them; with none,
    # the org's answer: 403, as GET /orgs/{org}/usage.
    first = next((t for t in choices if visit.can(Permission.USAGE_READ, t.id)), None)
    if first is None:
        authorize(session, principal, Permission.USAGE_READ, org_id=org.id)
    return first


def _summarize(visit: Visit, query: UsageQuery, team: Team | None, today: date) -> Summary:
    since, until = _range(query, today)
    return summary.summarize(
        visit.ctx.session,
        org_id=visit.current_org.id,
        team_id=team.id if team else None,
        since=_midnight(since),
        until=_midnight(until + timedelta(days=1)),
        group_by=query.group_by,
        granularity=query.granularity,
        now=visit.ctx.clock.now(),
    )


def _buckets(found: Summary) -> list[datetime]:
    step = timedelta(hours=1) if found.granularity == "hour" else timedelta(days=1)
    out, at = [], found.since
    while at < found.until:
        out.append(at)
        at += step
    return out


def _group_names(visit: Visit, found: Summary) -> dict[str, str]:
    """What a row's group is called on the page: a member's email rather than their id."""
    groups = {r.group for r in found.rows if r.group}
    if found.group_by != "member" or not groups:
        return {}
    users = identity_repository.users_by_ids(visit.ctx.session, sorted(groups))
    return {user_id: user.email for user_id, user in users.items()}


def _label(group: str | None, names: dict[str, str]) -> str:
    if group is None:
        return ""
    return names.get(group, group) if group else NONE_GROUP


def chart_of(found: Summary, meter: str, names: dict[str, str]) -> dict[str, Any]:
    """The chart's data: one series per group (one series when grouped by meter only), a value
    for every bucket of the range (0 where nothing was used)."""
    buckets = _buckets(found)
    index = {b: i for i, b in enumerate(buckets)}
    series: dict[str, list[float]] = {}
    for row in found.rows:
        if row.meter != meter or row.bucket is None:
            continue
        name = _label(row.group, names) or meter
        values = series.setdefault(name, [0.0] * len(buckets))
        values[index[row.bucket]] = float(row.quantity)
    fmt = "%Y-%m-%d %H:00" if found.granularity == "hour" else "%Y-%m-%d"
    return {
        "labels": [b.strftime(fmt) for b in buckets],
        "unit": METERS[meter].unit if meter in METERS else "",
        "datasets": [{"label": k, "data": v} for k, v in sorted(series.items())],
    }


def _group_totals(found: Summary, meter: str, names: dict[str, str]) -> list[tuple[str, Decimal]]:
    out: dict[str, Decimal] = {}
    for row in found.rows:
        if row.meter == meter and row.group is not None:
            name = _label(row.group, names)
            out[name] = out.get(name, Decimal(0)) + row.quantity
    return sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))


def _page(request: Request, visit: Visit, form: FormData) -> Response:
    session, org = visit.ctx.session, visit.current_org
    now = visit.ctx.clock.now()
    today = now.date()
    choices = every(lambda page: teams.list_teams(session, visit.principal, org, page))
    state = FormState({k: v for k, v in form.items() if isinstance(v, str)})
    query = UsageQuery()
    found: Summary | None = None
    try:
        query = _read_query(form)
        team = _scope_team(visit, query, choices)
        found = _summarize(visit, query, team, today)
    except FormRefused as refusal:
        state = refusal.state
        team = _scope_team(visit, UsageQuery(team=str(form.get("team") or "")[:40]), choices)
    except Problem as problem:
        if problem.status in (403, 404):
            raise
        team = _scope_team(visit, query, choices)
        state = refused(problem, form, {"invalid_range": "since"}).state
    since, until = _range(query, today)
    totals = found.totals() if found else {}
    meters = sorted({r.meter for r in found.rows}) if found else []
    meter = query.meter if query.meter in meters else (meters[0] if meters else "")
    names = _group_names(visit, found) if found else {}
    statuses = quotas.quota_statuses(session, org.id, now=now, team_id=team.id if team else None)
    context = {
        "visit": visit,
        "org": org,
        "team": team,
        "form": state,
        "query": query,
        "since": since,
        "until": until,
        "summary": found,
        "totals": [(k, totals[k], METERS[k].unit if k in METERS else "") for k in sorted(totals)],
        "meters": [(k, k.replace("_", " ")) for k in meters],
        "meter": meter,
        "chart": chart_of(found, meter, names) if found and meter else None,
        "group_totals": _group_totals(found, meter, names) if found and meter else [],
        "scopes": (
            [("", f"The organization ({org.name})")] if visit.can(Permission.USAGE_READ) else []
        )
        + [(t.id, t.name) for t in choices if visit.can(Permission.USAGE_READ, t.id)],
        "groups": GROUPS,
        "granularities": GRANULARITIES,
        "plan": plans.effective_plan(session, org.id),
        "quotas": statuses,
        "csv_query": request.url.query,
    }
    return render(request, "usage.html", context, status=state.status if state.failed else 200)


@router.get("/orgs/{org}/usage")
def usage_page(request: Request, visit: OrgMember) -> Response:
    return _page(request, visit, query_form(request))


def csv_text(found: Summary, names: dict[str, str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    # `group` as the API gives it (a member's id); `group_name` as the page shows it.
    writer.writerow(["meter", "unit", "group", "group_name", "bucket", "quantity", "events"])
    for row in found.rows:
        writer.writerow(
            [
                row.meter,
                METERS[row.meter].unit if row.meter in METERS else "",
                row.group or "",
                _label(row.group, names),
                row.bucket.isoformat().replace("+00:00", "Z") if row.bucket else "",
                plain(row.quantity),
                row.events,
            ]
        )
    return out.getvalue()


@router.get("/orgs/{org}/usage.csv")
def usage_csv(request: Request, visit: OrgMember) -> Response:
    """The summary the page shows, every meter and bucket, as CSV."""
    session, org = visit.ctx.session, visit.current_org
    now = visit.ctx.clock.now()
    choices = every(lambda page: teams.list_teams(session, visit.principal, org, page))
    try:
        query = _read_query(query_form(request))
    except FormRefused as refusal:
        field, detail = next(iter(refusal.state.errors.items()))
        raise Unprocessable(f"{field}: {detail}", code="validation_error") from None
    team = _scope_team(visit, query, choices)
    found = _summarize(visit, query, team, now.date())
    names = _group_names(visit, found)
    since, until = _range(query, now.date())
    name = f"usage-{team.slug if team else org.slug}-{since}-{until}.csv"
    return Response(
        csv_text(found, names),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
