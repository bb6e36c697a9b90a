"""Budgets: an amount of LLM spend per day, week or month, on an org, a team (and the teams under
it), a member within a team, or an API key, optionally for one provider or model only.

Every budget whose target covers a call applies to it; none overrides another. Spend is the
`llm_cost_usd` meter: whatever records it (an LLM call, a settle, a usage event) adds to the
counter of every budget that applies, in the same transaction (`count_spend`, a usage listener of
metering). `restrict` budgets are held in metering's admission (`SpendHolder`, an admission
holder): the estimated cost is held on each one's counter by a conditional UPDATE
(`spent + reserved + estimate <= amount`), in the admission's transaction, so concurrent
admissions on any number of processes can never together pass a budget; the settle (or the LLM
call that names the reservation) releases the hold as it adds the actual cost. `notify` budgets
never refuse. Either kind raises its alerts once per threshold and period (`spend.alerts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from tenantry.kit.money import plain
from tenantry.kit.stamps import stamped
from tenantry.metering.admission import (
    AdmissionRequest,
    Holding,
    Reason,
    register_holder,
)
from tenantry.metering.recording import UsageEvent
from tenantry.spend import repository
from tenantry.spend.models import Budget, BudgetPeriod, BudgetScope, ExceededAction
from tenantry.spend.pricing import PriceBook, provider_name
from tenantry.spend.repository import CounterKey, CounterState
from tenantry.tenancy import repository as tenancy_repository

COST_METER = "llm_cost_usd"
LLM_METERS = frozenset({COST_METER, "llm_input_tokens", "llm_output_tokens"})
# An admission with no cost to hold (an unpriced model, an estimate of 0) still holds this much,
# so a budget already spent to the cent refuses it.
MIN_HOLD = Decimal("0.000001")
HOLDER = "spend"
EVERY = {"day": "daily", "week": "weekly", "month": "monthly"}


# ---- periods ----


def period_start(period: str, at: datetime) -> datetime:
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == BudgetPeriod.DAY:
        return day
    if period == BudgetPeriod.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def period_end(period: str, start: datetime) -> datetime:
    if period == BudgetPeriod.DAY:
        return start + timedelta(days=1)
    if period == BudgetPeriod.WEEK:
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


# ---- the budgets of an org, as admission and recording see them ----


@dataclass(frozen=True)
class BudgetRule:
    id: str
    name: str
    scope: str
    team_id: str
    user_id: str
    api_key_id: str
    provider: str
    model: str
    amount: Decimal
    period: str
    thresholds: tuple[int, ...]
    action: str

    @property
    def restricts(self) -> bool:
        return self.action == ExceededAction.RESTRICT

    def key(self, at: datetime) -> CounterKey:
        return (self.id, period_start(self.period, at))

    def describe(self) -> dict[str, Any]:
        """Which budget this is, for answers and events."""
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope,
            "team_id": self.team_id or None,
            "user_id": self.user_id or None,
            "api_key_id": self.api_key_id or None,
            "provider": self.provider or None,
            "model": self.model or None,
            "period": self.period,
            "amount": plain(self.amount),
            "exceeded_action": self.action,
        }


def rule_of(row: Budget) -> BudgetRule:
    return BudgetRule(
        row.id, row.name, row.scope, row.team_id, row.user_id, row.api_key_id, row.provider,
        row.model, row.amount, row.period, tuple(row.thresholds), row.exceeded_action,
    )  # fmt: skip


def org_rules(session: Session, org_id: str) -> tuple[BudgetRule, ...]:
    """The org's budgets, kept per process under its version stamp (a budget changed anywhere
    bumps it)."""
    return stamped(
        session,
        org_id,
        "spend.budgets",
        lambda: tuple(rule_of(b) for b in repository.budgets_of(session, org_id)),
    )


def team_chain(session: Session, org_id: str, team_id: str) -> tuple[str, ...]:
    """The team and the teams above it (a team's parent decides: it bumps the stamp)."""
    return stamped(
        session,
        org_id,
        f"spend.chain:{team_id}",
        lambda: tuple(tenancy_repository.team_ancestors(session, org_id=org_id, team_id=team_id)),
    )


@dataclass(frozen=True)
class Target:
    """What a call (or an admission) is: whose, and of which model."""

    team_id: str | None
    user_id: str | None
    api_key_id: str | None
    provider: str | None
    model: str | None


def applies(rule: BudgetRule, target: Target, chain: Sequence[str]) -> bool:
    if rule.provider and rule.provider != (target.provider or ""):
        return False
    if rule.model and rule.model != (target.model or ""):
        return False
    if rule.scope == BudgetScope.ORG:
        return True
    if rule.scope == BudgetScope.TEAM:
        return rule.team_id in chain
    if rule.scope == BudgetScope.MEMBER:
        return rule.team_id in chain and rule.user_id == (target.user_id or "")
    return rule.api_key_id == (target.api_key_id or "")


def applicable(session: Session, org_id: str, target: Target) -> list[BudgetRule]:
    rules = org_rules(session, org_id)
    if not rules:
        return []
    chain = team_chain(session, org_id, target.team_id) if target.team_id else ()
    return [rule for rule in rules if applies(rule, target, chain)]


def status_of(rule: BudgetRule, state: CounterState | None, start: datetime) -> dict[str, Any]:
    spent = state.spent if state else Decimal(0)
    reserved = state.reserved if state else Decimal(0)
    left = max(Decimal(0), rule.amount - spent - reserved)
    percent = (spent * 100 / rule.amount) if rule.amount else Decimal(100)
    return {
        **rule.describe(),
        "period_start": start,
        "period_end": period_end(rule.period, start),
        "spent": plain(spent),
        "reserved": plain(reserved),
        "remaining": plain(left),
        "percent_used": plain(percent.quantize(Decimal("0.1"))),
    }


# ---- admission ----


def estimated_cost(
    session: Session, org_id: str, request: AdmissionRequest
) -> tuple[Decimal | None, bool]:
    """What an admission is expected to cost: its `llm_cost_usd`, else its LLM tokens priced
    from the table; (None, False) when the admission is not about LLM spend (budgets do not
    apply), (None, True) when the model has no price."""
    estimate = request.estimate
    if COST_METER in estimate:
        return estimate[COST_METER], False
    about_llm = bool(LLM_METERS & set(estimate)) or bool(request.model)
    if not about_llm:
        return None, False
    if not request.provider or not request.model:
        return None, True
    provider = provider_name(request.provider)
    price = PriceBook(session, org_id, [(provider, request.model)]).price(
        provider, request.model, request.now
    )
    if price is None:
        return None, True
    tokens_in = int(estimate.get("llm_input_tokens", 0))
    tokens_out = int(estimate.get("llm_output_tokens", 0))
    return price.cost(tokens_in, tokens_out, 0), False


def _refusal(rule: BudgetRule, state: CounterState | None, start: datetime, q: Decimal) -> Reason:
    status = status_of(rule, state, start)
    where = {
        BudgetScope.ORG: "the organization",
        BudgetScope.TEAM: f"team {rule.team_id}",
        BudgetScope.MEMBER: f"member {rule.user_id} in team {rule.team_id}",
        BudgetScope.API_KEY: f"API key {rule.api_key_id}",
    }[BudgetScope(rule.scope)]
    only = (
        " for " + "/".join(x for x in (rule.provider, rule.model) if x)
        if (rule.provider or rule.model)
        else ""
    )
    return Reason(
        "budget_exceeded",
        f"${plain(q)} more would pass the {EVERY[rule.period]} budget {rule.name!r} of {where}"
        f"{only}: ${status['spent']} spent and ${status['reserved']} held of "
        f"${plain(rule.amount)}",
        {"budget": {**status, "requested": plain(q)}},
    )


class SpendHolder:
    """Budgets as an admission holder of metering."""

    name = HOLDER

    def hold(self, request: AdmissionRequest, releasing: list[dict[str, Any]]) -> Holding:
        session, org_id = request.session, request.team.org_id
        releases = _releases(releasing)
        cost, unpriced = estimated_cost(session, org_id, request)
        rules: list[BudgetRule] = []
        if cost is not None or unpriced:
            principal = request.principal
            target = Target(
                request.team.id,
                principal.user_id,
                principal.api_key_id,
                provider_name(request.provider) if request.provider else None,
                request.model,
            )
            rules = applicable(session, org_id, target)
        if not rules and not releases:
            return Holding()
        q = max(cost or Decimal(0), MIN_HOLD)
        restricting = {rule.key(request.now): rule for rule in rules if rule.restricts}
        states: dict[CounterKey, CounterState] = {}
        taken: list[CounterKey] = []
        refused: list[Reason] = []
        for key in sorted(set(restricting) | set(releases)):
            if key in releases:
                repository.add_reserved(session, org_id=org_id, key=key, delta=-releases[key])
            rule = restricting.get(key)
            if rule is None or refused:
                continue
            state = _hold(session, org_id, key, q, rule.amount)
            if isinstance(state, CounterState):
                taken.append(key)
                states[key] = state
            else:
                refused.append(_refusal(rule, state[0], key[1], q))
                if state[0] is not None:
                    states[key] = state[0]
        if refused:
            for key in taken:
                repository.add_reserved(session, org_id=org_id, key=key, delta=-q)
                del states[key]
        others = [rule.key(request.now) for rule in rules if rule.key(request.now) not in states]
        states.update(repository.counters(session, org_id=org_id, keys=others))
        sections: dict[str, Any] = {
            "budgets": [
                {
                    **status_of(rule, states.get(rule.key(request.now)), rule.key(request.now)[1]),
                    "decided": bool(refused) and refused[0].extra["budget"]["id"] == rule.id,
                }
                for rule in rules
            ],
            "estimated_cost": None if cost is None else plain(cost),
        }
        if unpriced:
            sections["estimate_unpriced"] = True
        held = [] if refused else [_stored(key, q) for key in taken]
        return Holding(refused=refused, held=held, sections=sections)

    def give_back(self, session: Session, org_id: str, held: list[dict[str, Any]]) -> None:
        for key, quantity in sorted(_releases(held).items()):
            repository.add_reserved(session, org_id=org_id, key=key, delta=-quantity)

    def release(
        self, session: Session, org_id: str, held: list[dict[str, Any]], *, now: datetime
    ) -> None:
        self.give_back(session, org_id, held)


def _hold(
    session: Session, org_id: str, key: CounterKey, q: Decimal, amount: Decimal
) -> CounterState | tuple[CounterState | None]:
    """The counter after the hold; or, refused, the counter as it stands (in a 1-tuple)."""
    for attempt in range(2):
        state = repository.hold(session, org_id=org_id, key=key, quantity=q, amount=amount)
        if state is not None:
            return state
        found = repository.counters(session, org_id=org_id, keys=[key]).get(key)
        if found is not None or attempt:
            return (found,)
        repository.ensure_counters(session, org_id=org_id, keys=[key])
    raise AssertionError("unreachable")


def _stored(key: CounterKey, quantity: Decimal) -> dict[str, Any]:
    return {
        "holder": HOLDER,
        "budget": key[0],
        "period_start": key[1].isoformat(),
        "quantity": plain(quantity),
    }


def _releases(entries: Iterable[Mapping[str, Any]]) -> dict[CounterKey, Decimal]:
    out: dict[CounterKey, Decimal] = {}
    for entry in entries:
        if entry.get("holder") != HOLDER:
            continue
        key = (str(entry["budget"]), datetime.fromisoformat(str(entry["period_start"])))
        out[key] = out.get(key, Decimal(0)) + Decimal(str(entry["quantity"]))
    return out


register_holder(SpendHolder())


# ---- recording ----


def count_spend(
    session: Session,
    org_id: str,
    events: Sequence[UsageEvent],
    held: Sequence[Mapping[str, Any]],
    now: datetime,
) -> dict[CounterKey, tuple[BudgetRule, CounterState]]:
    """Add the cost of newly recorded `llm_cost_usd` events to the counters of the budgets that
    apply, releasing the holds a settle hands over, one upsert in key order; the counters whose
    spend rose, with their budget (for the alerts)."""
    releases = _releases(held)
    costly = [e for e in events if e.meter == COST_METER and e.quantity]
    if not costly and not releases:
        return {}
    rules = org_rules(session, org_id)
    known = {rule.id for rule in rules}
    changes: dict[CounterKey, tuple[Decimal, Decimal]] = {}
    touched: dict[CounterKey, BudgetRule] = {}
    if rules:
        chains: dict[str, tuple[str, ...]] = {}
        for event in costly:
            if event.team_id and event.team_id not in chains:
                chains[event.team_id] = team_chain(session, org_id, event.team_id)
            dims = event.dimensions
            provider = dims.get("provider")
            target = Target(
                event.team_id,
                event.user_id,
                event.api_key_id,
                provider_name(provider) if provider else None,
                dims.get("model"),
            )
            chain = chains.get(event.team_id or "", ())
            for rule in rules:
                if applies(rule, target, chain):
                    key = rule.key(event.timestamp)
                    spent, reserved = changes.get(key, (Decimal(0), Decimal(0)))
                    changes[key] = (spent + event.quantity, reserved)
                    touched[key] = rule
    for key, quantity in releases.items():
        if key[0] in known:  # a budget deleted since has no counters left
            spent, reserved = changes.get(key, (Decimal(0), Decimal(0)))
            changes[key] = (spent, reserved - quantity)
    states = repository.change_counters(session, org_id=org_id, changes=changes)
    return {key: (rule, states[key]) for key, rule in touched.items() if key in states}
