"""Admission: "may this principal do this, within plan and quota?" — answered before an expensive
action, with what it is expected to use held until the action reports what it really used.

    admit  -> checks (permission of the action; policies will plug in here), then reserves the
              estimate against every metered quota it touches and, through the registered
              holders, against anything else that limits it (spend's budgets), atomically
    settle -> records the actual usage as usage events and releases the holds, in one transaction
    expire -> a reservation never settled frees its holds once (the worker, and lazily here)

Holds on hard quotas are taken by one conditional UPDATE per counter (`used + reserved + q <=
limit`), so any number of parallel admissions, on any number of processes, can never together
pass a limit. Soft quotas always allow, and warn once the limit is passed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.orm import Session

from tenantry.authz.catalog import Permission, is_known_permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize, can
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, NotFound, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.kit.money import plain
from tenantry.metering import repository
from tenantry.metering.meters import MAX_EVENT_QUANTITY, meter_of, to_micros
from tenantry.metering.models import Reservation, ReservationStatus
from tenantry.metering.periods import period_start
from tenantry.metering.plans import effective_plan, metered_quota
from tenantry.metering.recording import UsageEvent, record_events
from tenantry.metering.repository import CounterKey, CounterState
from tenantry.plans.catalog import PLANS, Enforcement, Plan, Quota, upgrade_hint
from tenantry.tenancy import scope as tenancy
from tenantry.tenancy.scope import TeamRef

LAZY_EXPIRY_BATCH = 20


@dataclass(frozen=True)
class AdmissionRequest:
    """What an admission check looks at."""

    session: Session
    principal: Principal
    team: TeamRef  # the team's id and org
    plan: Plan
    action: str
    estimate: Mapping[str, Decimal]
    provider: str | None
    model: str | None
    now: datetime
    # What the caller says about the request besides its estimate (its data classification,
    # region, tags, the approval it carries): read by the domains that decide on them.
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reason:
    code: str
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.detail, **self.extra}


# The extension point: each check returns the reasons it denies for (none: it allows). Budgets
# and policies append theirs; checks run before anything is reserved and must not write.
AdmissionCheck = Callable[[AdmissionRequest], list[Reason]]


def action_permission(request: AdmissionRequest) -> list[Reason]:
    """An action named like a permission (`model:create`) needs that permission on the team;
    any other action is a label the product chooses (`llm.generate`)."""
    if not is_known_permission(request.action):
        return []
    permission = Permission(request.action)
    team = request.team
    if can(request.session, request.principal, permission, org_id=team.org_id, team_id=team.id):
        return []
    return [
        Reason(
            "permission_denied",
            f"Missing permission {permission.value} on this team",
            {"missing_permission": permission.value},
        )
    ]


ADMISSION_CHECKS: list[AdmissionCheck] = [action_permission]


@dataclass(frozen=True)
class Holding:
    """What a holder did for one admission: the reasons it refuses for (its own holds then given
    back by itself), the holds it took, stored with the reservation (each a JSON object with
    `"holder": <its name>`), and sections it adds to the answer (`{"budgets": [...]}`)."""

    refused: list[Reason] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)
    # Called with the reservation's id once the admission is allowed (every holder and quota
    # agreed), in its transaction: what a holder writes only for admitted requests.
    admitted: list[Callable[[str], None]] = field(default_factory=list)


class AdmissionHolder(Protocol):
    """Something besides the plan's quotas that an admission holds against, in the admission's
    own transaction (spend registers its budgets). Rows a holder locks come after metering's
    counters, in the holder's own key order, on every path: admit, settle, expire."""

    name: str

    def hold(self, request: AdmissionRequest, releasing: list[dict[str, Any]]) -> Holding:
        """Release `releasing` (holds of this org's reservations that just expired), then take
        this admission's holds; on refusal, whatever it took is given back before it returns."""
        ...

    def give_back(self, session: Session, org_id: str, held: list[dict[str, Any]]) -> None:
        """Undo `held` (the admission was refused by another holder or by a quota)."""
        ...

    def release(
        self, session: Session, org_id: str, held: list[dict[str, Any]], *, now: datetime
    ) -> None:
        """Free `held`, the holds of a reservation that expired unsettled."""
        ...


# Holders run in this order after the quota holds; settle hands their holds to the usage
# listeners (`metering.recording.USAGE_LISTENERS`), which release them with the usage recorded.
ADMISSION_HOLDERS: list[AdmissionHolder] = []


