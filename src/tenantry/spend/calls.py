"""LLM calls as usage: one record per call (provider, model, tokens, cost, latency, outcome,
member, key, team, tags), sent one at a time or in batches, each replayable by its id.

A batch is recorded in one transaction: the calls not seen before are inserted, each is priced
from the price table when the caller sent no cost (or flagged `unpriced`, never $0), and their
usage goes through metering's one write path (`llm_input_tokens`, `llm_output_tokens`,
`llm_cost_usd` events with the call's provider, model and tags), so meters, quotas and budgets
count them as any other usage. The hourly rollups of spend (`llm_call_rollups`, and the latency
histogram) are written by the usage listener below, after metering's rows and before the budget
counters, the order every path keeps, so that no two writers can deadlock; usage recorded on
the LLM meters without a call (a settle, a usage event) is rolled up there too.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.identity import repository as identity_repository
from tenantry.kit.context import Ctx
from tenantry.kit.errors import NotFound, Unprocessable
from tenantry.kit.money import plain
from tenantry.metering import admission
from tenantry.metering.models import ReservationStatus
from tenantry.metering.periods import hour_of
from tenantry.metering.recording import UsageEvent, on_usage_recorded, record_events
from tenantry.spend import alerts, repository
from tenantry.spend.budgets import COST_METER, LLM_METERS, count_spend
from tenantry.spend.models import CostSource
from tenantry.spend.pricing import PriceBook, provider_name
from tenantry.tenancy import repository as tenancy_repository
from tenantry.tenancy import scope as tenancy

MAX_CALL_AGE = timedelta(days=35)
MAX_CALL_LEAD = timedelta(minutes=5)
CALL_SOURCE = "llm_call"  # the `source` dimension of a call's usage events
# Upper bounds (ms) of the latency histogram's buckets, about 1.5x apart; the last is open.
BUCKETS_MS: tuple[int, ...] = (
    5, 10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1_000, 1_500, 2_000, 3_000, 4_000,
    5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 45_000, 60_000, 90_000, 120_000, 180_000,
    300_000,
)  # fmt: skip
_PENDING_ROLLUPS = "tenantry.spend.pending_rollups"


def latency_bucket(latency_ms: int) -> int:
    """The bucket of a latency: the first whose upper bound is at least it."""
    return bisect_left(BUCKETS_MS, latency_ms)


class IncomingCall(NamedTuple):
    """A call as a caller sent it (ids not yet checked against the org)."""

    id: str
    team: str | None
    user: str | None
    api_key: str | None
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost: Decimal | None
    latency_ms: int | None
    status: str
    error_kind: str | None
    timestamp: datetime | None
    tags: Mapping[str, str]
    reservation_id: str | None
    data_classification: str | None = None


class CallResult(NamedTuple):
    id: str
    status: str  # "accepted" | "duplicate" | "rejected"
    code: str | None = None
    detail: str | None = None
    cost: Decimal | None = None
    cost_source: str | None = None


@dataclass
class Recorded:
    org_id: str
    results: list[CallResult] = field(default_factory=list)


def _org_of(
    session: Session, principal: Principal, calls: Sequence[IncomingCall]
) -> tuple[str, dict[str, str | None]]:
    """The org of the batch and each named team's id (None: not the principal's to name).
    A key bound to a team reports for it by default."""
    key_team = principal.key_team_id if principal.kind == "api_key" else None
    teams: dict[str, str | None] = {}
    orgs: set[str] = set()
    for ref in sorted({c.team or key_team or "" for c in calls} - {""}):
        try:
            found = tenancy.resolve_team_ref(session, principal, ref)
        except NotFound:
            teams[ref] = None
            continue
        teams[ref] = found.id
        orgs.add(found.org_id)
    if len(orgs) > 1:
        raise Unprocessable("The calls of a batch must be of one organization", code="mixed_orgs")
    if not orgs:
        if all(not (c.team or key_team) for c in calls):
            raise Unprocessable("Name the team each call was made for", code="team_required")
        raise NotFound("Team not found")
    return orgs.pop(), teams


def record_calls(ctx: Ctx, principal: Principal, calls: Sequence[IncomingCall]) -> Recorded:
    session, now = ctx.session, ctx.clock.now()
    org_id, teams = _org_of(session, principal, calls)
    for named in sorted({t for t in teams.values() if t}):
        authorize(session, principal, Permission.USAGE_WRITE, org_id=org_id, team_id=named)
    key_team = principal.key_team_id if principal.kind == "api_key" else None
    users = {c.user for c in calls if c.user}
    keys = {c.api_key for c in calls if c.api_key}
    known_users = tenancy_repository.members_in_org(session, org_id=org_id, user_ids=users)
    known_keys = identity_repository.api_keys_in_org(session, org_id=org_id, key_ids=keys)
    book = PriceBook(session, org_id, {(provider_name(c.provider), c.model) for c in calls})
    done = Recorded(org_id)
    accepted: list[tuple[int, dict[str, Any], IncomingCall]] = []
    seen: set[str] = set()
    for call in calls:
        team_id = teams.get(call.team or key_team or "")
        at = (call.timestamp or now).astimezone(UTC)
        problem: tuple[str, str] | None = None
        if team_id is None:
            problem = ("unknown_team", "No such team in this organization")
        elif call.user and call.user not in known_users:
            problem = ("unknown_user", "No such member in this organization")
        elif call.api_key and call.api_key not in known_keys:
            problem = ("unknown_api_key", "No such API key in this organization")
        elif at < now - MAX_CALL_AGE:
            problem = ("too_old", "Calls older than 35 days are not accepted")
        elif at > now + MAX_CALL_LEAD:
            problem = ("in_future", "Calls more than 5 minutes ahead are not accepted")
        elif call.reservation_id:
            problem = _reservation_problem(session, principal, call.reservation_id, team_id)
        if problem is not None:
            done.results.append(CallResult(call.id, "rejected", *problem))
            continue
        if call.id in seen:
            done.results.append(CallResult(call.id, "duplicate"))
            continue
        seen.add(call.id)
        assert team_id is not None
        provider = provider_name(call.provider)
        cost: Decimal | None
        if call.cost is not None:
            cost, source = call.cost, CostSource.CALLER
        else:
            price = book.price(provider, call.model, at)
            if price is None:
                cost, source = None, CostSource.UNPRICED
            else:
                cost = price.cost(call.input_tokens, call.output_tokens, call.cached_input_tokens)
                source = CostSource.COMPUTED
        row = {
            "org_id": org_id,
            "id": call.id,
            "at": at,
            "team_id": team_id,
            "user_id": call.user or principal.user_id,
            "api_key_id": call.api_key or principal.api_key_id,
            "provider": provider,
            "model": call.model,
            "input_tokens": call.input_tokens,
            "output_tokens": call.output_tokens,
            "cached_input_tokens": call.cached_input_tokens,
            "cost": cost,
            "cost_source": source.value,
            "latency_ms": call.latency_ms,
            "status": call.status,
            "error_kind": call.error_kind,
            "tags": dict(call.tags),
            "reservation_id": call.reservation_id,
            "data_classification": call.data_classification,
        }
        accepted.append((len(done.results), row, call))
        done.results.append(CallResult(call.id, "accepted", cost=cost, cost_source=source.value))
    inserted = repository.insert_new_calls(session, [row for _, row, _ in accepted])
    fresh = [(i, row, call) for i, row, call in accepted if row["id"] in inserted]
    for i, row, call in accepted:
        if row["id"] not in inserted:
            done.results[i] = CallResult(call.id, "duplicate")
    if not fresh:
        return done
    _stash_rollups(session, [row for _, row, _ in fresh])
    plain_usage: list[UsageEvent] = []
    for _, row, call in fresh:
        events = _usage_events(row)
        if call.reservation_id:
            usage = {e.meter: e.quantity for e in events}
            admission.settle(ctx, principal, call.reservation_id, usage, events=events)
        else:
            plain_usage.extend(events)
    if plain_usage:
        record_events(session, org_id, plain_usage, now=now)
    _flush_rollups(session)  # if no listener took them (every event recorded before)
    return done


def _reservation_problem(
    session: Session, principal: Principal, reservation_id: str, team_id: str
) -> tuple[str, str] | None:
    try:
        found = admission.find_reservation(session, principal, reservation_id)
    except NotFound:
        return ("unknown_reservation", "No such reservation")
    if found.team_id != team_id:
        return ("reservation_mismatch", "The reservation was made for another team")
    if found.status == ReservationStatus.SETTLED:
        return ("reservation_settled", "The reservation was already settled")
    return None


def _usage_events(row: Mapping[str, Any]) -> list[UsageEvent]:
    dims = {"provider": row["provider"], "model": row["model"], "source": CALL_SOURCE}
    for name, value in sorted(row["tags"].items())[:16]:
        dims.setdefault(name, value)
    quantities = (
        ("llm_input_tokens", Decimal(row["input_tokens"])),
        ("llm_output_tokens", Decimal(row["output_tokens"])),
        (COST_METER, row["cost"] or Decimal(0)),
    )
    return [
        UsageEvent(
            f"{row['id']}.{meter}",
            meter,
            quantity,
            row["at"],
            row["team_id"],
            row["user_id"],
            row["api_key_id"],
            dims,
        )
        for meter, quantity in quantities
        if quantity
    ]


# ---- rollups ----


def _rollup_key(row: Mapping[str, Any], hour: datetime) -> tuple[Any, ...]:
    return (
        row["org_id"], hour, row["team_id"] or "", row["user_id"] or "", row["api_key_id"] or "",
        row["provider"] or "", row["model"] or "",
    )  # fmt: skip


_ZERO_SUMS = {
    "requests": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0,
    "cost": Decimal(0), "computed_requests": 0, "unpriced_requests": 0, "latency_ms_sum": 0,
    "latency_requests": 0,
}  # fmt: skip
_KEY_NAMES = ("org_id", "hour", "team_id", "user_id", "api_key_id", "provider", "model")


@dataclass
class _Pending:
    rollups: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    latency: dict[tuple[Any, ...], int] = field(default_factory=dict)

    def rollup(self, key: tuple[Any, ...]) -> dict[str, Any]:
        found = self.rollups.get(key)
        if found is None:
            found = self.rollups[key] = {**dict(zip(_KEY_NAMES, key, strict=True)), **_ZERO_SUMS}
        return found


def _pending(session: Session) -> _Pending:
    found: _Pending | None = session.info.get(_PENDING_ROLLUPS)
    if found is None:
        found = session.info[_PENDING_ROLLUPS] = _Pending()
    return found


def _stash_rollups(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add calls to the rollups the next usage listener writes (in this transaction)."""
    pending = _pending(session)
    for row in rows:
        hour = hour_of(row["at"])
        r = pending.rollup(_rollup_key(row, hour))
        r["requests"] += 1
        r["errors"] += row["status"] != "success"
        r["input_tokens"] += row["input_tokens"]
        r["output_tokens"] += row["output_tokens"]
        r["cached_input_tokens"] += row["cached_input_tokens"]
        r["cost"] += row["cost"] or Decimal(0)
        r["computed_requests"] += row["cost_source"] == CostSource.COMPUTED
        r["unpriced_requests"] += row["cost_source"] == CostSource.UNPRICED
        if row["latency_ms"] is not None:
            r["latency_ms_sum"] += row["latency_ms"]
            r["latency_requests"] += 1
            key = (
                row["org_id"], hour, row["team_id"], row["provider"], row["model"],
                latency_bucket(row["latency_ms"]),
            )  # fmt: skip
            pending.latency[key] = pending.latency.get(key, 0) + 1


