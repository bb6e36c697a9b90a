"""data classification — each recorded LLM call keeps the classification level it was made
under, so a level's retention period can purge its calls

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("llm_calls") as batch:
        batch.add_column(sa.Column("data_classification", sa.String(length=64), nullable=True))
        batch.create_index(
            "ix_llm_calls_org_id_data_classification_at",
            ["org_id", "data_classification", "at"],
        )


def downgrade() -> None:
    with op.batch_alter_table("llm_calls") as batch:
        batch.drop_index("ix_llm_calls_org_id_data_classification_at")
        batch.drop_column("data_classification")
