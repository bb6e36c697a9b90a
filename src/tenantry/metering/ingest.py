"""Ingestion, the HTTP batch endpoint: whose usage a batch is, which of its events are accepted,
duplicates or rejected (and why), and recording the accepted ones (`metering.recording`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy.orm import Session

from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.identity import repository as identity_repository
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Unprocessable
from tenantry.metering.meters import MAX_EVENT_QUANTITY, QUANTITY_DECIMALS, meter_of, to_micros
from tenantry.metering.recording import UsageEvent, record_events
from tenantry.tenancy import repository as tenancy_repository
from tenantry.tenancy import scope as tenancy_scope

MAX_EVENT_AGE = timedelta(days=35)
MAX_EVENT_LEAD = timedelta(minutes=5)


class IncomingEvent(NamedTuple):
    """An event as a caller sent it (ids not yet checked against the org)."""

    event_id: str
    meter: str
    quantity: Decimal
    timestamp: datetime
    team: str | None
    user: str | None
    api_key: str | None
    dimensions: Mapping[str, str]


class EventResult(NamedTuple):
    event_id: str
    status: str  # "accepted" | "duplicate" | "rejected"
    code: str | None = None
    detail: str | None = None


_PENDING = EventResult("", "accepted")


@dataclass(frozen=True)
class Ingested:
    org_id: str
    results: list[EventResult]
    over_limit: list[str]

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


def _ingest_org(
    session: Session, principal: Principal, org_ref: str | None, events: Sequence[IncomingEvent]
) -> str:
    """Whose usage this is: an API key's org; else the `org` named; else the org of the teams
    the events name (one org). Anything outside the principal's tenants answers 404."""
    if org_ref is not None:
        return tenancy_scope.resolve_org(session, principal, org_ref).id
    if principal.kind == "api_key" and principal.key_org_id is not None:
        return principal.key_org_id
    orgs = {
        tenancy_scope.resolve_team_ref(session, principal, t).org_id
        for t in {e.team for e in events}
        if t
    }
    if len(orgs) != 1:
        raise Unprocessable(
            "Say whose usage this is: send `org`, or name teams of one organization",
            code="org_required",
        )
    return orgs.pop()


def _accepted(
    event: IncomingEvent, *, oldest: datetime, latest: datetime, key_id: str | None
) -> UsageEvent | tuple[str, str]:
    """The event to record (its time in UTC, the calling key's id by default), or why not."""
    meter = meter_of(event.meter)
    if meter is None:
        return "unknown_meter", f"No meter is called {event.meter!r}"
    quantity = event.quantity
    if not quantity.is_finite() or abs(quantity) > MAX_EVENT_QUANTITY:
        return "invalid_quantity", f"quantity must be a number of at most {MAX_EVENT_QUANTITY}"
    if quantity < 0 and not meter.signed:
        return "invalid_quantity", f"{meter.key} quantities must not be negative"
    try:
        to_micros(quantity)
    except ValueError:
        return "invalid_quantity", f"quantity has more than {QUANTITY_DECIMALS} decimal places"
    at = event.timestamp  # with its zone: the schema takes RFC 3339 times only
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)  # once: comparing times of two zones costs more than this
    if at < oldest:
        return "too_old", "Events older than 35 days are not accepted"
    if at > latest:
        return "in_future", "Events more than 5 minutes ahead are not accepted"
    if meter.unique_by and not event.dimensions.get(meter.unique_by):
        return "missing_dimension", f"{meter.key} events need the {meter.unique_by} dimension"
    return UsageEvent(
        event.event_id, event.meter, quantity, at, event.team, event.user,
        event.api_key or key_id, event.dimensions,
    )  # fmt: skip


def _unknown_refs(
    session: Session, principal: Principal, org_id: str, events: Sequence[IncomingEvent]
) -> tuple[set[str], set[str], set[str]]:
    """The teams, users and API keys named that are not the org's (each looked up once)."""
    teams: set[str] = set()
    users: set[str] = set()
    keys: set[str] = set()
    for event in events:  # one pass: a batch has a thousand events and names a few ids
        if event.team:
            teams.add(event.team)
        if event.user:
            users.add(event.user)
        if event.api_key:
            keys.add(event.api_key)
    known_teams = tenancy_repository.teams_in_org(session, org_id=org_id, team_ids=teams)
    if principal.kind == "api_key" and principal.key_team_id is not None:
        known_teams &= {principal.key_team_id}  # a team-bound key speaks for its team only
    known_users = tenancy_repository.members_in_org(session, org_id=org_id, user_ids=users)
    known_keys = identity_repository.api_keys_in_org(session, org_id=org_id, key_ids=keys)
    return teams - known_teams, users - known_users, keys - known_keys


def ingest(
    ctx: Ctx, principal: Principal, *, org_ref: str | None, events: Sequence[IncomingEvent]
) -> Ingested:
    """Record a batch: each event is accepted, a duplicate (its id was recorded before), or
    rejected with a reason; the rest of the batch goes in regardless."""
    session, now = ctx.session, ctx.clock.now()
    org_id = _ingest_org(session, principal, org_ref, events)
    key_team = principal.key_team_id if principal.kind == "api_key" else None
    events = [e if e.team or key_team is None else e._replace(team=key_team) for e in events]
    bad_teams, bad_users, bad_keys = _unknown_refs(session, principal, org_id, events)
    # One check per team named (and one at org level for events naming none): a 403 refuses
    # the whole batch, as for any request the principal may not make.
    for team_id in sorted({e.team for e in events if e.team and e.team not in bad_teams}):
        authorize(session, principal, Permission.USAGE_WRITE, org_id=org_id, team_id=team_id)
    if any(not e.team for e in events):
        authorize(session, principal, Permission.USAGE_WRITE, org_id=org_id)
    results: list[EventResult] = []
    accepted: list[tuple[int, UsageEvent]] = []  # (index in the batch, the event)
    seen: set[str] = set()
    oldest, latest = now - MAX_EVENT_AGE, now + MAX_EVENT_LEAD
    key_id = principal.api_key_id if principal.kind == "api_key" else None
    any_bad = bool(bad_teams or bad_users or bad_keys)
    for i, event in enumerate(events):
        verdict = _accepted(event, oldest=oldest, latest=latest, key_id=key_id)
        if not isinstance(verdict, UsageEvent):
            results.append(EventResult(event.event_id, "rejected", *verdict))
        elif any_bad and (problem := _ref_problem(event, bad_teams, bad_users, bad_keys)):
            results.append(EventResult(event.event_id, "rejected", *problem))
        elif event.event_id in seen:
            results.append(EventResult(event.event_id, "duplicate"))
        else:
            seen.add(event.event_id)
            accepted.append((i, verdict))
            results.append(_PENDING)  # the insert tells whether it was recorded before
    recorded = record_events(session, org_id, [e for _, e in accepted], now=now)
    inserted = recorded.inserted
    for i, usage_event in accepted:
        event_id = usage_event.event_id
        results[i] = EventResult(event_id, "accepted" if event_id in inserted else "duplicate")
    return Ingested(org_id, results, recorded.over_limit)


def _ref_problem(
    event: IncomingEvent, bad_teams: set[str], bad_users: set[str], bad_keys: set[str]
) -> tuple[str, str] | None:
    # Another org's team answers exactly like a team that does not exist.
    if event.team in bad_teams:
        return "unknown_team", "No such team in this organization"
    if event.user in bad_users:
        return "unknown_user", "No such member in this organization"
    if event.api_key in bad_keys:
        return "unknown_api_key", "No such API key in this organization"
    return None