def register_holder(holder: AdmissionHolder) -> None:
    if all(h.name != holder.name for h in ADMISSION_HOLDERS):
        ADMISSION_HOLDERS.append(holder)


def holder_entries(holds: list[dict[str, Any]], name: str | None = None) -> list[dict[str, Any]]:
    """The holds of a reservation that a holder took (all holders' when `name` is None)."""
    return [h for h in holds if "holder" in h and (name is None or h["holder"] == name)]


@dataclass(frozen=True)
class Held:
    """The reservation an allowed admission made."""

    id: str
    expires_at: datetime


@dataclass(frozen=True)
class Admission:
    decision: str  # "allow" | "deny"
    reasons: list[Reason]
    warnings: list[Reason]
    reservation: Held | None
    remaining: dict[str, Decimal | None]
    sections: dict[str, Any] = field(default_factory=dict)  # what holders add to the answer


def check_quantities(usage: Mapping[str, Decimal], *, what: str) -> None:
    """Meters must be known and quantities non-negative with at most six decimals (422)."""
    for key, quantity in usage.items():
        if meter_of(key) is None:
            raise Unprocessable(f"Unknown meter {key!r} in {what}", code="unknown_meter")
        if not quantity.is_finite() or quantity < 0 or quantity > MAX_EVENT_QUANTITY:
            raise Unprocessable(
                f"The {what} of {key} must be between 0 and {MAX_EVENT_QUANTITY}",
                code="invalid_quantity",
            )
        try:
            to_micros(quantity)
        except ValueError:
            raise Unprocessable(
                f"The {what} of {key} has more than six decimal places", code="invalid_quantity"
            ) from None


# ---- holds on counters ----


@dataclass(frozen=True)
class _Hold:
    key: CounterKey
    quota: Quota
    quantity: Decimal


def _holds_for(plan: Plan, estimate: Mapping[str, Decimal], now: datetime) -> list[_Hold]:
    holds = []
    for meter_key, quantity in estimate.items():
        quota = metered_quota(plan, meter_key)
        if quota is None or quantity == 0:
            continue  # unlimited, or nothing to hold
        key = (meter_key, quota.period.value, period_start(quota.period, now))
        holds.append(_Hold(key, quota, quantity))
    return sorted(holds, key=lambda h: h.key)


def _held(holds: list[dict[str, Any]]) -> dict[CounterKey, Decimal]:
    """A reservation's stored holds as counter amounts."""
    out: dict[CounterKey, Decimal] = {}
    for hold in holds:
        if "holder" in hold:
            continue  # a holder's, released by that holder
        key = (hold["meter"], hold["period"], datetime.fromisoformat(hold["period_start"]))
        out[key] = out.get(key, Decimal(0)) + Decimal(hold["quantity"])
    return out


def _stored(hold: _Hold) -> dict[str, str]:
    meter, period, start = hold.key
    return {
        "meter": meter,
        "period": period,
        "period_start": start.isoformat(),
        "quantity": plain(hold.quantity),
    }


def _quota_reason(
    plan: Plan, hold: _Hold, state: repository.CounterState | None, *, code: str
) -> Reason:
    quota = hold.quota
    used = state.used if state else Decimal(0)
    reserved = state.reserved if state else Decimal(0)
    upgrade = upgrade_hint(plan.key) if quota.enforcement is Enforcement.HARD else None
    hint = f"; upgrade to {PLANS[upgrade].name} for more" if upgrade else ""
    verb = "would exceed" if code == "quota_exceeded" else "exceeds"
    return Reason(
        code,
        f"{plain(hold.quantity)} more {quota.key} {verb} the {quota.enforcement.value} "
        f"limit of {plain(quota.limit or Decimal(0))} per {quota.period.value}{hint}",
        {
            "quota": quota.key,
            "enforcement": quota.enforcement.value,
            "limit": plain(quota.limit or Decimal(0)),
            "used": plain(used),
            "reserved": plain(reserved),
            "requested": plain(hold.quantity),
            "period": quota.period.value,
            "upgrade_to": upgrade,
        },
    )


@dataclass
class _Taken:
    """What taking an admission's holds did."""

    holds: list[_Hold] = field(default_factory=list)
    refused: list[Reason] = field(default_factory=list)  # by hard quotas
    warnings: list[Reason] = field(default_factory=list)  # by soft quotas
    counters: dict[CounterKey, CounterState] = field(default_factory=dict)  # as holds left them
    # Counters whose hold was refused, as they stand (nothing here changes them).
    refused_counters: dict[CounterKey, CounterState] = field(default_factory=dict)
    reserved: bool = False  # whether the reservation was made with the last hold


