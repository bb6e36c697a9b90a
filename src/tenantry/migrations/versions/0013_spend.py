"""spend — LLM calls and their hourly rollups, the price table (imported and per org), budgets
with their counters and alerts, teams' billing settings

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tenantry.kit.db
import tenantry.metering.models

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "llm_prices",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("effective_from", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("input_per_million", tenantry.metering.models.Quantity(), nullable=False),
        sa.Column("output_per_million", tenantry.metering.models.Quantity(), nullable=False),
        sa.Column("cached_input_per_million", tenantry.metering.models.Quantity(), nullable=True),
        sa.Column("substitution_class", sa.String(length=64), nullable=False),
        sa.Column("imported_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", "model", "effective_from", name=op.f("pk_llm_prices")),
    )
    op.create_table(
        "llm_call_rollups",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("hour", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("api_key_id", sa.String(length=40), nullable=False),
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
            name=op.f("fk_llm_call_rollups_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "org_id",
            "hour",
            "team_id",
            "user_id",
            "api_key_id",
            "provider",
            "model",
            name=op.f("pk_llm_call_rollups"),
        ),
    )
    with op.batch_alter_table("llm_call_rollups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_llm_call_rollups_org_id_team_id_hour", ["org_id", "team_id", "hour"], unique=False
        )

    op.create_table(
        "llm_calls",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("api_key_id", sa.String(length=40), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost", tenantry.metering.models.Quantity(), nullable=True),
        sa.Column("cost_source", sa.String(length=16), nullable=False),
        sa.Column("latency_ms", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_kind", sa.String(length=64), nullable=True),
        sa.Column(
            "tags",
            tenantry.kit.db.JSONType,
            nullable=False,
        ),
        sa.Column("reservation_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_llm_calls_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_llm_calls")),
    )
    with op.batch_alter_table("llm_calls", schema=None) as batch_op:
        batch_op.create_index("ix_llm_calls_org_id_at", ["org_id", "at"], unique=False)

    op.create_table(
        "llm_latency_rollups",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("hour", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_llm_latency_rollups_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "org_id",
            "hour",
            "team_id",
            "provider",
            "model",
            "bucket",
            name=op.f("pk_llm_latency_rollups"),
        ),
    )
    op.create_table(
        "llm_org_prices",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("effective_from", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("input_per_million", tenantry.metering.models.Quantity(), nullable=False),
        sa.Column("output_per_million", tenantry.metering.models.Quantity(), nullable=False),
        sa.Column("cached_input_per_million", tenantry.metering.models.Quantity(), nullable=True),
        sa.Column("substitution_class", sa.String(length=64), nullable=False),
        sa.Column("created_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_llm_org_prices_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_org_prices")),
        sa.UniqueConstraint(
            "org_id",
            "provider",
            "model",
            "effective_from",
            name=op.f("uq_llm_org_prices_org_id_provider_model_effective_from"),
        ),
    )
    with op.batch_alter_table("llm_org_prices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_llm_org_prices_org_id"), ["org_id"], unique=False)

    op.create_table(
        "spend_budgets",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("api_key_id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("amount", tenantry.metering.models.Quantity(), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column(
            "thresholds",
            tenantry.kit.db.JSONType,
            nullable=False,
        ),
        sa.Column("exceeded_action", sa.String(length=16), nullable=False),
        sa.Column("created_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_spend_budgets_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spend_budgets")),
        sa.UniqueConstraint(
            "org_id",
            "scope",
            "team_id",
            "user_id",
            "api_key_id",
            "provider",
            "model",
            "period",
            name=op.f(
                "uq_spend_budgets_org_id_scope_team_id_user_id_api_key_id_provider_model_period"
            ),
        ),
    )
    with op.batch_alter_table("spend_budgets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_spend_budgets_org_id"), ["org_id"], unique=False)

    op.create_table(
        "spend_budget_alerts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("budget_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("period_start", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("spent", tenantry.metering.models.Quantity(), nullable=False),
        sa.Column("amount", tenantry.metering.models.Quantity(), nullable=False),
        sa.Column("created_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["budget_id"],
            ["spend_budgets.id"],
            name=op.f("fk_spend_budget_alerts_budget_id_spend_budgets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_spend_budget_alerts_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spend_budget_alerts")),
        sa.UniqueConstraint(
            "org_id",
            "budget_id",
            "period_start",
            "threshold",
            name=op.f("uq_spend_budget_alerts_org_id_budget_id_period_start_threshold"),
        ),
    )
    op.create_table(
        "spend_budget_counters",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("budget_id", sa.String(length=40), nullable=False),
        sa.Column("period_start", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("spent", tenantry.metering.models.Quantity(), nullable=False),
        sa.Column("reserved", tenantry.metering.models.Quantity(), nullable=False),
        sa.ForeignKeyConstraint(
            ["budget_id"],
            ["spend_budgets.id"],
            name=op.f("fk_spend_budget_counters_budget_id_spend_budgets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_spend_budget_counters_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "org_id", "budget_id", "period_start", name=op.f("pk_spend_budget_counters")
        ),
    )
    op.create_table(
        "spend_team_settings",
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column(
            "cost_allocation",
            tenantry.kit.db.JSONType,
            nullable=False,
        ),
        sa.Column(
            "reporting",
            tenantry.kit.db.JSONType,
            nullable=False,
        ),
        sa.Column("updated_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_spend_team_settings_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_spend_team_settings_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_spend_team_settings")),
    )
    with op.batch_alter_table("spend_team_settings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_spend_team_settings_org_id"), ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("spend_team_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spend_team_settings_org_id"))

    op.drop_table("spend_team_settings")
    op.drop_table("spend_budget_counters")
    op.drop_table("spend_budget_alerts")
    with op.batch_alter_table("spend_budgets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spend_budgets_org_id"))

    op.drop_table("spend_budgets")
    with op.batch_alter_table("llm_org_prices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_llm_org_prices_org_id"))

    op.drop_table("llm_org_prices")
    op.drop_table("llm_latency_rollups")
    with op.batch_alter_table("llm_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_llm_calls_org_id_at")

    op.drop_table("llm_calls")
    with op.batch_alter_table("llm_call_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_llm_call_rollups_org_id_team_id_hour")

    op.drop_table("llm_call_rollups")
    op.drop_table("llm_prices")