def _stash_usage(session: Session, org_id: str, events: Sequence[UsageEvent]) -> None:
    """Usage on the LLM meters recorded without a call: each `llm_cost_usd` event is one
    request of its (team, member, key, provider, model)."""
    for event in events:
        if event.meter not in LLM_METERS or event.dimensions.get("source") == CALL_SOURCE:
            continue
        pending = _pending(session)
        dims = event.dimensions
        row = {
            "org_id": org_id,
            "team_id": event.team_id,
            "user_id": event.user_id,
            "api_key_id": event.api_key_id,
            "provider": provider_name(dims["provider"]) if dims.get("provider") else "",
            "model": dims.get("model") or "",
        }
        r = pending.rollup(_rollup_key(row, hour_of(event.timestamp)))
        if event.meter == COST_METER:
            r["requests"] += 1
            r["cost"] += event.quantity
        elif event.meter == "llm_input_tokens":
            r["input_tokens"] += int(event.quantity)
        else:
            r["output_tokens"] += int(event.quantity)


def _daily_of(rollups: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The hourly rollups summed per UTC day and (team, member, provider, model)."""
    days: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rollups:
        day = r["hour"].replace(hour=0, minute=0, second=0, microsecond=0)
        key = (r["org_id"], day, r["team_id"], r["user_id"], r["provider"], r["model"])
        found = days.get(key)
        if found is None:
            found = days[key] = {**dict(zip(repository.DAILY_KEY, key, strict=True)), **_ZERO_SUMS}
        for name in _ZERO_SUMS:
            found[name] += r[name]
    return list(days.values())


def _flush_rollups(session: Session) -> None:
    pending: _Pending | None = session.info.pop(_PENDING_ROLLUPS, None)
    if pending is None:
        return
    repository.upsert_rollups(session, list(pending.rollups.values()))
    repository.upsert_daily(session, _daily_of(pending.rollups.values()))
    repository.upsert_latency(
        session,
        [
            dict(zip(("org_id", "hour", "team_id", "provider", "model", "bucket"), k, strict=True))
            | {"requests": n}
            for k, n in pending.latency.items()
        ],
    )


def on_usage(
    session: Session,
    org_id: str,
    events: Sequence[UsageEvent],
    held: Sequence[Mapping[str, Any]],
    now: datetime,
) -> None:
    """Metering's usage listener: spend's rollups, then the budgets' counters and alerts."""
    _stash_usage(session, org_id, events)
    _flush_rollups(session)
    moved = count_spend(session, org_id, events, held, now)
    if moved:
        alerts.raise_alerts(session, org_id, moved, now=now)


on_usage_recorded(on_usage)


def result_out(result: CallResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "status": result.status,
        "code": result.code,
        "detail": result.detail,
        "cost": None if result.cost is None else plain(result.cost),
        "cost_source": result.cost_source,
    }
