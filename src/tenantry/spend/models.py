"""Tables of spend. Every tenant-owned table leads with `org_id`.

An LLM call is written once (`llm_calls`, append-only) and kept current, in the same transaction,
as hourly rollups per (team, member, API key, provider, model), which every cost view reads; a
latency histogram per (hour, team, provider, model) beside them gives percentiles without raw
rows. In rollups "none" is the empty string, as in metering's. Money is in US dollars, stored as
integer millionths (metering's `Quantity`), so sums are exact on both databases.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.kit.db import Base, JSONType, UTCDateTime
from tenantry.kit.stamps import track
from tenantry.metering.models import Quantity


def _org_fk() -> ForeignKey:
    return ForeignKey("organizations.id", ondelete="CASCADE")


class CostSource(StrEnum):
    CALLER = "caller"  # the caller sent the cost
    COMPUTED = "computed"  # priced from the price table
    UNPRICED = "unpriced"  # no price and no cost sent: shown as such, never as $0


class LlmCall(Base):
    """One LLM call as reported; never updated."""

    __tablename__ = "llm_calls"
    __table_args__ = (
        Index("ix_llm_calls_org_id_at", "org_id", "at"),
        # A classification level's retention purge (governance) finds its calls by it.
        Index("ix_llm_calls_org_id_data_classification_at", "org_id", "data_classification", "at"),
    )

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    # The caller's id for the call: reporting it again records nothing.
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Plain ids, not foreign keys: spend stays history when a team, member or key is gone.
    team_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    api_key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    input_tokens: Mapped[int] = mapped_column(BigInteger)  # cached ones included
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_input_tokens: Mapped[int] = mapped_column(BigInteger)
    cost: Mapped[Decimal | None] = mapped_column(Quantity(), nullable=True)  # None: unpriced
    cost_source: Mapped[str] = mapped_column(String(16))
    latency_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # "success" | "error"
    error_kind: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tags: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    reservation_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # The classification level the caller reported (governance's levels; a label here).
    data_classification: Mapped[str | None] = mapped_column(String(64), nullable=True)


class LlmCallRollup(Base):
    """LLM calls of one hour for one (team, member, key, provider, model); "" means none.
    Usage recorded on the LLM meters without a call (a settle, a usage event) is added here too,
    each `llm_cost_usd` event as one request."""

    __tablename__ = "llm_call_rollups"
    __table_args__ = (
        Index("ix_llm_call_rollups_org_id_team_id_hour", "org_id", "team_id", "hour"),
    )

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_input_tokens: Mapped[int] = mapped_column(BigInteger)
    cost: Mapped[Decimal] = mapped_column(Quantity())
    computed_requests: Mapped[int] = mapped_column(BigInteger)  # cost from the price table
    unpriced_requests: Mapped[int] = mapped_column(BigInteger)
    latency_ms_sum: Mapped[int] = mapped_column(BigInteger)
    latency_requests: Mapped[int] = mapped_column(BigInteger)  # calls that reported a latency


class LlmCallDailyRollup(Base):
    """The hourly rollups of one UTC day for one (team, member, provider, model), keys aside:
    written with them in the same transaction, so a view over whole days reads at most days x
    (members x models) rows however many calls and keys are behind them."""

    __tablename__ = "llm_call_daily_rollups"
    __table_args__ = (
        Index("ix_llm_call_daily_rollups_org_id_team_id_day", "org_id", "team_id", "day"),
    )

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    day: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_input_tokens: Mapped[int] = mapped_column(BigInteger)
    cost: Mapped[Decimal] = mapped_column(Quantity())
    computed_requests: Mapped[int] = mapped_column(BigInteger)
    unpriced_requests: Mapped[int] = mapped_column(BigInteger)
    latency_ms_sum: Mapped[int] = mapped_column(BigInteger)
    latency_requests: Mapped[int] = mapped_column(BigInteger)


class LlmLatencyRollup(Base):
    """How many calls of one hour for one (team, provider, model) took a latency within one
    bucket of `spend.latency.BUCKETS_MS`: a histogram that adds up across hours and teams."""

    __tablename__ = "llm_latency_rollups"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)


class Price(Base):
    """A price the deployment's operators imported (`tenantry prices import FILE`), over the
    shipped list: $ per million tokens, from a date on."""

    __tablename__ = "llm_prices"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    input_per_million: Mapped[Decimal] = mapped_column(Quantity())
    output_per_million: Mapped[Decimal] = mapped_column(Quantity())
    cached_input_per_million: Mapped[Decimal | None] = mapped_column(Quantity(), nullable=True)
    substitution_class: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OrgPrice(Base):
    """An org's own rate for a model (a negotiated discount), over the deployment's."""

    __tablename__ = "llm_org_prices"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(_org_fk(), index=True)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime())
    input_per_million: Mapped[Decimal] = mapped_column(Quantity())
    output_per_million: Mapped[Decimal] = mapped_column(Quantity())
    cached_input_per_million: Mapped[Decimal | None] = mapped_column(Quantity(), nullable=True)
    substitution_class: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("org_id", "provider", "model", "effective_from"),)


class BudgetScope(StrEnum):
    ORG = "org"
    TEAM = "team"  # the team and every team under it
    MEMBER = "member"  # one member's calls in a team (and the teams under it)
    API_KEY = "api_key"


class BudgetPeriod(StrEnum):
    DAY = "day"
    WEEK = "week"  # ISO weeks, from Monday 00:00 UTC
    MONTH = "month"


class ExceededAction(StrEnum):
    NOTIFY = "notify"  # alert, never refuse
    RESTRICT = "restrict"  # admission refuses what would pass the amount


class Budget(Base):
    """An amount of LLM spend per period for an org, a team, a member or a key, optionally for
    one provider or model only. "" means none in the target columns (one unique key)."""

    __tablename__ = "spend_budgets"
    __table_args__ = (
        UniqueConstraint(
            "org_id", "scope", "team_id", "user_id", "api_key_id", "provider", "model", "period"
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(_org_fk(), index=True)
    name: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(16))
    team_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(String(40))
    api_key_id: Mapped[str] = mapped_column(String(40))
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    amount: Mapped[Decimal] = mapped_column(Quantity())
    period: Mapped[str] = mapped_column(String(8))
    thresholds: Mapped[list[int]] = mapped_column(JSONType)  # warning percentages, 1-100
    exceeded_action: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# Budgets decide admissions: any change bumps the org's version stamp, and every process drops
# the budgets it kept for the org.
track(Budget)


class BudgetCounter(Base):
    """What a budget's period has spent, and what admissions hold against it."""

    __tablename__ = "spend_budget_counters"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    budget_id: Mapped[str] = mapped_column(
        ForeignKey("spend_budgets.id", ondelete="CASCADE"), primary_key=True
    )
    period_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    spent: Mapped[Decimal] = mapped_column(Quantity())
    reserved: Mapped[Decimal] = mapped_column(Quantity())


