"""Every query of spend, always scoped to one org.

The hot statements (recording calls, holding a budget in admission) are single set-based
statements on both databases: `INSERT ... ON CONFLICT` for calls, rollups and counters, and one
conditional `UPDATE` to hold against a budget. Rows several transactions may update (rollups,
counters) are written in key order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, column, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tenantry.kit.clock import as_utc
from tenantry.kit.db import UTCDateTime
from tenantry.metering.models import Quantity
from tenantry.spend.models import (
    Budget,
    BudgetAlert,
    BudgetCounter,
    CostCentre,
    CostCentreTeam,
    LlmCall,
    LlmCallDailyRollup,
    LlmCallRollup,
    LlmLatencyRollup,
    OrgPrice,
    Price,
    SpendAnomaly,
    TeamSpendSettings,
)
from tenantry.tenancy.models import Team

CounterKey = tuple[str, datetime]  # (budget id, period start)


@dataclass(frozen=True)
class CounterState:
    spent: Decimal
    reserved: Decimal


def _insert(session: Session, model: type) -> Any:
    table = cast(Table, model.__table__)  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


# ---- calls and rollups ----


def insert_new_calls(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert the calls not yet recorded for their org; the ids of those inserted."""
    if not rows:
        return set()
    statement = _insert(session, LlmCall).on_conflict_do_nothing().returning(LlmCall.id)
    return set(session.scalars(statement, list(rows)))


_ROLLUP_KEY = ["org_id", "hour", "team_id", "user_id", "api_key_id", "provider", "model"]
_ROLLUP_SUMS = [
    "requests", "errors", "input_tokens", "output_tokens", "cached_input_tokens", "cost",
    "computed_requests", "unpriced_requests", "latency_ms_sum", "latency_requests",
]  # fmt: skip


