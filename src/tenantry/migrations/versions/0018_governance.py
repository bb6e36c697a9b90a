"""governance — policies and their versions, governance configuration, approval requests,
violations

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tenantry.kit.db
import tenantry.metering.models

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["org_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_org_id_organizations"),
        ondelete="CASCADE",
    )


def _time(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, tenantry.kit.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "governance_policies",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rules", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("exceptions", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        _org_fk("governance_policies"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_policies")),
    )
    op.create_index(
        "ix_governance_policies_org_id_team_id",
        "governance_policies",
        ["org_id", "team_id"],
        unique=False,
    )
    op.create_table(
        "governance_policy_versions",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("policy_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("snapshot", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("changed_by", sa.String(length=40), nullable=True),
        _time("created_at"),
        _org_fk("governance_policy_versions"),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["governance_policies.id"],
            name=op.f("fk_governance_policy_versions_policy_id_governance_policies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "org_id", "policy_id", "version", name=op.f("pk_governance_policy_versions")
        ),
    )
    op.create_table(
        "governance_configs",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("settings", tenantry.kit.db.JSONType, nullable=False),
        _time("updated_at"),
        _org_fk("governance_configs"),
        sa.PrimaryKeyConstraint("org_id", "team_id", name=op.f("pk_governance_configs")),
    )
    op.create_table(
        "governance_approvals",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("api_key_id", sa.String(length=40), nullable=True),
        sa.Column("policy_ids", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("request", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("estimated_cost", tenantry.metering.models.Quantity(), nullable=True),
        sa.Column("approvers", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _time("created_at"),
        _time("expires_at"),
        sa.Column("decided_by", sa.String(length=40), nullable=True),
        _time("decided_at", nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        _time("used_at", nullable=True),
        _org_fk("governance_approvals"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_approvals")),
    )
    op.create_index(
        "ix_governance_approvals_org_id_status",
        "governance_approvals",
        ["org_id", "status"],
        unique=False,
    )
    op.create_table(
        "governance_violations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        _time("at"),
        sa.Column("policy_id", sa.String(length=40), nullable=False),
        sa.Column("policy_version", sa.BigInteger(), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("api_key_id", sa.String(length=40), nullable=True),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("values", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("approval_id", sa.String(length=40), nullable=True),
        _org_fk("governance_violations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_violations")),
    )
    op.create_index("ix_governance_violations_org_id_at", "governance_violations", ["org_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_governance_violations_org_id_at", table_name="governance_violations")
    op.drop_table("governance_violations")
    op.drop_index("ix_governance_approvals_org_id_status", table_name="governance_approvals")
    op.drop_table("governance_approvals")
    op.drop_table("governance_configs")
    op.drop_table("governance_policy_versions")
    op.drop_index("ix_governance_policies_org_id_team_id", table_name="governance_policies")
    op.drop_table("governance_policies")