def _take_holds(
    session: Session,
    org_id: str,
    plan: Plan,
    holds: list[_Hold],
    releases: dict[CounterKey, Decimal],
    reservation: dict[str, Any] | None,
) -> _Taken:
    """Apply expired reservations' releases and take the new holds, counter by counter in key
    order (each row is locked once, in the order every writer uses). When the last counter is a
    hard quota's and every hold before it was taken, `reservation` is made with that hold (one
    statement on PostgreSQL)."""
    by_key = {h.key: h for h in holds}
    done = _Taken()
    keys = sorted(set(by_key) | set(releases))
    for key in keys:
        if key in releases:
            repository.adjust_reserved(session, org_id=org_id, key=key, delta=-releases[key])
        hold = by_key.get(key)
        if hold is None:
            continue
        limit = hold.quota.limit
        assert limit is not None
        if hold.quota.enforcement is Enforcement.HARD:
            last = key == keys[-1] and not done.refused
            with_it = reservation if last else None
            held, state = _hold_within(session, org_id, hold, limit, with_it)
            if held and state is not None:
                done.holds.append(hold)
                done.counters[key] = state
                done.reserved = with_it is not None
            else:
                done.refused.append(_quota_reason(plan, hold, state, code="quota_exceeded"))
                if state is not None:
                    done.refused_counters[key] = state
            continue
        state = repository.add_reserved(session, org_id=org_id, key=key, delta=hold.quantity)
        if state is None:  # the first use of this counter in its period
            repository.ensure_counters(session, org_id=org_id, keys=[key])
            state = repository.add_reserved(session, org_id=org_id, key=key, delta=hold.quantity)
        assert state is not None
        done.holds.append(hold)
        done.counters[key] = state
        if state.used + state.reserved > limit:
            done.warnings.append(_quota_reason(plan, hold, state, code="quota_soft_limit_exceeded"))
    return done


def _hold_within(
    session: Session,
    org_id: str,
    hold: _Hold,
    limit: Decimal,
    reservation: dict[str, Any] | None,
) -> tuple[bool, CounterState | None]:
    """The conditional hold (and `reservation` with it, if given): whether it was taken, and
    the counter as it stands. A counter not made yet for this period is made first; then the
    same conditional UPDATE decides, so racing for the first hold of a period is exact too."""
    for attempt in range(2):
        held, state = repository.hold_within(
            session,
            org_id=org_id,
            key=hold.key,
            quantity=hold.quantity,
            limit=limit,
            then_reserve=reservation,
        )
        if held or state is not None or attempt:
            return held, state  # taken; or there is a counter, and the hold does not fit in it
        repository.ensure_counters(session, org_id=org_id, keys=[hold.key])
    raise AssertionError("unreachable")


def _give_back(session: Session, org_id: str, holds: list[_Hold]) -> None:
    for hold in sorted(holds, key=lambda h: h.key):
        repository.adjust_reserved(session, org_id=org_id, key=hold.key, delta=-hold.quantity)


def _mark_expired(session: Session, org_id: str, reservation_id: str, *, now: datetime) -> bool:
    """Move a held reservation to expired; whether it was still held (its holds are the
    caller's to release)."""
    return repository.move_reservation(
        session,
        org_id=org_id,
        reservation_id=reservation_id,
        from_status=ReservationStatus.HELD,
        to_status=ReservationStatus.EXPIRED,
        at=now,
    )


# When each org's next overdue reservation can come, as this process last found it: until then
# admission need not look (and skips a statement). A reservation lives at least MIN_TTL, so one
# made (by any process) after the look expires at least MIN_TTL later; half of it is allowed for
# reservations made just before the look but committed after it, and for clocks apart.
MIN_TTL = timedelta(seconds=1)
_NOTHING_OVERDUE_BEFORE: dict[str, datetime] = {}
_NOTHING_OVERDUE_CAPACITY = 100_000


@dataclass
class _Overdue:
    """What the overdue reservations an admission expired held."""

    counters: dict[CounterKey, Decimal] = field(default_factory=dict)
    holders: list[dict[str, Any]] = field(default_factory=list)