def upsert_rollups(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    statement = _insert(session, LlmCallRollup)
    t = LlmCallRollup
    statement = statement.on_conflict_do_update(
        index_elements=_ROLLUP_KEY,
        set_={name: getattr(t, name) + getattr(statement.excluded, name) for name in _ROLLUP_SUMS},
    )
    ordered = sorted(rows, key=lambda r: tuple(r[k] for k in _ROLLUP_KEY))
    session.execute(statement, ordered)


DAILY_KEY = ("org_id", "day", "team_id", "user_id", "provider", "model")
DAILY_COLUMNS = frozenset(DAILY_KEY)


def upsert_daily(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    statement = _insert(session, LlmCallDailyRollup)
    t = LlmCallDailyRollup
    statement = statement.on_conflict_do_update(
        index_elements=list(DAILY_KEY),
        set_={name: getattr(t, name) + getattr(statement.excluded, name) for name in _ROLLUP_SUMS},
    )
    ordered = sorted(rows, key=lambda r: tuple(r[k] for k in DAILY_KEY))
    session.execute(statement, ordered)


Span = tuple[datetime, datetime]


def spans(since: datetime, until: datetime) -> tuple[list[Span], Span | None]:
    """[since, until) as the whole UTC days inside it, read from the daily rollups, and the
    hours at either end, read from the hourly ones: a view reads at most two days of hours."""
    first = since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if first < since:
        first += timedelta(days=1)
    last = until.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if first >= last:
        return [(since, until)], None
    hours = [span for span in ((since, first), (last, until)) if span[0] < span[1]]
    return hours, (first, last)


def _sources(
    since: datetime, until: datetime, columns: Iterable[str], *, hourly: bool = False
) -> list[tuple[Any, Any, Span]]:
    """(table, its time column, span) to read [since, until) from, for these group columns."""
    if hourly or not set(columns) <= DAILY_COLUMNS:
        return [(LlmCallRollup, LlmCallRollup.hour, (since, until))]
    hours, days = spans(since, until)
    found: list[tuple[Any, Any, Span]] = [
        (LlmCallRollup, LlmCallRollup.hour, span) for span in hours
    ]
    if days is not None:
        found.append((LlmCallDailyRollup, LlmCallDailyRollup.day, days))
    return found


_LATENCY_KEY = ["org_id", "hour", "team_id", "provider", "model", "bucket"]


def upsert_latency(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    statement = _insert(session, LlmLatencyRollup)
    statement = statement.on_conflict_do_update(
        index_elements=_LATENCY_KEY,
        set_={"requests": LlmLatencyRollup.requests + statement.excluded.requests},
    )
    ordered = sorted(rows, key=lambda r: tuple(r[k] for k in _LATENCY_KEY))
    session.execute(statement, ordered)


def rollup_totals(
    session: Session,
    *,
    org_id: str,
    team_ids: Sequence[str] | None,
    since: datetime,
    until: datetime,
    group: str | None,
) -> list[tuple[Any, ...]]:
    """Sums of the rollups of [since, until) for the teams (all when None), grouped by one key
    column (`provider`, `model`, `user_id`, `team_id`, `api_key_id`) or none: (group, requests,
    errors, input, output, cached, cost, computed, unpriced, latency sum, latency requests).
    Whole days come from the daily rollups, the hours around them from the hourly ones."""
    merged: dict[Any, list[Any]] = {}
    for t, at, (start, end) in _sources(since, until, [group] if group else []):
        key = getattr(t, group) if group else None
        sums = [func.sum(getattr(t, name)) for name in _ROLLUP_SUMS]
        query = select(*([key] if key is not None else []), *sums).where(
            t.org_id == org_id, at >= start, at < end
        )
        if team_ids is not None:
            query = query.where(t.team_id.in_(team_ids))
        if key is not None:
            query = query.group_by(key)
        for row in session.execute(query):
            values = tuple(row)
            if key is None:
                values = (None, *values)
            if values[1] is None:  # no rows at all
                continue
            found = merged.get(values[0])
            if found is None:
                merged[values[0]] = list(values)
            else:
                for k in range(1, len(values)):
                    found[k] += values[k]
    return [tuple(v) for v in merged.values()]


def unpriced_models(
    session: Session,
    *,
    org_id: str,
    team_ids: Sequence[str] | None,
    since: datetime,
    until: datetime,
) -> list[tuple[str, str, int]]:
    """(provider, model, calls) of the calls that had no price, from the rollups."""
    found: dict[tuple[str, str], int] = {}
    for t, at, (start, end) in _sources(since, until, ["provider", "model"]):
        query = (
            select(t.provider, t.model, func.sum(t.unpriced_requests))
            .where(t.org_id == org_id, at >= start, at < end, t.unpriced_requests > 0)
            .group_by(t.provider, t.model)
        )
        if team_ids is not None:
            query = query.where(t.team_id.in_(team_ids))
        for p, m, n in session.execute(query):
            found[(p, m)] = found.get((p, m), 0) + int(n)
    return [(p, m, n) for (p, m), n in sorted(found.items())]


# ---- budgets ----


def budgets_of(session: Session, org_id: str) -> list[Budget]:
    return list(session.scalars(select(Budget).where(Budget.org_id == org_id).order_by(Budget.id)))


def budget(session: Session, budget_id: str) -> Budget | None:
    """Unscoped by design: the caller checks the principal's standing in its org (404 if none)."""
    return session.get(Budget, budget_id)


def budget_like(session: Session, values: dict[str, Any]) -> Budget | None:
    """The org's budget on exactly this target and period, if there is one."""
    keys = ("org_id", "scope", "team_id", "user_id", "api_key_id", "provider", "model", "period")
    query = select(Budget).where(*(getattr(Budget, k) == values[k] for k in keys))
    return session.scalars(query).first()


_COUNTER_COLUMNS = (column("spent", Quantity()), column("reserved", Quantity()))
_COUNTER_PARAMS = (bindparam("start", type_=UTCDateTime()),)
_HOLD = (
    text(
        """
        UPDATE spend_budget_counters SET reserved = reserved + :q
        WHERE org_id = :org AND budget_id = :budget AND period_start = :start
          AND spent + reserved + :q <= :amount
        RETURNING spent, reserved
        """
    )
    .bindparams(*_COUNTER_PARAMS)
    .columns(*_COUNTER_COLUMNS)
)
_ADD_RESERVED = text(
    """
        UPDATE spend_budget_counters SET reserved = reserved + :q
        WHERE org_id = :org AND budget_id = :budget AND period_start = :start
        """
).bindparams(*_COUNTER_PARAMS)


def _micros(value: Decimal) -> int:
    return int(value * 1_000_000)


def hold(
    session: Session, *, org_id: str, key: CounterKey, quantity: Decimal, amount: Decimal
) -> CounterState | None:
    """Hold `quantity` on a budget's counter if spent + reserved + quantity stays within
    `amount`, in one conditional UPDATE (concurrent holders re-check it against each other's
    holds under the row lock); the counter after the hold, None if not held (or no counter)."""
    row = session.execute(
        _HOLD,
        {
            "org": org_id,
            "budget": key[0],
            "start": key[1],
            "q": _micros(quantity),
            "amount": _micros(amount),
        },
    ).first()
    return None if row is None else CounterState(row[0], row[1])


def add_reserved(session: Session, *, org_id: str, key: CounterKey, delta: Decimal) -> None:
    session.execute(
        _ADD_RESERVED, {"org": org_id, "budget": key[0], "start": key[1], "q": _micros(delta)}
    )


def ensure_counters(session: Session, *, org_id: str, keys: Iterable[CounterKey]) -> None:
    rows = [
        {"org_id": org_id, "budget_id": b, "period_start": s, "spent": 0, "reserved": 0}
        for b, s in sorted(set(keys))
    ]
    if rows:
        session.execute(_insert(session, BudgetCounter).on_conflict_do_nothing(), rows)


def counters(
    session: Session, *, org_id: str, keys: Iterable[CounterKey]
) -> dict[CounterKey, CounterState]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    t = BudgetCounter
    query = select(t.budget_id, t.period_start, t.spent, t.reserved).where(
        t.org_id == org_id, t.budget_id.in_({b for b, _ in wanted})
    )
    found = {
        (b, s): CounterState(spent, reserved) for b, s, spent, reserved in session.execute(query)
    }
    return {key: found[key] for key in wanted if key in found}


def change_counters(
    session: Session, *, org_id: str, changes: dict[CounterKey, tuple[Decimal, Decimal]]
) -> dict[CounterKey, CounterState]:
    """Add (spent, reserved) to counters, creating them as needed, in key order: one upsert.
    The counters afterwards."""
    if not changes:
        return {}
    rows: list[dict[str, Any]] = [
        {"org_id": org_id, "budget_id": b, "period_start": s, "spent": ds, "reserved": dr}
        for (b, s), (ds, dr) in sorted(changes.items())
    ]
    statement = _insert(session, BudgetCounter)
    t = BudgetCounter
    statement = statement.on_conflict_do_update(
        index_elements=["org_id", "budget_id", "period_start"],
        set_={
            "spent": t.spent + statement.excluded.spent,
            "reserved": t.reserved + statement.excluded.reserved,
        },
    ).returning(t.budget_id, t.period_start, t.spent, t.reserved)
    out: dict[CounterKey, CounterState] = {}
    for row in rows:  # one at a time: RETURNING of a multi-row upsert is not kept in order
        found = session.execute(statement, row).one()
        out[(str(found[0]), row["period_start"])] = CounterState(found[2], found[3])
    return out


# ---- alerts ----


def insert_alerts(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert the alerts not raised yet (once per budget, period and threshold); their ids."""
    if not rows:
        return set()
    statement = _insert(session, BudgetAlert).on_conflict_do_nothing().returning(BudgetAlert.id)
    return {session.scalars(statement, row).one_or_none() or "" for row in rows} - {""}


def alerts_of(
    session: Session,
    *,
    org_id: str,
    budget_ids: Iterable[str] | None = None,
    since: datetime | None = None,
    open_only: bool = False,
) -> list[BudgetAlert]:
    query = select(BudgetAlert).where(BudgetAlert.org_id == org_id)
    if budget_ids is not None:
        query = query.where(BudgetAlert.budget_id.in_(list(budget_ids)))
    if since is not None:
        query = query.where(BudgetAlert.period_start >= since)
    if open_only:
        query = query.where(BudgetAlert.acknowledged_at.is_(None))
    return list(session.scalars(query.order_by(BudgetAlert.id)))


def alert(session: Session, alert_id: str) -> BudgetAlert | None:
    """Unscoped by design: the caller checks the principal's standing in its org."""
    return session.get(BudgetAlert, alert_id)


def acknowledge(session: Session, *, org_id: str, alert_id: str, by: str, at: datetime) -> bool:
    result = session.execute(
        update(BudgetAlert)
        .where(
            BudgetAlert.org_id == org_id,
            BudgetAlert.id == alert_id,
            BudgetAlert.acknowledged_at.is_(None),
        )
        .values(acknowledged_at=at, acknowledged_by=by)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# ---- prices ----


def upsert_prices(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    statement = _insert(session, Price)
    names = [
        "input_per_million", "output_per_million", "cached_input_per_million",
        "substitution_class", "imported_at",
    ]  # fmt: skip
    statement = statement.on_conflict_do_update(
        index_elements=["provider", "model", "effective_from"],
        set_={name: getattr(statement.excluded, name) for name in names},
    )
    session.execute(statement, list(rows))


def org_price_like(
    session: Session, *, org_id: str, provider: str, model: str, effective_from: datetime
) -> OrgPrice | None:
    query = select(OrgPrice).where(
        OrgPrice.org_id == org_id,
        OrgPrice.provider == provider,
        OrgPrice.model == model,
        OrgPrice.effective_from == effective_from,
    )
    return session.scalars(query).first()


def org_price(session: Session, *, org_id: str, price_id: str) -> OrgPrice | None:
    found = session.get(OrgPrice, price_id)
    return found if found is not None and found.org_id == org_id else None


# ---- settings ----


def team_settings(session: Session, *, org_id: str, team_id: str) -> TeamSpendSettings | None:
    found = session.get(TeamSpendSettings, team_id)
    return found if found is not None and found.org_id == org_id else None


# ---- the team tree ----


def team_parents(session: Session, org_id: str) -> dict[str, str | None]:
    """Each team of the org and its parent (views sum a team with the teams under it)."""
    query = select(Team.id, Team.parent_team_id).where(Team.org_id == org_id)
    return {team_id: parent for team_id, parent in session.execute(query)}


# ---- analytics: series and histograms off the rollups ----

_SERIES_SUMS = ("requests", "errors", "input_tokens", "output_tokens", "cached_input_tokens",
                "cost", "unpriced_requests")  # fmt: skip


@dataclass(frozen=True)
class SeriesRow:
    """Sums of the rollups of one hour for one combination of the grouped columns."""

    hour: datetime
    keys: tuple[str, ...]
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost: Decimal
    unpriced_requests: int


def rollup_series(
    session: Session,
    *,
    org_id: str,
    team_ids: Sequence[str] | None,
    since: datetime,
    until: datetime,
    group: Sequence[str] = (),
    hourly: bool = False,
) -> list[SeriesRow]:
    """Sums of the rollups of [since, until) per hour and per the `group` columns, in time
    order: as many rows as hours times combinations, whatever the number of calls behind
    them. Unless `hourly` (or grouped by API key), whole days come as one row per day (its
    `hour` is 00:00), from the daily rollups."""
    out = []
    width = len(group)
    for t, at, (start, end) in _sources(since, until, group, hourly=hourly):
        keys = [getattr(t, name) for name in group]
        query = (
            select(at, *keys, *(func.sum(getattr(t, name)) for name in _SERIES_SUMS))
            .where(t.org_id == org_id, at >= start, at < end)
            .group_by(at, *keys)
        )
        if team_ids is not None:
            query = query.where(t.team_id.in_(team_ids))
        for row in session.execute(query):
            values = tuple(row)
            sums = values[1 + width :]
            out.append(
                SeriesRow(
                    as_utc(values[0]),
                    tuple(str(v) for v in values[1 : 1 + width]),
                    int(sums[0] or 0),
                    int(sums[1] or 0),
                    int(sums[2] or 0),
                    int(sums[3] or 0),
                    int(sums[4] or 0),
                    Decimal(sums[5] or 0),
                    int(sums[6] or 0),
                )
            )
    out.sort(key=lambda r: (r.hour, r.keys))
    return out


def latency_histogram(
    session: Session,
    *,
    org_id: str,
    team_ids: Sequence[str] | None,
    since: datetime,
    until: datetime,
) -> list[tuple[str, str, int, int]]:
    """(provider, model, bucket, calls) of the latency histogram over [since, until)."""
    t = LlmLatencyRollup
    query = (
        select(t.provider, t.model, t.bucket, func.sum(t.requests))
        .where(t.org_id == org_id, t.hour >= since, t.hour < until)
        .group_by(t.provider, t.model, t.bucket)
        .order_by(t.provider, t.model, t.bucket)
    )
    if team_ids is not None:
        query = query.where(t.team_id.in_(team_ids))
    return [(p, m, int(b), int(n)) for p, m, b, n in session.execute(query)]


def unscoped_orgs_with_spend(session: Session, *, since: datetime) -> list[str]:
    """Unscoped by design: the anomaly detection pass visits every org that spent lately."""
    t = LlmCallRollup
    query = select(t.org_id).where(t.hour >= since).distinct().order_by(t.org_id)
    return list(session.scalars(query))


def daily_costs_by(
    session: Session, *, org_id: str, columns: Sequence[str], since: datetime, until: datetime
) -> dict[tuple[str, ...], dict[datetime, Decimal]]:
    """Cost per UTC day of [since, until) for each combination of `columns`, from the rollups
    (summed per hour in the database, per day here: the same on both databases)."""
    out: dict[tuple[str, ...], dict[datetime, Decimal]] = {}
    for row in rollup_series(
        session, org_id=org_id, team_ids=None, since=since, until=until, group=columns
    ):
        day = row.hour.replace(hour=0)
        days = out.setdefault(row.keys, {})
        days[day] = days.get(day, Decimal(0)) + row.cost
    return out


# ---- anomalies ----


def insert_anomaly(session: Session, row: dict[str, Any]) -> bool:
    """Insert an anomaly unless that subject's day has one already; whether it was inserted."""
    statement = _insert(session, SpendAnomaly).on_conflict_do_nothing().returning(SpendAnomaly.id)
    return session.scalars(statement, row).one_or_none() is not None


def anomalies_of(
    session: Session,
    *,
    org_id: str,
    team_ids: Sequence[str] | None = None,
    open_only: bool = False,
    limit: int = 500,
) -> list[SpendAnomaly]:
    """The org's anomalies (those of the teams, if named), newest day first."""
    query = select(SpendAnomaly).where(SpendAnomaly.org_id == org_id)
    if team_ids is not None:
        query = query.where(SpendAnomaly.team_id.in_(team_ids))
    if open_only:
        query = query.where(SpendAnomaly.acknowledged_at.is_(None))
    query = query.order_by(SpendAnomaly.day.desc(), SpendAnomaly.id).limit(limit)
    return list(session.scalars(query))


def anomaly(session: Session, anomaly_id: str) -> SpendAnomaly | None:
    """Unscoped by design: the caller checks the principal's standing in its org."""
    return session.get(SpendAnomaly, anomaly_id)


def acknowledge_anomaly(
    session: Session, *, org_id: str, anomaly_id: str, by: str, at: datetime
) -> bool:
    result = session.execute(
        update(SpendAnomaly)
        .where(
            SpendAnomaly.org_id == org_id,
            SpendAnomaly.id == anomaly_id,
            SpendAnomaly.acknowledged_at.is_(None),
        )
        .values(acknowledged_at=at, acknowledged_by=by)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# ---- cost centres ----


def cost_centres_of(session: Session, org_id: str) -> list[CostCentre]:
    query = select(CostCentre).where(CostCentre.org_id == org_id).order_by(CostCentre.code)
    return list(session.scalars(query))


def cost_centre(session: Session, *, org_id: str, cost_centre_id: str) -> CostCentre | None:
    found = session.get(CostCentre, cost_centre_id)
    return found if found is not None and found.org_id == org_id else None


def cost_centre_by_code(session: Session, *, org_id: str, code: str) -> CostCentre | None:
    query = select(CostCentre).where(CostCentre.org_id == org_id, CostCentre.code == code)
    return session.scalars(query).first()


def assignments_of(session: Session, org_id: str) -> dict[str, str]:
    """Each assigned team of the org and its cost centre."""
    query = select(CostCentreTeam.team_id, CostCentreTeam.cost_centre_id).where(
        CostCentreTeam.org_id == org_id
    )
    return {team_id: centre for team_id, centre in session.execute(query)}


def assign_teams(
    session: Session, *, org_id: str, cost_centre_id: str, team_ids: Sequence[str], at: datetime
) -> None:
    """Make `team_ids` exactly the cost centre's teams (moving them from any other)."""
    session.execute(
        delete(CostCentreTeam).where(
            CostCentreTeam.org_id == org_id,
            or_(
                CostCentreTeam.cost_centre_id == cost_centre_id,
                CostCentreTeam.team_id.in_(list(team_ids)),
            ),
        )
    )
    session.add_all(
        CostCentreTeam(team_id=t, org_id=org_id, cost_centre_id=cost_centre_id, assigned_at=at)
        for t in sorted(set(team_ids))
    )
    session.flush()


def team_names(session: Session, org_id: str) -> dict[str, tuple[str, str]]:
    """(slug, name) of each team of the org."""
    query = select(Team.id, Team.slug, Team.name).where(Team.org_id == org_id)
    return {team_id: (slug, name) for team_id, slug, name in session.execute(query)}


# ---- classified calls (governance's retention periods) ----


def classified_call_teams(session: Session, *, org_id: str) -> list[tuple[str, str]]:
    """The (team, classification level) pairs the org's recorded calls have."""
    query = (
        select(LlmCall.team_id, LlmCall.data_classification)
        .where(LlmCall.org_id == org_id, LlmCall.data_classification.is_not(None))
        .distinct()
    )
    return [(team_id, level) for team_id, level in session.execute(query) if level is not None]


def delete_classified_calls(
    session: Session, *, org_id: str, team_id: str, level: str, before: datetime
) -> int:
    """Delete a team's recorded calls of a classification level made before `before`; how many.
    The rollups stay: they hold totals, not the calls."""
    result = session.execute(
        delete(LlmCall).where(
            LlmCall.org_id == org_id,
            LlmCall.data_classification == level,
            LlmCall.at < before,
            LlmCall.team_id == team_id,
        )
    )
    return int(cast(Any, result).rowcount or 0)
