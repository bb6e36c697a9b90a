"""Anomalies of spend: a day whose cost for a team, a member (in a team), an API key or a model
(in a team) stands far above that subject's own baseline. Detected by the worker from daily
sums of the hourly rollups; each raised once per subject and day, with an audit event and an
`anomaly.detected` event (`spend.events`); listed, explained and acknowledged.

The test (docs/spend.md, "Anomalies"): the baseline is the subject's daily costs over the 28
days before the day (from its first day with spend, seven days at least; days without spend
count as $0). With m their median and MAD their median absolute deviation, the score is
(value - m) / max(1.4826 x MAD, 10 % of m, $0.01): a robust z-score that a few earlier spikes
do not move. A day is anomalous at a score of 3.5 or more and at least $1 above the median.
The worker checks yesterday and today so far (a day's cost only grows, so a partial day over
the line is over it for good).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from statistics import median
from typing import Any

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize, is_in_org
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, NotFound
from tenantry.kit.ids import new_id
from tenantry.kit.money import plain
from tenantry.spend import events, repository
from tenantry.spend.models import AnomalyDimension, SpendAnomaly

BASELINE_DAYS = 28
MIN_HISTORY_DAYS = 7
THRESHOLD = Decimal("3.5")
MIN_EXCESS = Decimal(1)
MAD_TO_SIGMA = Decimal("1.4826")
FLOOR_SHARE = Decimal("0.1")
FLOOR = Decimal("0.01")
DAY = timedelta(days=1)

# The rollup columns of each dimension; the subject is the last ones, the team the first.
COLUMNS: dict[str, tuple[str, ...]] = {
    AnomalyDimension.TEAM: ("team_id",),
    AnomalyDimension.MEMBER: ("team_id", "user_id"),
    AnomalyDimension.API_KEY: ("api_key_id",),
    AnomalyDimension.MODEL: ("team_id", "provider", "model"),
}


@dataclass(frozen=True)
class Finding:
    value: Decimal
    baseline: Decimal
    mad: Decimal
    score: Decimal
    history_days: int


def judge(history: Sequence[Decimal], value: Decimal) -> Finding | None:
    """The finding for a day of `value` after `history` (oldest first), if it is anomalous."""
    if len(history) < MIN_HISTORY_DAYS:
        return None
    middle = Decimal(median(history))
    mad = Decimal(median(abs(v - middle) for v in history))
    scale = max(MAD_TO_SIGMA * mad, FLOOR_SHARE * middle, FLOOR)
    score = ((value - middle) / scale).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    if score < THRESHOLD or value - middle < MIN_EXCESS:
        return None
    return Finding(value, middle, mad, score, len(history))


def _subject(dimension: str, keys: tuple[str, ...]) -> tuple[str, str] | None:
    """(team id, subject) of a group of rollups; None for spend without that subject."""
    if dimension == AnomalyDimension.TEAM:
        return keys[0], keys[0]
    if dimension == AnomalyDimension.MEMBER:
        return (keys[0], keys[1]) if keys[1] else None
    if dimension == AnomalyDimension.API_KEY:
        return ("", keys[0]) if keys[0] else None
    return keys[0], f"{keys[1]}/{keys[2]}"


def detect(session: Session, *, org_id: str, day: datetime, now: datetime) -> list[SpendAnomaly]:
    """Check one UTC day of the org (up to `now`); the anomalies raised by this call."""
    since = day - timedelta(days=BASELINE_DAYS)
    raised = []
    for dimension, columns in COLUMNS.items():
        costs = repository.daily_costs_by(
            session, org_id=org_id, columns=columns, since=since, until=day + DAY
        )
        for keys in sorted(costs):
            who = _subject(dimension, keys)
            by_day = costs[keys]
            value = by_day.get(day, Decimal(0))
            earlier = [d for d, cost in by_day.items() if d < day and cost > 0]
            if who is None or value <= 0 or not earlier:
                continue
            first = min(earlier)
            count = (day - first) // DAY
            history = [by_day.get(first + k * DAY, Decimal(0)) for k in range(count)]
            found = judge(history, value)
            if found is None:
                continue
            row = _raise(session, org_id, dimension, who, day, found, now)
            if row is not None:
                raised.append(row)
    return raised


def _raise(
    session: Session,
    org_id: str,
    dimension: str,
    who: tuple[str, str],
    day: datetime,
    found: Finding,
    now: datetime,
) -> SpendAnomaly | None:
    values: dict[str, Any] = {
        "id": new_id("anm"),
        "org_id": org_id,
        "dimension": dimension,
        "team_id": who[0],
        "subject": who[1],
        "day": day,
        "value": found.value,
        "baseline": found.baseline.quantize(Decimal("0.000001")),
        "mad": found.mad.quantize(Decimal("0.000001")),
        "score": found.score,
        "history_days": found.history_days,
        "created_at": now,
    }
    if not repository.insert_anomaly(session, values):
        return None
    row = SpendAnomaly(**values)
    summary = explain(row)
    audit.append(
        session,
        now=now,
        org_id=org_id,
        team_id=row.team_id or None,
        actor_type="system",
        actor_id=None,
        action=events.ANOMALY_DETECTED,
        result="success",
        subject_id=None,
        personal=audit.Personal(),
        target_type="spend_anomaly",
        target_id=row.id,
        summary={k: v for k, v in summary.items() if k != "message"},
    )
    events.emit(
        session,
        events.SpendEvent(
            id=row.id,
            type=events.ANOMALY_DETECTED,
            org_id=org_id,
            team_id=row.team_id or None,
            occurred_at=now,
            data=summary,
        ),
    )
    return row


def explain(row: SpendAnomaly) -> dict[str, Any]:
    """What was measured, against what: JSON-ready."""
    day = row.day.astimezone(UTC).date().isoformat()
    return {
        "anomaly_id": row.id,
        "dimension": row.dimension,
        "team_id": row.team_id or None,
        "subject": row.subject,
        "day": day,
        "value": plain(row.value),
        "baseline": plain(row.baseline),
        "mad": plain(row.mad),
        "score": plain(row.score),
        "history_days": row.history_days,
        "message": (
            f"{row.dimension.replace('_', ' ')} {row.subject} spent ${plain(row.value)} on "
            f"{day} against a median of ${plain(row.baseline)} a day over the "
            f"{row.history_days} days before (score {plain(row.score)})"
        ),
    }


def anomaly_out(row: SpendAnomaly) -> dict[str, Any]:
    return {
        **explain(row),
        "id": row.id,
        "created_at": row.created_at,
        "acknowledged": row.acknowledged_at is not None,
        "acknowledged_at": row.acknowledged_at,
        "acknowledged_by": row.acknowledged_by,
    }


def find(session: Session, principal: Principal, anomaly_id: str) -> SpendAnomaly:
    found = repository.anomaly(session, anomaly_id)
    if found is None or not is_in_org(session, principal, found.org_id):
        raise NotFound("Anomaly not found")
    if principal.kind == "api_key" and principal.key_team_id not in (None, found.team_id):
        raise NotFound("Anomaly not found")
    return found


def acknowledge(ctx: Ctx, principal: Principal, found: SpendAnomaly) -> SpendAnomaly:
    """Mark an anomaly seen (a team's by the team's spend managers, a key's by the org's)."""
    authorize(
        ctx.session,
        principal,
        Permission.SPEND_MANAGE,
        org_id=found.org_id,
        team_id=found.team_id or None,
    )
    if not repository.acknowledge_anomaly(
        ctx.session,
        org_id=found.org_id,
        anomaly_id=found.id,
        by=principal.user_id,
        at=ctx.clock.now(),
    ):
        raise Conflict("This anomaly was already acknowledged", code="anomaly_acknowledged")
    ctx.session.refresh(found)
    audit.record(
        ctx,
        principal,
        org_id=found.org_id,
        team_id=found.team_id or None,
        target_type="spend_anomaly",
        target_id=found.id,
        summary={"dimension": found.dimension, "subject": found.subject},
    )
    return found
