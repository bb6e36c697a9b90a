"""spend analytics — daily rollups of LLM calls (filled from the hourly ones), anomalies of
daily spend, cost centres and the teams assigned to them

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tenantry.kit.db
import tenantry.metering.models

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None


SUMS = (
    "requests", "errors", "input_tokens", "output_tokens", "cached_input_tokens", "cost",
    "computed_requests", "unpriced_requests", "latency_ms_sum", "latency_requests",
)  # fmt: skip
DAILY_KEY = ("org_id", "day", "team_id", "user_id", "provider", "model")


def _daily_rollups() -> None:
    op.create_table(
        "llm_call_daily_rollups",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("day", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost", tenantry.metering.models.Quantity(), nullable=False),
        sa.Column("computed_requests", sa.BigInteger(), nullable=False),
        sa.Column("unpriced_requests", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms_sum", sa.BigInteger(), nullable=False),
        sa.Column("latency_requests", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_llm_call_daily_rollups_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(*DAILY_KEY, name=op.f("pk_llm_call_daily_rollups")),
    )
    with op.batch_alter_table("llm_call_daily_rollups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_llm_call_daily_rollups_org_id_team_id_day",
            ["org_id", "team_id", "day"],
            unique=False,
        )
    # The hourly rollups recorded before this revision, summed per day (in Python: the same
    # on both databases).
    hourly = sa.table(
        "llm_call_rollups",
        sa.column("org_id", sa.String()),
        sa.column("hour", tenantry.kit.db.UTCDateTime(timezone=True)),
        sa.column("team_id", sa.String()),
        sa.column("user_id", sa.String()),
        sa.column("provider", sa.String()),
        sa.column("model", sa.String()),
        *(sa.column(n, tenantry.metering.models.Quantity() if n == "cost" else sa.BigInteger())
          for n in SUMS),
    )  # fmt: skip
    daily = sa.table(
        "llm_call_daily_rollups",
        sa.column("org_id", sa.String()),
        sa.column("day", tenantry.kit.db.UTCDateTime(timezone=True)),
        sa.column("team_id", sa.String()),
        sa.column("user_id", sa.String()),
        sa.column("provider", sa.String()),
        sa.column("model", sa.String()),
        *(sa.column(n, tenantry.metering.models.Quantity() if n == "cost" else sa.BigInteger())
          for n in SUMS),
    )  # fmt: skip
    bind = op.get_bind()
    days: dict[tuple[object, ...], dict[str, object]] = {}
    for row in bind.execute(sa.select(hourly)).mappings():
        day = row["hour"].replace(hour=0, minute=0, second=0, microsecond=0)
        key = (row["org_id"], day, row["team_id"], row["user_id"], row["provider"], row["model"])
        found = days.setdefault(
            key, dict(zip(DAILY_KEY, key, strict=True)) | dict.fromkeys(SUMS, 0)
        )
        for name in SUMS:
            found[name] += row[name]
    if days:
        bind.execute(sa.insert(daily), list(days.values()))


def upgrade() -> None:
    _daily_rollups()
    op.create_table(
        "spend_anomalies",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("day", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("value", tenantry.metering.models.Quantity(), nullable=False),
        sa.Column("baseline", tenantry.metering.models.Quantity(), nullable=False),
        sa.Column("mad", tenantry.metering.models.Quantity(), nullable=False),
        sa.Column("score", tenantry.metering.models.Quantity(), nullable=False),
        sa.Column("history_days", sa.BigInteger(), nullable=False),
        sa.Column("created_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_spend_anomalies_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spend_anomalies")),
        sa.UniqueConstraint(
            "org_id",
            "dimension",
            "team_id",
            "subject",
            "day",
            name=op.f("uq_spend_anomalies_org_id_dimension_team_id_subject_day"),
        ),
    )
    with op.batch_alter_table("spend_anomalies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_spend_anomalies_org_id"), ["org_id"], unique=False)

    op.create_table(
        "spend_cost_centres",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("created_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_spend_cost_centres_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spend_cost_centres")),
        sa.UniqueConstraint("org_id", "code", name=op.f("uq_spend_cost_centres_org_id_code")),
    )
    with op.batch_alter_table("spend_cost_centres", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_spend_cost_centres_org_id"), ["org_id"], unique=False)

    op.create_table(
        "spend_cost_centre_teams",
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("cost_centre_id", sa.String(length=40), nullable=False),
        sa.Column("assigned_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cost_centre_id"],
            ["spend_cost_centres.id"],
            name=op.f("fk_spend_cost_centre_teams_cost_centre_id_spend_cost_centres"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_spend_cost_centre_teams_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_spend_cost_centre_teams_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_spend_cost_centre_teams")),
    )
    with op.batch_alter_table("spend_cost_centre_teams", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_spend_cost_centre_teams_org_id"), ["org_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_spend_cost_centre_teams_cost_centre_id"),
            ["cost_centre_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("spend_cost_centre_teams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spend_cost_centre_teams_cost_centre_id"))
        batch_op.drop_index(batch_op.f("ix_spend_cost_centre_teams_org_id"))

    op.drop_table("spend_cost_centre_teams")
    with op.batch_alter_table("spend_cost_centres", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spend_cost_centres_org_id"))

    op.drop_table("spend_cost_centres")
    with op.batch_alter_table("spend_anomalies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spend_anomalies_org_id"))

    op.drop_table("spend_anomalies")
    with op.batch_alter_table("llm_call_daily_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_llm_call_daily_rollups_org_id_team_id_day")

    op.drop_table("llm_call_daily_rollups")
