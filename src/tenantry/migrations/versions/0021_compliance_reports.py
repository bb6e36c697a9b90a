"""compliance reports — generated reports, monthly schedules, the register of data-subject
requests

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tenantry.kit.db

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["org_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_org_id_organizations"),
        ondelete="CASCADE",
    )


def _time(name: str) -> sa.Column[object]:
    return sa.Column(name, tenantry.kit.db.UTCDateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "compliance_reports",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("framework", sa.String(length=16), nullable=False),
        _time("period_start"),
        _time("period_end"),
        _time("generated_at"),
        sa.Column("generated_by", sa.String(length=40), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("schedule_key", sa.String(length=32), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("body", tenantry.kit.db.JSONType, nullable=False),
        _org_fk("compliance_reports"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_reports")),
    )
    op.create_index(
        "ix_compliance_reports_org_id_generated_at",
        "compliance_reports",
        ["org_id", "generated_at"],
    )
    op.create_index(
        "uq_compliance_reports_org_id_schedule_key",
        "compliance_reports",
        ["org_id", "schedule_key"],
        unique=True,
    )
    op.create_table(
        "compliance_schedules",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("frameworks", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("recipients", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("updated_by", sa.String(length=40), nullable=True),
        _time("updated_at"),
        _org_fk("compliance_schedules"),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_compliance_schedules")),
    )
    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("requested_by", sa.String(length=40), nullable=True),
        _time("at"),
        _org_fk("privacy_requests"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_requests")),
    )
    op.create_index("ix_privacy_requests_org_id_at", "privacy_requests", ["org_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_privacy_requests_org_id_at", table_name="privacy_requests")
    op.drop_table("privacy_requests")
    op.drop_table("compliance_schedules")
    op.drop_index("uq_compliance_reports_org_id_schedule_key", table_name="compliance_reports")
    op.drop_index("ix_compliance_reports_org_id_generated_at", table_name="compliance_reports")
    op.drop_table("compliance_reports")
