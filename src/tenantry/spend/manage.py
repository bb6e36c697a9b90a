"""Changing spend's rules: budgets (create, edit, delete), a team's billing settings as seed 001
sends them, acknowledging alerts, and the price table (the deployment's imports, an org's own
rates). Each change is one audit event."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize, is_in_org
from tenantry.identity import repository as identity_repository
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, NotFound, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.kit.money import plain
from tenantry.spend import repository
from tenantry.spend.budgets import EVERY, BudgetRule, org_rules, rule_of
from tenantry.spend.models import (
    Budget,
    BudgetAlert,
    BudgetPeriod,
    BudgetScope,
    ExceededAction,
    OrgPrice,
    TeamSpendSettings,
)
from tenantry.spend.pricing import PriceEntry, provider_name
from tenantry.tenancy import repository as tenancy_repository
from tenantry.tenancy import scope as tenancy

SEED_BUDGET_NAME = "Monthly budget"


@dataclass(frozen=True)
class BudgetSpec:
    """A budget as a request describes it (refs not yet resolved)."""

    scope: str
    name: str | None
    team: str | None
    member: str | None
    api_key: str | None
    provider: str | None
    model: str | None
    amount: Decimal
    period: str
    thresholds: Sequence[int]
    exceeded_action: str


def _target(
    session: Session, principal: Principal, org_id: str, spec: BudgetSpec
) -> dict[str, str]:
    """The budget's target columns; refs outside the org answer 404, as if they did not exist."""
    team_id = user_id = key_id = ""
    if spec.scope in (BudgetScope.TEAM, BudgetScope.MEMBER):
        if not spec.team:
            raise Unprocessable(f"A {spec.scope} budget names its team", code="team_required")
        team = tenancy_repository.team_in_org(session, org_id=org_id, team_id=spec.team)
        if team is None:
            raise NotFound("Team not found")
        team_id = team.id
    if spec.scope == BudgetScope.MEMBER:
        if not spec.member:
            raise Unprocessable("A member budget names its member", code="member_required")
        user_id = tenancy.resolve_member(session, org_id=org_id, ref=spec.member).id
    if spec.scope == BudgetScope.API_KEY:
        if not spec.api_key:
            raise Unprocessable("An API key budget names its key", code="api_key_required")
        if not identity_repository.api_keys_in_org(session, org_id=org_id, key_ids=[spec.api_key]):
            raise NotFound("API key not found")
        key_id = spec.api_key
    return {
        "scope": spec.scope,
        "team_id": team_id,
        "user_id": user_id,
        "api_key_id": key_id,
        "provider": provider_name(spec.provider) if spec.provider else "",
        "model": spec.model or "",
        "period": spec.period,
    }


def _default_name(values: Mapping[str, str]) -> str:
    only = "/".join(x for x in (values["provider"], values["model"]) if x)
    words = {"org": "Organization", "team": "Team", "member": "Member", "api_key": "API key"}
    name = f"{words[values['scope']]} {EVERY[values['period']]} budget"
    return f"{name} ({only})" if only else name


def authorize_budget(
    session: Session, principal: Principal, permission: Permission, found: Budget
) -> None:
    """A team's (or member's) budget is the team's to see and change; the others the org's."""
    authorize(session, principal, permission, org_id=found.org_id, team_id=found.team_id or None)


def find_budget(session: Session, principal: Principal, budget_id: str) -> Budget:
    found = repository.budget(session, budget_id)
    if found is None or not is_in_org(session, principal, found.org_id):
        raise NotFound("Budget not found")
    if principal.kind == "api_key" and principal.key_team_id not in (None, found.team_id):
        raise NotFound("Budget not found")
    tenancy.check_active(session, found.org_id)
    return found


def create_budget(
    ctx: Ctx, principal: Principal, *, org_id: str, spec: BudgetSpec, team_id: str | None = None
) -> Budget:
    """A new budget of the org (from a team's route, `team_id` is that team: the budget is on it,
    or on a member within it)."""
    session, now = ctx.session, ctx.clock.now()
    if team_id is not None:
        if spec.scope not in (BudgetScope.TEAM, BudgetScope.MEMBER):
            raise Unprocessable(
                "A team's budgets are on the team or a member in it", code="invalid_scope"
            )
        spec = BudgetSpec(**{**spec.__dict__, "team": team_id})
    values = _target(session, principal, org_id, spec)
    if repository.budget_like(session, {"org_id": org_id, **values}) is not None:
        raise Conflict(
            "This target already has a budget for this period; change that one",
            code="budget_exists",
        )
    row = Budget(
        id=new_id("bud"),
        org_id=org_id,
        name=spec.name or _default_name(values),
        amount=spec.amount,
        thresholds=sorted(set(spec.thresholds)),
        exceeded_action=spec.exceeded_action,
        created_at=now,
        updated_at=now,
        **values,
    )
    session.add(row)
    session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org_id,
        team_id=row.team_id or None,
        target_type="budget",
        target_id=row.id,
        summary=_summary(rule_of(row)),
    )
    return row


