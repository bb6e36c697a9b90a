"""operators — the deployment's operators (users flagged above every org)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tenantry.kit.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_operators_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_operators")),
    )


def downgrade() -> None:
    op.drop_table("operators")
