"""Quota alerts: 80% and 100% of a metered quota's limit, raised once per quota, period and
threshold, each with its audit event."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.kit.ids import new_id
from tenantry.metering import repository
from tenantry.metering.models import QuotaAlert
from tenantry.metering.plans import effective_plan, metered_quota
from tenantry.metering.repository import CounterKey
from tenantry.plans.catalog import Quota

ALERT_THRESHOLDS = (80, 100)


def quota_alerts(session: Session, org_id: str) -> list[QuotaAlert]:
    return repository.alerts_of(session, org_id=org_id)


def raise_alerts(
    session: Session, org_id: str, touched: Iterable[CounterKey], *, now: datetime
) -> list[str]:
    """Raise the 80% and 100% alerts of metered quotas whose counters the caller just moved,
    once per quota, period and threshold (an alert row and an audit event each); returns the
    quotas now past their limit."""
    plan = effective_plan(session, org_id)
    watched: dict[CounterKey, Quota] = {}
    for key in touched:
        quota = metered_quota(plan, key[0])
        if quota is not None and quota.period.value == key[1]:
            watched[key] = quota
    if not watched:
        return []
    states = repository.counters(session, org_id=org_id, keys=watched)
    rows = []
    over: list[str] = []
    for key, quota in sorted(watched.items()):
        state = states.get(key)
        assert quota.limit is not None
        if state is not None and state.used > quota.limit:
            over.append(quota.key)
        for threshold in ALERT_THRESHOLDS:
            if state is not None and state.used * 100 >= quota.limit * threshold:
                rows.append(
                    {
                        "id": new_id("qal"),
                        "org_id": org_id,
                        "quota_key": quota.key,
                        "period_start": key[2],
                        "threshold": threshold,
                        "used": state.used,
                        "limit": quota.limit,
                        "enforcement": quota.enforcement.value,
                        "created_at": now,
                    }
                )
    raised = set(repository.insert_alerts(session, rows))
    for row in rows:
        if row["id"] in raised:
            _audit_alert(session, row, now=now)
    return over


def _audit_alert(session: Session, row: dict[str, Any], *, now: datetime) -> None:
    audit.append(
        session,
        now=now,
        org_id=row["org_id"],
        actor_type="system",
        actor_id=None,
        action="quota.alert_raised",
        result="success",
        subject_id=None,
        personal=audit.Personal(),
        target_type="quota",
        target_id=row["quota_key"],
        summary={
            "alert_id": row["id"],
            "threshold": row["threshold"],
            "used": str(row["used"]),
            "limit": str(row["limit"]),
            "enforcement": row["enforcement"],
            "period_start": row["period_start"].isoformat(),
        },
    )