def _summary(rule: BudgetRule) -> dict[str, Any]:
    return {k: v for k, v in rule.describe().items() if v is not None} | {
        "thresholds": list(rule.thresholds)
    }


def update_budget(
    ctx: Ctx, principal: Principal, found: Budget, changes: Mapping[str, Any]
) -> Budget:
    """Change a budget's name, amount, thresholds or action (its target and period stay: a
    different one is a new budget). Its current period's spend counts against the new amount."""
    before = _summary(rule_of(found))
    for name in ("name", "amount", "exceeded_action"):
        if changes.get(name) is not None:
            setattr(found, name, changes[name])
    if changes.get("thresholds") is not None:
        found.thresholds = sorted(set(changes["thresholds"]))
    found.updated_at = ctx.clock.now()
    ctx.session.flush()
    after = _summary(rule_of(found))
    audit.record(
        ctx,
        principal,
        org_id=found.org_id,
        team_id=found.team_id or None,
        target_type="budget",
        target_id=found.id,
        summary={
            "changed": {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}
        },
    )
    return found


def delete_budget(ctx: Ctx, principal: Principal, found: Budget) -> None:
    summary = _summary(rule_of(found))
    ctx.session.delete(found)
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=found.org_id,
        team_id=found.team_id or None,
        target_type="budget",
        target_id=found.id,
        summary=summary,
    )


# ---- a team's billing settings (seed 001) ----


@dataclass(frozen=True)
class TeamSettings:
    monthly_budget: Decimal | None
    warning_threshold: int | None
    exceeded_action: str | None
    cost_allocation: dict[str, Any] | None
    reporting: dict[str, Any] | None


def team_budget(session: Session, org_id: str, team_id: str) -> Budget | None:
    """The team's own monthly budget on all its spend: the one its billing settings set."""
    return repository.budget_like(
        session,
        {
            "org_id": org_id,
            "scope": BudgetScope.TEAM,
            "team_id": team_id,
            "user_id": "",
            "api_key_id": "",
            "provider": "",
            "model": "",
            "period": BudgetPeriod.MONTH,
        },
    )


def set_team_settings(
    ctx: Ctx, principal: Principal, *, org_id: str, team_id: str, settings: TeamSettings
) -> tuple[Budget | None, TeamSpendSettings | None]:
    """Apply seed 001's settings: `monthly_budget` and `budget_alerts` set the team's monthly
    budget (a `null` budget removes it), `cost_allocation` and `reporting` are kept as given;
    what is left out stays as it was."""
    session, now = ctx.session, ctx.clock.now()
    budget = team_budget(session, org_id, team_id)
    changed: dict[str, Any] = {}
    if settings.monthly_budget is not None:
        if budget is None:
            budget = Budget(
                id=new_id("bud"),
                org_id=org_id,
                name=SEED_BUDGET_NAME,
                scope=BudgetScope.TEAM,
                team_id=team_id,
                user_id="",
                api_key_id="",
                provider="",
                model="",
                period=BudgetPeriod.MONTH,
                amount=settings.monthly_budget,
                thresholds=[80],
                exceeded_action=ExceededAction.NOTIFY,
                created_at=now,
                updated_at=now,
            )
            session.add(budget)
        budget.amount = settings.monthly_budget
        changed["monthly_budget"] = plain(settings.monthly_budget)
    if budget is not None and (settings.warning_threshold or settings.exceeded_action):
        if settings.warning_threshold is not None:
            budget.thresholds = [settings.warning_threshold]
            changed["warning_threshold"] = settings.warning_threshold
        if settings.exceeded_action is not None:
            budget.exceeded_action = settings.exceeded_action
            changed["exceeded_action"] = settings.exceeded_action
        budget.updated_at = now
    elif budget is None and (settings.warning_threshold or settings.exceeded_action):
        raise Unprocessable(
            "Set `monthly_budget` before its alerts: the team has no budget yet",
            code="budget_required",
        )
    stored = repository.team_settings(session, org_id=org_id, team_id=team_id)
    if settings.cost_allocation is not None or settings.reporting is not None:
        if stored is None:
            stored = TeamSpendSettings(
                team_id=team_id, org_id=org_id, cost_allocation={}, reporting={}, updated_at=now
            )
            session.add(stored)
        if settings.cost_allocation is not None:
            stored.cost_allocation = settings.cost_allocation
            changed["cost_allocation"] = settings.cost_allocation
        if settings.reporting is not None:
            stored.reporting = settings.reporting
            # Recipients are personal data: the chained summary says how many.
            changed["reporting"] = {
                **{k: v for k, v in settings.reporting.items() if k != "recipients"},
                "recipients": len(settings.reporting.get("recipients") or []),
            }
        stored.updated_at = now
    session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org_id,
        team_id=team_id,
        target_type="team",
        target_id=team_id,
        summary={"changed": changed, "budget_id": budget.id if budget else None},
    )
    return budget, stored


