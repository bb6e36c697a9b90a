"""metering — meters, usage events, rollups, quotas, admission

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tenantry.kit.db
import tenantry.metering.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC_DATETIME = tenantry.kit.db.UTCDateTime(timezone=True)


def _quantity() -> tenantry.metering.models.Quantity:
    return tenantry.metering.models.Quantity()


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["org_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_org_id_organizations"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("meter", sa.String(length=64), nullable=False),
        sa.Column("quantity", _quantity(), nullable=False),
        sa.Column("timestamp", UTC_DATETIME, nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=True),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("api_key_id", sa.String(length=40), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("dimensions", tenantry.kit.db.JSONType, nullable=False),
        _org_fk("usage_events"),
        sa.PrimaryKeyConstraint("org_id", "event_id", name=op.f("pk_usage_events")),
    )
    op.create_table(
        "usage_rollups",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("hour", UTC_DATETIME, nullable=False),
        sa.Column("meter", sa.String(length=64), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("quantity", _quantity(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("max_quantity", _quantity(), nullable=False),
        sa.Column("last_quantity", _quantity(), nullable=False),
        sa.Column("last_at", UTC_DATETIME, nullable=False),
        sa.Column("weighted", _quantity(), nullable=False),
        _org_fk("usage_rollups"),
        sa.PrimaryKeyConstraint(
            "org_id",
            "hour",
            "meter",
            "team_id",
            "user_id",
            "provider",
            "model",
            name=op.f("pk_usage_rollups"),
        ),
    )
    op.create_index(
        "ix_usage_rollups_org_id_team_id_hour",
        "usage_rollups",
        ["org_id", "team_id", "hour"],
        unique=False,
    )
    op.create_table(
        "usage_counters",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("meter", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("period_start", UTC_DATETIME, nullable=False),
        sa.Column("used", _quantity(), nullable=False),
        sa.Column("reserved", _quantity(), nullable=False),
        _org_fk("usage_counters"),
        sa.PrimaryKeyConstraint(
            "org_id", "meter", "period", "period_start", name=op.f("pk_usage_counters")
        ),
    )
    op.create_table(
        "usage_unique_values",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("meter", sa.String(length=64), nullable=False),
        sa.Column("period_start", UTC_DATETIME, nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        _org_fk("usage_unique_values"),
        sa.PrimaryKeyConstraint(
            "org_id", "meter", "period_start", "value", name=op.f("pk_usage_unique_values")
        ),
    )
    op.create_table(
        "usage_reservations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("api_key_id", sa.String(length=40), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("estimate", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("holds", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("settled_at", UTC_DATETIME, nullable=True),
        sa.Column("usage", tenantry.kit.db.JSONType, nullable=True),
        _org_fk("usage_reservations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_reservations")),
    )
    op.create_index(
        "ix_usage_reservations_org_id_status_expires_at",
        "usage_reservations",
        ["org_id", "status", "expires_at"],
        unique=False,
    )
    op.create_index(
        "ix_usage_reservations_status_expires_at",
        "usage_reservations",
        ["status", "expires_at"],
        unique=False,
    )
    op.create_table(
        "quota_alerts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("quota_key", sa.String(length=64), nullable=False),
        sa.Column("period_start", UTC_DATETIME, nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=False),
        sa.Column("used", _quantity(), nullable=False),
        sa.Column("limit", _quantity(), nullable=False),
        sa.Column("enforcement", sa.String(length=8), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        _org_fk("quota_alerts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_alerts")),
        sa.UniqueConstraint(
            "org_id",
            "quota_key",
            "period_start",
            "threshold",
            name=op.f("uq_quota_alerts_org_id_quota_key_period_start_threshold"),
        ),
    )
    op.create_table(
        "quota_locks",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("quota_key", sa.String(length=64), nullable=False),
        _org_fk("quota_locks"),
        sa.PrimaryKeyConstraint("org_id", "quota_key", name=op.f("pk_quota_locks")),
    )
    op.create_table(
        "plan_overrides",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("quotas", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("rate_limits", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("overage_rates", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        _org_fk("plan_overrides"),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_plan_overrides")),
    )


def downgrade() -> None:
    op.drop_table("plan_overrides")
    op.drop_table("quota_locks")
    op.drop_table("quota_alerts")
    op.drop_index("ix_usage_reservations_status_expires_at", table_name="usage_reservations")
    op.drop_index("ix_usage_reservations_org_id_status_expires_at", table_name="usage_reservations")
    op.drop_table("usage_reservations")
    op.drop_table("usage_unique_values")
    op.drop_table("usage_counters")
    op.drop_index("ix_usage_rollups_org_id_team_id_hour", table_name="usage_rollups")
    op.drop_table("usage_rollups")
    op.drop_table("usage_events")
