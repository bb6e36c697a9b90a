"""Dry runs: a policy (as saved, or with the rules and exceptions a change would give it)
replayed over the org's recorded LLM calls of the last N days, before it is activated. Each call
is evaluated as admission would have evaluated it then, with the member's and team's spend
aggregated from the replayed calls themselves (so the replay needs one pass, oldest first);
a call that would have been sent for approval counts as not approved. Writes nothing."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.governance import repository
from tenantry.governance.conditions import WEEKDAYS, check_exceptions, check_rules
from tenantry.governance.engine import Subject, compile_policy, decide
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
    daily: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    monthly: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    recent: dict[str, deque[datetime]] = defaultdict(deque)
    by_member, by_model, by_day = _Tally(), _Tally(), _Tally()
    totals: dict[str, list[Any]] = {k: [0, Decimal(0)] for k in OUTCOMES}
    replayed = 0
    for call in repository.calls_since(session, org_id=org_id, since=since, until=now):
        at = call.at.astimezone(UTC)
        cost = call.cost or Decimal(0)
        user = call.user_id or ""
        day_key = (user, at.date().isoformat())
        month_key = (call.team_id, at.strftime("%Y-%m"))
        daily[day_key] += cost
        monthly[month_key] += cost
        window = recent[user]
        window.append(at)
        while window and window[0] <= at - timedelta(hours=1):
            window.popleft()
        if teams is not None and call.team_id not in teams:
            continue
        replayed += 1
        role, names = _roles_of(session, roles, org_id, call.team_id, user)
        local = at.astimezone(zone)
        tags = call.tags or {}
        values: dict[str, Any] = {
            "model": call.model,
            "provider": call.provider,
            "action": "llm.generate",
            "estimated_cost": cost,
            "estimated_tokens": call.input_tokens + call.output_tokens,
            "daily_cost_per_user": daily[day_key],
            "monthly_team_cost": monthly[month_key],
            "requests_last_hour": len(window),
            "data_classification": tags.get("data_classification"),
            "region": tags.get("region"),
            "role": role,
            "api_key": call.api_key_id,
            "user": call.user_id,
            "hour_of_day": local.hour,
            "weekday": WEEKDAYS[local.weekday()],
            **{f"tags.{k}": str(v) for k, v in tags.items()},
        }
        subject = Subject(
            call.user_id, None, call.api_key_id, names, WEEKDAYS[local.weekday()],
            local.strftime("%H:%M"),
        )  # fmt: skip
        decision = decide([policy], values, subject)
        if not decision.matched:
            continue
        outcomes = [decision.outcome] if decision.outcome != "allow" else []
        if decision.logging:
            outcomes.append("log")
        for outcome in outcomes:
            totals[outcome][0] += 1
            totals[outcome][1] += cost
            by_member.add(user or "(none)", outcome, cost)
            by_model.add(call.model, outcome, cost)
            by_day.add(local.date().isoformat(), outcome, cost)
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
