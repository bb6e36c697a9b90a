"""plan catalog — the catalog as data, seeded with the shipped plans, and its version

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import tenantry.kit.db
from tenantry.plans.catalog import PLANS, UPGRADE_PATH
from tenantry.plans.live import row_values

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    catalog = op.create_table(
        "plan_catalog",
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("monthly_price", sa.String(length=32), nullable=False),
        sa.Column("yearly_price", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("quotas", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("rate_limits", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("overage_rates", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("audit_retention_days", sa.Integer(), nullable=False),
        sa.Column("upgrade_to", sa.String(length=32), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("updated_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_plan_catalog")),
    )
    version = op.create_table(
        "plan_catalog_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_catalog_version")),
    )
    # Seeded with the shipped catalog, as the operators then edit it.
    now = datetime.now(UTC)
    op.bulk_insert(
        catalog,
        [
            {**row_values(plan, upgrade_to=UPGRADE_PATH.get(key), position=n), "updated_at": now}
            for n, (key, plan) in enumerate(PLANS.items())
        ],
    )
    op.bulk_insert(version, [{"id": 1, "version": 1}])


def downgrade() -> None:
    op.drop_table("plan_catalog_version")
    op.drop_table("plan_catalog")
