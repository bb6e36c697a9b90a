"""Cost views in seed 001's shape (`billing_period` with `total_cost`, `total_requests` and the
breakdowns by provider, model and member; the budget and its alerts; the forecast), for a team
(with the teams under it) or a whole org, over a chosen period, from the hourly rollups only: a
view costs the same whatever the number of calls behind it.

Money is in US dollars as decimal strings, exactly the sums of the calls' costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import can
from tenantry.identity import repository as identity_repository
from tenantry.kit.errors import Unprocessable
from tenantry.kit.money import plain
from tenantry.spend import forecasts, repository
from tenantry.spend.alerts import alert_out
from tenantry.spend.budgets import (
    BudgetRule,
    Target,
    applies,
    org_rules,
    period_end,
    period_start,
    status_of,
)
from tenantry.spend.models import BudgetPeriod, BudgetScope
from tenantry.spend.repository import CounterKey, CounterState

UNATTRIBUTED = "unattributed"
MAX_SPAN = timedelta(days=400)


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime
    label: str


def choose_period(
    now: datetime, *, period: str | None, since: datetime | None, until: datetime | None
) -> Period:
    """`period`: `current` (this UTC month, the default), `previous`, a month `YYYY-MM`, `day`,
    `week`; or `since`/`until` (taken to whole hours)."""
    if since is not None or until is not None:
        if period is not None:
            raise Unprocessable("Give a period or since/until, not both", code="invalid_period")
        end = until or now
        start = since or period_start(BudgetPeriod.MONTH, end)
        start = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        end_hour = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        end = end_hour if end_hour == end.astimezone(UTC) else end_hour + timedelta(hours=1)
        if end <= start or end - start > MAX_SPAN:
            raise Unprocessable(
                "since must come before until, at most 400 days apart", code="invalid_period"
            )
        return Period(start, end, "custom")
    name = period or "current"
    if name in ("current", "month"):
        start = period_start(BudgetPeriod.MONTH, now)
        return Period(start, period_end(BudgetPeriod.MONTH, start), start.strftime("%Y-%m"))
    if name == "previous":
        end = period_start(BudgetPeriod.MONTH, now)
        start = period_start(BudgetPeriod.MONTH, end - timedelta(days=1))
        return Period(start, end, start.strftime("%Y-%m"))
    if name in ("day", "week"):
        start = period_start(name, now)
        return Period(start, period_end(name, start), name)
    try:
        start = datetime.strptime(name, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise Unprocessable(
            "period is current, previous, day, week or a month as YYYY-MM", code="invalid_period"
        ) from None
    return Period(start, period_end(BudgetPeriod.MONTH, start), name)


def subtree(parents: dict[str, str | None], team_id: str) -> list[str]:
    """The team and every team under it."""
    children: dict[str, list[str]] = {}
    for child, parent in parents.items():
        if parent:
            children.setdefault(parent, []).append(child)
    found: list[str] = []
    pending = [team_id]
    while pending and len(found) < 10_000:
        current = pending.pop()
        if current in found:
            continue
        found.append(current)
        pending.extend(children.get(current, ()))
    return sorted(found)


def _money(value: Any) -> str:
    return plain(Decimal(value or 0))


def _breakdown(rows: Sequence[tuple[Any, ...]], *, empty: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (-Decimal(r[6] or 0), str(r[0]))):
        out[str(row[0]) or empty] = {"cost": _money(row[6]), "requests": int(row[1] or 0)}
    return out


def cost_view(
    session: Session,
    principal: Principal,
    *,
    org_id: str,
    team_id: str | None,
    chosen: Period,
    now: datetime,
) -> dict[str, Any]:
    parents = repository.team_parents(session, org_id)
    teams = subtree(parents, team_id) if team_id is not None else None

    def totals(group: str | None) -> list[tuple[Any, ...]]:
        return repository.rollup_totals(
            session,
            org_id=org_id,
            team_ids=teams,
            since=chosen.since,
            until=chosen.until,
            group=group,
        )

    overall = totals(None)
    total = overall[0] if overall else (None, 0, 0, 0, 0, 0, Decimal(0), 0, 0, 0, 0)
    members = _breakdown(totals("user_id"), empty=UNATTRIBUTED)
    if can(session, principal, Permission.MEMBER_READ, org_id=org_id, team_id=team_id):
        users = identity_repository.users_by_ids(session, [m for m in members if m != UNATTRIBUTED])
        for user_id, entry in members.items():
            if user_id in users:
                entry["email"] = users[user_id].email
    unpriced = repository.unpriced_models(
        session, org_id=org_id, team_ids=teams, since=chosen.since, until=chosen.until
    )
    billing_period = {
        "label": chosen.label,
        "start": chosen.since,
        "end": chosen.until,
        "currency": "usd",
        "total_cost": _money(total[6]),
        "total_requests": int(total[1] or 0),
        "errors": int(total[2] or 0),
        "input_tokens": int(total[3] or 0),
        "output_tokens": int(total[4] or 0),
        "cached_input_tokens": int(total[5] or 0),
        "computed_cost_requests": int(total[7] or 0),
        "breakdown_by_provider": _breakdown(totals("provider"), empty="unknown"),
        "breakdown_by_model": _breakdown(totals("model"), empty="unknown"),
        "breakdown_by_member": members,
        "breakdown_by_team": _breakdown(totals("team_id"), empty="none"),
        "unpriced": {
            "requests": int(total[8] or 0),
            "models": [{"provider": p, "model": m, "requests": n} for p, m, n in unpriced],
        },
    }
    rules = rules_for(session, org_id, team_id, parents)
    keys = [rule.key(now) for rule in rules]
    states = repository.counters(session, org_id=org_id, keys=keys)
    budgets = [status_of(rule, states.get(rule.key(now)), rule.key(now)[1]) for rule in rules]
    own = _own_budget(rules, team_id)
    alerts = repository.alerts_of(
        session, org_id=org_id, budget_ids=[r.id for r in rules], since=chosen.since
    )
    by_id = {rule.id: rule for rule in rules}
    current = [
        alert_out(a, by_id.get(a.budget_id)) for a in alerts if a.period_start < chosen.until
    ]
    return {
        "org_id": org_id,
        "team_id": team_id,
        "billing_period": billing_period,
        "budget": None
        if own is None
        else status_of(own, states.get(own.key(now)), own.key(now)[1])
        | {"thresholds": list(own.thresholds)},
        "budget_alerts": {
            "warning_threshold": min(own.thresholds) if own and own.thresholds else None,
            "exceeded_action": own.action if own else None,
            "current_alerts": current,
        },
        "budgets": budgets,
        "forecast": forecasts.forecast(
            session,
            org_id=org_id,
            team_ids=teams,
            spent=Decimal(total[6] or 0),
            now=now,
            since=chosen.since,
            until=chosen.until,
            budget=_pace(own, states, now),
        ),
    }


def _pace(
    own: BudgetRule | None, states: dict[CounterKey, CounterState], now: datetime
) -> forecasts.BudgetPace | None:
    """The own budget's period as the forecast's pace is measured against."""
    if own is None:
        return None
    key = own.key(now)
    state = states.get(key)
    return forecasts.BudgetPace(
        amount=own.amount,
        spent=state.spent if state else Decimal(0),
        period_end=period_end(own.period, key[1]),
    )


def rules_for(
    session: Session, org_id: str, team_id: str | None, parents: dict[str, str | None]
) -> list[BudgetRule]:
    """The budgets a team's view shows: those on the team, the teams above it and the org, and
    those of members in it; an org's view shows all of them."""
    rules = org_rules(session, org_id)
    if team_id is None:
        return list(rules)
    chain, current, hops = [], team_id, 0
    while current and hops < 64:
        chain.append(current)
        current, hops = parents.get(current) or "", hops + 1
    shown = []
    for rule in rules:
        if (rule.scope == BudgetScope.MEMBER and rule.team_id in chain) or (
            rule.scope != BudgetScope.API_KEY
            and applies(rule, Target(team_id, None, None, rule.provider, rule.model), chain)
        ):
            shown.append(rule)
    return shown


def _own_budget(rules: Sequence[BudgetRule], team_id: str | None) -> BudgetRule | None:
    """The budget the view is about: the team's (or org's) own monthly budget on all spend."""
    scope = BudgetScope.TEAM if team_id else BudgetScope.ORG
    for rule in rules:
        if (
            rule.scope == scope
            and rule.team_id == (team_id or "")
            and rule.period == BudgetPeriod.MONTH
            and not rule.provider
            and not rule.model
        ):
            return rule
    return None