def _overdue_releases(session: Session, org_id: str, now: datetime) -> _Overdue:
    """Expire this org's overdue reservations (a few per call); what they held."""
    found = _Overdue()
    if now < _NOTHING_OVERDUE_BEFORE.get(org_id, now):
        return found
    releases = found.counters
    first = repository.first_to_expire(session, org_id=org_id, limit=LAZY_EXPIRY_BATCH + 1)
    overdue = [(rid, holds) for rid, holds, expires_at in first if expires_at <= now]
    for reservation_id, holds in overdue[:LAZY_EXPIRY_BATCH]:
        if _mark_expired(session, org_id, reservation_id, now=now):
            for key, quantity in _held(holds).items():
                releases[key] = releases.get(key, Decimal(0)) + quantity
            found.holders.extend(holder_entries(holds))
    if len(overdue) > LAZY_EXPIRY_BATCH:
        _NOTHING_OVERDUE_BEFORE.pop(org_id, None)  # more are overdue: look again next time
        return found
    later = [expires_at for _, _, expires_at in first if expires_at > now]
    if len(_NOTHING_OVERDUE_BEFORE) >= _NOTHING_OVERDUE_CAPACITY:
        _NOTHING_OVERDUE_BEFORE.clear()
    _NOTHING_OVERDUE_BEFORE[org_id] = min([*later[:1], now + MIN_TTL / 2])
    return found


def remaining(
    session: Session,
    org_id: str,
    plan: Plan,
    now: datetime,
    *,
    known: Mapping[CounterKey, CounterState] | None = None,
) -> dict[str, Decimal | None]:
    """What each metered quota has left in its current period (None: unlimited). Counters in
    `known` (as this transaction's own holds left them) are not read again."""
    keys: dict[str, CounterKey] = {}
    out: dict[str, Decimal | None] = {}
    for quota in plan.quotas.values():
        if quota.meter is None:
            continue
        if quota.limit is None:
            out[quota.key] = None
        else:
            keys[quota.key] = (quota.meter, quota.period.value, period_start(quota.period, now))
    states = dict(known or {})
    missing = [key for key in keys.values() if key not in states]
    if missing:
        states.update(repository.counters(session, org_id=org_id, keys=missing))
    for quota_key, key in keys.items():
        limit = plan.quotas[quota_key].limit
        assert limit is not None
        state = states.get(key)
        taken = (state.used + state.reserved) if state else Decimal(0)
        out[quota_key] = max(Decimal(0), limit - taken)
    return out


# ---- admit, settle, expire ----


def admit(
    ctx: Ctx,
    principal: Principal,
    *,
    team_ref: str,
    action: str,
    estimate: Mapping[str, Decimal],
    provider: str | None,
    model: str | None,
    ttl: timedelta,
    context: Mapping[str, Any] | None = None,
) -> Admission:
    session, now = ctx.session, ctx.clock.now()
    team = tenancy.resolve_team_ref(session, principal, team_ref)
    authorize(session, principal, Permission.USAGE_WRITE, org_id=team.org_id, team_id=team.id)
    check_quantities(estimate, what="estimate")
    plan = effective_plan(session, team.org_id)
    request = AdmissionRequest(
        session, principal, team, plan, action, estimate, provider, model, now, dict(context or {})
    )
    reasons = [reason for check in ADMISSION_CHECKS for reason in check(request)]
    overdue = _overdue_releases(session, team.org_id, now)
    holds = [] if reasons else _holds_for(plan, estimate, now)
    held = None if reasons else Held(new_id("rsv"), now + ttl)
    # The reservation as it is made if every hold is taken (then `holds` are all taken). With
    # holders registered it is made after their holds, which come after the quotas'.
    reservation: dict[str, Any] | None = (
        None
        if held is None
        else {
            "id": held.id,
            "org_id": team.org_id,
            "team_id": team.id,
            "user_id": principal.user_id,
            "api_key_id": principal.api_key_id,
            "action": action,
            "provider": provider,
            "model": model,
            "estimate": {k: plain(v) for k, v in estimate.items()},
            "holds": [_stored(h) for h in holds],
            "created_at": now,
            "expires_at": held.expires_at,
        }
    )
    with_last_hold = reservation if not ADMISSION_HOLDERS else None
    taken = _take_holds(session, team.org_id, plan, holds, overdue.counters, with_last_hold)
    reasons += taken.refused
    seen = taken.counters
    sections: dict[str, Any] = {}
    holdings: list[tuple[AdmissionHolder, Holding]] = []
    for holder in ADMISSION_HOLDERS:
        releasing = holder_entries(overdue.holders, holder.name)
        if reasons:
            if releasing:
                holder.release(session, team.org_id, releasing, now=now)
            continue
        holding = holder.hold(request, releasing)
        sections.update(holding.sections)
        reasons += holding.refused
        if not holding.refused:
            holdings.append((holder, holding))
    if reasons:
        _give_back(session, team.org_id, taken.holds)
        for holder, holding in holdings:
            holder.give_back(session, team.org_id, holding.held)
        seen = taken.refused_counters  # the ones given back are read afresh
    elif reservation is not None and not taken.reserved:
        taken_by_holders = [entry for _, holding in holdings for entry in holding.held]
        reservation["holds"] = [*reservation["holds"], *taken_by_holders]
        repository.insert_held_reservation(session, reservation)
    if not reasons and held is not None:
        for _, holding in holdings:
            for then in holding.admitted:
                then(held.id)
    return Admission(
        decision="deny" if reasons else "allow",
        reasons=reasons,
        warnings=taken.warnings,
        reservation=None if reasons else held,
        remaining=remaining(session, team.org_id, plan, now, known=seen),
        sections=sections,
    )