# ---- alerts ----


def find_alert(session: Session, principal: Principal, alert_id: str) -> BudgetAlert:
    found = repository.alert(session, alert_id)
    if found is None or not is_in_org(session, principal, found.org_id):
        raise NotFound("Alert not found")
    if principal.kind == "api_key" and principal.key_team_id not in (None, found.team_id):
        raise NotFound("Alert not found")
    return found


def acknowledge_alert(
    ctx: Ctx, principal: Principal, found: BudgetAlert, *, team_id: str | None = None
) -> BudgetAlert:
    """Mark an alert seen. Through a team's route, only that team's alerts (404 otherwise)."""
    if team_id is not None and found.team_id != team_id:
        raise NotFound("Alert not found")
    authorize(
        ctx.session,
        principal,
        Permission.SPEND_MANAGE,
        org_id=found.org_id,
        team_id=found.team_id or None,
    )
    if not repository.acknowledge(
        ctx.session,
        org_id=found.org_id,
        alert_id=found.id,
        by=principal.user_id,
        at=ctx.clock.now(),
    ):
        raise Conflict("This alert was already acknowledged", code="alert_acknowledged")
    ctx.session.refresh(found)
    audit.record(
        ctx,
        principal,
        org_id=found.org_id,
        team_id=found.team_id or None,
        target_type="budget_alert",
        target_id=found.id,
        summary={"budget_id": found.budget_id, "threshold": found.threshold},
    )
    return found


def rules_by_id(session: Session, org_id: str) -> dict[str, BudgetRule]:
    return {rule.id: rule for rule in org_rules(session, org_id)}


# ---- prices ----


def _price_values(entry: PriceEntry) -> dict[str, Any]:
    return {
        "provider": entry.provider,
        "model": entry.model,
        "effective_from": entry.effective_from,
        "input_per_million": entry.input_per_million,
        "output_per_million": entry.output_per_million,
        "cached_input_per_million": entry.cached_input_per_million,
        "substitution_class": entry.substitution_class,
    }


def import_prices(ctx: Ctx, principal: Principal, entries: Sequence[PriceEntry]) -> int:
    """The deployment's prices: each entry added, or replacing the one of the same model and
    date (the operators' `tenantry prices import FILE`)."""
    now = ctx.clock.now()
    rows = {(e.provider, e.model, e.effective_from): _price_values(e) for e in entries}
    repository.upsert_prices(ctx.session, [v | {"imported_at": now} for v in rows.values()])
    audit.record(
        ctx,
        principal,
        actor=("operator", principal.user_id),
        org_id=None,
        target_type="price_table",
        target_id=None,
        summary={"entries": len(rows), "models": len({(p, m) for p, m, _ in rows})},
    )
    return len(rows)


def set_org_prices(
    ctx: Ctx, principal: Principal, org_id: str, entries: Sequence[PriceEntry]
) -> list[OrgPrice]:
    """The org's own rates: each entry added, or replacing the one of the same model and date."""
    session, now = ctx.session, ctx.clock.now()
    out: list[OrgPrice] = []
    for entry in entries:
        values = _price_values(entry)
        found = repository.org_price_like(
            session,
            org_id=org_id,
            provider=entry.provider,
            model=entry.model,
            effective_from=entry.effective_from,
        )
        if found is None:
            found = OrgPrice(id=new_id("prc"), org_id=org_id, created_at=now, **values)
            session.add(found)
        else:
            for name, value in values.items():
                setattr(found, name, value)
        out.append(found)
    session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org_id,
        target_type="price_table",
        target_id=org_id,
        summary={
            "entries": len(out),
            "models": sorted({f"{e.provider}/{e.model}" for e in entries}),
        },
    )
    return out


def delete_org_price(ctx: Ctx, principal: Principal, org_id: str, price_id: str) -> None:
    found = repository.org_price(ctx.session, org_id=org_id, price_id=price_id)
    if found is None:
        raise NotFound("Price not found")
    summary = {"provider": found.provider, "model": found.model}
    ctx.session.delete(found)
    ctx.session.flush()
    audit.record(
        ctx, principal, org_id=org_id, target_type="price", target_id=price_id, summary=summary
    )


def when(value: datetime | None, default: datetime) -> datetime:
    return value if value is not None else default
