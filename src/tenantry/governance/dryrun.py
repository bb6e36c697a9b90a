"""Dry runs: a policy (as saved, or with the rules and exceptions a change would give it)
replayed over the org's recorded LLM calls of the last N days, before it is activated. Each call
is evaluated as admission would have evaluated it then, with the member's and team's spend
aggregated from the replayed calls themselves (so the replay needs one pass, oldest first);
a call that would have been sent for approval counts as not approved. Writes nothing."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.governance import repository
from tenantry.governance.conditions import TAG_PREFIX, WEEKDAYS, check_exceptions, check_rules
from tenantry.governance.engine import PRECEDENCE, Subject, compile_policy, exception_for
from tenantry.governance.policies import config_of, find_policy
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Unprocessable
from tenantry.kit.money import plain
from tenantry.spend import repository as spend_repository
from tenantry.tenancy import repository as tenancy_repository

MAX_DAYS = 366
OUTCOMES = ("deny", "require_approval", "log")


class _Tally:
    def __init__(self) -> None:
        self.counts: dict[str, dict[str, list[Any]]] = defaultdict(
            lambda: {k: [0, Decimal(0)] for k in OUTCOMES}
        )

    def add(self, key: str, outcome: str, cost: Decimal) -> None:
        entry = self.counts[key][outcome]
        entry[0] += 1
        entry[1] += cost

    def out(self) -> dict[str, Any]:
        return {
            key: {k: {"count": v[0], "cost": plain(v[1])} for k, v in by.items() if v[0]}
            for key, by in sorted(self.counts.items())
        }


def dry_run(
    ctx: Ctx,
    principal: Principal,
    policy_id: str,
    *,
    days: int,
    rules: Mapping[str, Any] | None = None,
    exceptions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    session, now = ctx.session, ctx.clock.now()
    found = find_policy(session, principal, policy_id)
    authorize(
        session, principal, Permission.GOVERNANCE_MANAGE,
        org_id=found.org_id, team_id=found.team_id or None,
    )  # fmt: skip
    if not 1 <= days <= MAX_DAYS:
        raise Unprocessable(f"days is 1 to {MAX_DAYS}", code="invalid_days")
    policy = compile_policy(
        id=found.id,
        name=found.name,
        version=found.version,
        team_id=found.team_id,
        rules=check_rules(rules) if rules is not None else found.rules,
        exceptions=check_exceptions(exceptions) if exceptions is not None else found.exceptions,
    )
    org_id = found.org_id
    zone = ZoneInfo(config_of(session, org_id=org_id, team_id=found.team_id)["timezone"])
    teams = _teams_under(session, org_id, found.team_id) if found.team_id else None
    since = now - timedelta(days=days)
    roles: dict[tuple[str, str], tuple[str | None, frozenset[str]]] = {}
    # What a match counts as: the policy's outcome (as `decide` gives it for this one policy)
    # and its log. Known before the replay; so is every value the conditions never read.
    counted = [k for k in PRECEDENCE if k in policy.kinds and k != "allow"][:1] + (
        ["log"] if "log" in policy.kinds else []
    )
    needs = policy.fields
    timed = bool(needs & {"hour_of_day", "weekday"})
    tag_fields = [(f, f[len(TAG_PREFIX) :]) for f in needs if f.startswith(TAG_PREFIX)]
    # An exception by role, member or key does not change between one member's calls (a time
    # window is checked per call): the subject's exception without the time, per member.
    standing: dict[tuple[str, str, str | None], dict[str, str] | None] = {}
    daily: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
    monthly: dict[tuple[str, int, int], Decimal] = defaultdict(Decimal)
    recent: dict[str, deque[datetime]] = defaultdict(deque)
    hour = timedelta(hours=1)
    by_member, by_model, by_day = _Tally(), _Tally(), _Tally()
    totals: dict[str, list[Any]] = {k: [0, Decimal(0)] for k in OUTCOMES}
    replayed = 0
    calls = repository.call_rows(session, org_id=org_id, since=since, until=now)
    for at, team_id, user_id, api_key_id, provider, model, tin, tout, cost, tags in calls:
        at = at.astimezone(UTC)
        cost = cost or Decimal(0)
        user = user_id or ""
        values: dict[str, Any] = {}
        if "daily_cost_per_user" in needs:
            day_key = (user, at.date())
            daily[day_key] += cost
            values["daily_cost_per_user"] = daily[day_key]
        if "monthly_team_cost" in needs:
            month_key = (team_id, at.year, at.month)
            monthly[month_key] += cost
            values["monthly_team_cost"] = monthly[month_key]
        if "requests_last_hour" in needs:
            window = recent[user]
            window.append(at)
            while window and window[0] <= at - hour:
                window.popleft()
            values["requests_last_hour"] = len(window)
        if teams is not None and team_id not in teams:
            continue
        replayed += 1
        if not counted:
            continue  # an allow or notify policy counts nothing
        role, names = _roles_of(session, roles, org_id, team_id, user)
        who = (team_id, user, api_key_id)
        if who not in standing:
            standing[who] = exception_for(policy, Subject(user_id, None, api_key_id, names, "", ""))
        if standing[who] is not None:
            continue
        local = at.astimezone(zone) if timed or policy.windows else None
        if local is not None and policy.windows:
            weekday, hhmm = WEEKDAYS[local.weekday()], local.strftime("%H:%M")
            if any(w.covers(weekday, hhmm) for w in policy.windows):
                continue
        tags = tags or {}
        values |= {
            "model": model,
            "provider": provider,
            "action": "llm.generate",
            "estimated_cost": cost,
            "estimated_tokens": tin + tout,
            "data_classification": tags.get("data_classification"),
            "region": tags.get("region"),
            "role": role,
            "api_key": api_key_id,
            "user": user_id,
        }
        if local is not None:
            values["hour_of_day"] = local.hour
            values["weekday"] = WEEKDAYS[local.weekday()]
        for name, key in tag_fields:
            if key in tags:
                values[name] = str(tags[key])
        if not policy.test(values):
            continue
        day = (local or at.astimezone(zone)).date().isoformat()
        for outcome in counted:
            totals[outcome][0] += 1
            totals[outcome][1] += cost
            by_member.add(user or "(none)", outcome, cost)
            by_model.add(model, outcome, cost)
            by_day.add(day, outcome, cost)
    return {
        "policy_id": found.id,
        "version": found.version,
        "changed": rules is not None or exceptions is not None,
        "days": days,
        "since": since,
        "until": now,
        "calls": replayed,
        "would": {k: {"count": v[0], "cost": plain(v[1])} for k, v in totals.items()},
        "by_member": by_member.out(),
        "by_model": by_model.out(),
        "by_day": by_day.out(),
    }


def _teams_under(session: Session, org_id: str, team_id: str) -> set[str]:
    parents = spend_repository.team_parents(session, org_id)
    out = set()
    for team in parents:
        current: str | None = team
        for _ in range(64):
            if current is None:
                break
            if current == team_id:
                out.add(team)
                break
            current = parents.get(current)
    return out


def _roles_of(
    session: Session,
    known: dict[tuple[str, str], tuple[str | None, frozenset[str]]],
    org_id: str,
    team_id: str,
    user_id: str,
) -> tuple[str | None, frozenset[str]]:
    key = (team_id, user_id)
    if key not in known:
        org = tenancy_repository.org_membership(session, org_id=org_id, user_id=user_id)
        member = tenancy_repository.team_membership(
            session, org_id=org_id, team_id=team_id, user_id=user_id
        )
        role = member.role if member is not None else (org.role if org is not None else None)
        names = frozenset(r.role.lower() for r in (org, member) if r is not None)
        known[key] = (role, names)
    return known[key]
