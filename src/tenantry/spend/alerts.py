"""Budget alerts: each warning threshold of a budget (and 100%, the whole amount) raised once per
period, when the period's spend reaches it; each with an audit event and a spend event
(`budget.threshold_reached`, `budget.exceeded`) in the transaction that recorded the spend.
Acknowledging one is a change of its own, audited."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.kit.ids import new_id
from tenantry.kit.money import plain
from tenantry.spend import events, repository
from tenantry.spend.budgets import EVERY, BudgetRule, period_end
from tenantry.spend.models import AlertKind, BudgetAlert
from tenantry.spend.repository import CounterKey, CounterState

EXCEEDED_AT = 100


def thresholds_of(rule: BudgetRule) -> list[int]:
    return sorted({*rule.thresholds, EXCEEDED_AT})


def raise_alerts(
    session: Session,
    org_id: str,
    moved: dict[CounterKey, tuple[BudgetRule, CounterState]],
    *,
    now: datetime,
) -> list[str]:
    """Raise the thresholds the counters' spend has reached and that were not raised yet in
    their period; the ids of the alerts raised now."""
    rows: list[dict[str, Any]] = []
    for (budget_id, start), (rule, state) in sorted(moved.items()):
        for threshold in thresholds_of(rule):
            if state.spent * 100 < rule.amount * threshold:
                break
            rows.append(
                {
                    "id": new_id("bal"),
                    "org_id": org_id,
                    "budget_id": budget_id,
                    "team_id": rule.team_id,
                    "period_start": start,
                    "threshold": threshold,
                    "kind": AlertKind.EXCEEDED if threshold >= EXCEEDED_AT else AlertKind.WARNING,
                    "spent": state.spent,
                    "amount": rule.amount,
                    "created_at": now,
                }
            )
    raised = repository.insert_alerts(session, rows)
    rules = {key[0]: rule for key, (rule, _) in moved.items()}
    for row in rows:
        if row["id"] in raised:
            _announce(session, row, rules[row["budget_id"]], now=now)
    return [row["id"] for row in rows if row["id"] in raised]


def percent(spent: Decimal, amount: Decimal) -> Decimal:
    if not amount:
        return Decimal(100)
    return (spent * 100 / amount).quantize(Decimal("0.1"))


def message(kind: str, threshold: int, scope_words: str, period: str) -> str:
    if kind == AlertKind.EXCEEDED:
        return f"{scope_words} has spent its whole {EVERY[period]} budget"
    return f"{scope_words} has exceeded {threshold}% of its {EVERY[period]} budget"


def scope_words(scope: str) -> str:
    return {"org": "Organization", "team": "Team", "member": "Member", "api_key": "API key"}.get(
        scope, "Budget"
    )


def _announce(session: Session, row: dict[str, Any], rule: BudgetRule, *, now: datetime) -> None:
    summary = {
        "alert_id": row["id"],
        "budget_id": rule.id,
        "scope": rule.scope,
        "threshold": row["threshold"],
        "kind": str(row["kind"]),
        "spent": plain(row["spent"]),
        "amount": plain(rule.amount),
        "period": rule.period,
        "period_start": row["period_start"].isoformat(),
    }
    exceeded = row["kind"] == AlertKind.EXCEEDED
    audit.append(
        session,
        now=now,
        org_id=row["org_id"],
        team_id=rule.team_id or None,
        actor_type="system",
        actor_id=None,
        action="budget.exceeded" if exceeded else "budget.threshold_reached",
        result="success",
        subject_id=None,
        personal=audit.Personal(),
        target_type="budget",
        target_id=rule.id,
        summary=summary,
    )
    events.emit(
        session,
        events.SpendEvent(
            id=row["id"],
            type=events.BUDGET_EXCEEDED if exceeded else events.BUDGET_THRESHOLD_REACHED,
            org_id=row["org_id"],
            team_id=rule.team_id or None,
            occurred_at=now,
            data={
                **summary,
                "budget": rule.describe(),
                "percent_used": plain(percent(row["spent"], rule.amount)),
                "period_end": period_end(rule.period, row["period_start"]).isoformat(),
                "message": message(
                    str(row["kind"]), row["threshold"], scope_words(rule.scope), rule.period
                ),
            },
        ),
    )


def alert_out(alert: BudgetAlert, rule: BudgetRule | None) -> dict[str, Any]:
    """An alert in seed 001's shape (`type`, `threshold`, `current_value`, `message`), with its
    id, budget and acknowledgement."""
    period = rule.period if rule else "month"
    scope = scope_words(rule.scope) if rule else "Budget"
    return {
        "id": alert.id,
        "type": alert.kind,
        "budget_id": alert.budget_id,
        "threshold": alert.threshold,
        "current_value": float(percent(alert.spent, alert.amount)),
        "spent": plain(alert.spent),
        "amount": plain(alert.amount),
        "message": message(alert.kind, alert.threshold, scope, period),
        "period_start": alert.period_start,
        "created_at": alert.created_at,
        "acknowledged": alert.acknowledged_at is not None,
        "acknowledged_at": alert.acknowledged_at,
        "acknowledged_by": alert.acknowledged_by,
    }
