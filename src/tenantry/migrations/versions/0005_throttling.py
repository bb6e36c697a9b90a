"""throttling — rate-limit overrides and concurrent-run leases

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tenantry.kit.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_overrides",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("org_per_minute", sa.Integer(), nullable=True),
        sa.Column("org_burst", sa.Integer(), nullable=True),
        sa.Column("key_per_minute", sa.Integer(), nullable=True),
        sa.Column("key_burst", sa.Integer(), nullable=True),
        sa.Column("updated_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_rate_limit_overrides_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_rate_limit_overrides")),
    )
    op.create_table(
        "run_lease_gates",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_run_lease_gates_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_run_lease_gates")),
    )
    op.create_table(
        "run_leases",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=True),
        sa.Column("holder_type", sa.String(length=16), nullable=False),
        sa.Column("holder_id", sa.String(length=40), nullable=False),
        sa.Column("ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("acquired_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_run_leases_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_run_leases_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_leases")),
        sa.UniqueConstraint(
            "org_id", "team_id", "run_id", name=op.f("uq_run_leases_org_id_team_id_run_id")
        ),
    )
    with op.batch_alter_table("run_leases", schema=None) as batch_op:
        batch_op.create_index("ix_run_leases_expires_at", ["expires_at"], unique=False)
        batch_op.create_index(
            "ix_run_leases_org_id_expires_at", ["org_id", "expires_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_run_leases_team_id"), ["team_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("run_leases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_leases_team_id"))
        batch_op.drop_index("ix_run_leases_org_id_expires_at")
        batch_op.drop_index("ix_run_leases_expires_at")
    op.drop_table("run_leases")
    op.drop_table("run_lease_gates")
    op.drop_table("rate_limit_overrides")