@dataclass(frozen=True)
class Settlement:
    reservation: Reservation
    recorded: list[str]
    expired_before_settle: bool
    remaining: dict[str, Decimal | None]


def find_reservation(session: Session, principal: Principal, reservation_id: str) -> Reservation:
    """A reservation of the principal's tenants (404 otherwise, as if it did not exist)."""
    found = repository.reservation(session, reservation_id)
    if found is None:
        raise NotFound("Reservation not found")
    try:
        tenancy.resolve_team_ref(session, principal, found.team_id)
    except NotFound:
        raise NotFound("Reservation not found") from None
    return found


def settle(
    ctx: Ctx,
    principal: Principal,
    reservation_id: str,
    usage: Mapping[str, Decimal],
    *,
    events: Sequence[UsageEvent] | None = None,
) -> Settlement:
    """Record what the admitted action used and release its holds. `events` are recorded instead
    of one event per meter of `usage` (an LLM call's own, with its ids and dimensions); they must
    be of the reservation's team."""
    session, now = ctx.session, ctx.clock.now()
    found = find_reservation(session, principal, reservation_id)
    authorize(
        session, principal, Permission.USAGE_WRITE, org_id=found.org_id, team_id=found.team_id
    )
    check_quantities(usage, what="usage")
    stored = {k: plain(v) for k, v in usage.items()}

    def settled_from(status: ReservationStatus) -> bool:
        return repository.move_reservation(
            session,
            org_id=found.org_id,
            reservation_id=found.id,
            from_status=status,
            to_status=ReservationStatus.SETTLED,
            at=now,
            usage=stored,
        )

    # Exactly one of these transitions can succeed, once: the holds are released by whichever
    # of settle or expiry moves the reservation out of "held".
    if settled_from(ReservationStatus.HELD):
        late, release, held = False, _held(found.holds), holder_entries(found.holds)
    elif settled_from(ReservationStatus.EXPIRED):
        late, release, held = True, {}, []
    else:
        raise Conflict("This reservation was already settled", code="reservation_settled")
    dimensions = {k: v for k, v in (("provider", found.provider), ("model", found.model)) if v}
    events = (
        events
        if events is not None
        else [
            UsageEvent(
                event_id=f"{found.id}.{meter}",
                meter=meter,
                quantity=quantity,
                timestamp=now,
                team_id=found.team_id,
                user_id=found.user_id,
                api_key_id=found.api_key_id,
                dimensions={**dimensions, "action": found.action[:100]},
            )
            for meter, quantity in sorted(usage.items())
        ]
    )
    recorded = record_events(session, found.org_id, events, now=now, release=release, held=held)
    session.refresh(found)
    plan = effective_plan(session, found.org_id)
    return Settlement(
        found, sorted(recorded.inserted), late, remaining(session, found.org_id, plan, now)
    )


def expire(
    session: Session,
    org_id: str,
    reservation_id: str,
    holds: list[dict[str, Any]],
    *,
    now: datetime,
) -> bool:
    """Expire one held reservation and release its holds, if it is still held; whether it was."""
    if not _mark_expired(session, org_id, reservation_id, now=now):
        return False
    for key, quantity in sorted(_held(holds).items()):
        repository.adjust_reserved(session, org_id=org_id, key=key, delta=-quantity)
    for holder in ADMISSION_HOLDERS:
        entries = holder_entries(holds, holder.name)
        if entries:
            holder.release(session, org_id, entries, now=now)
    return True