class AlertKind(StrEnum):
    WARNING = "budget_warning"  # a warning threshold reached
    EXCEEDED = "budget_exceeded"  # the whole amount spent


class BudgetAlert(Base):
    """A budget's period reached one of its thresholds; raised once per threshold and period."""

    __tablename__ = "spend_budget_alerts"
    __table_args__ = (UniqueConstraint("org_id", "budget_id", "period_start", "threshold"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(_org_fk())
    budget_id: Mapped[str] = mapped_column(ForeignKey("spend_budgets.id", ondelete="CASCADE"))
    team_id: Mapped[str] = mapped_column(String(40))  # the budget's team ("" for org or key)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    threshold: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(24))
    spent: Mapped[Decimal] = mapped_column(Quantity())
    amount: Mapped[Decimal] = mapped_column(Quantity())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(40), nullable=True)


class TeamSpendSettings(Base):
    """A team's billing settings besides its budget (seed 001's `cost_allocation` and
    `reporting`), kept for the reports and chargeback built on them."""

    __tablename__ = "spend_team_settings"

    team_id: Mapped[str] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[str] = mapped_column(_org_fk(), index=True)
    cost_allocation: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    reporting: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AnomalyDimension(StrEnum):
    TEAM = "team"
    MEMBER = "member"  # one member's spend in one team
    API_KEY = "api_key"
    MODEL = "model"  # one provider's model in one team


class SpendAnomaly(Base):
    """A day whose cost for one team, member, key or model stood far above its baseline; raised
    once per subject and day, with what it was measured against."""

    __tablename__ = "spend_anomalies"
    __table_args__ = (UniqueConstraint("org_id", "dimension", "team_id", "subject", "day"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(_org_fk(), index=True)
    dimension: Mapped[str] = mapped_column(String(16))
    team_id: Mapped[str] = mapped_column(String(40))  # "" for an API key's (org-wide)
    subject: Mapped[str] = mapped_column(String(200))  # team, user or key id; provider/model
    day: Mapped[datetime] = mapped_column(UTCDateTime())  # 00:00 UTC of the day
    value: Mapped[Decimal] = mapped_column(Quantity())  # the day's cost when detected
    baseline: Mapped[Decimal] = mapped_column(Quantity())  # median daily cost before it
    mad: Mapped[Decimal] = mapped_column(Quantity())  # median absolute deviation of those days
    score: Mapped[Decimal] = mapped_column(Quantity())
    history_days: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(40), nullable=True)


class CostCentre(Base):
    """A unit of the org that LLM spend is charged back to; teams are assigned to one."""

    __tablename__ = "spend_cost_centres"
    __table_args__ = (UniqueConstraint("org_id", "code"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(_org_fk(), index=True)
    name: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(64))  # the finance system's own code
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CostCentreTeam(Base):
    """A team's cost centre (one at most): its spend, with its sub-teams', is charged there."""

    __tablename__ = "spend_cost_centre_teams"

    team_id: Mapped[str] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[str] = mapped_column(_org_fk(), index=True)
    cost_centre_id: Mapped[str] = mapped_column(
        ForeignKey("spend_cost_centres.id", ondelete="CASCADE"), index=True
    )
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime())
