"""spend analytics — anomalies of daily spend, cost centres and the teams assigned to them

Revision ID: 0017
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tenantry.kit.db
import tenantry.metering.models

revision = "0017"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
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
