"""access control — custom roles, grants, templates

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tenantry.kit.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "access_versions",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_access_versions_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_access_versions")),
    )
    op.create_table(
        "access_roles",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("permissions", JSON, nullable=False),
        sa.Column("inherits", JSON, nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_access_roles_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_roles")),
        sa.UniqueConstraint("org_id", "name", name=op.f("uq_access_roles_org_id_name")),
    )
    op.create_table(
        "access_grants",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=True),
        sa.Column("permissions", JSON, nullable=True),
        sa.Column("expires_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("granted_by", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expiry_recorded_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_access_grants_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_access_grants_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_grants")),
        sa.UniqueConstraint(
            "org_id",
            "subject_type",
            "subject_id",
            "resource_type",
            "resource_id",
            name="uq_access_grants_subject_resource",
        ),
    )
    with op.batch_alter_table("access_grants", schema=None) as batch_op:
        batch_op.create_index("ix_access_grants_expires_at", ["expires_at"], unique=False)
        batch_op.create_index(
            "ix_access_grants_org_id_resource",
            ["org_id", "resource_type", "resource_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_access_grants_org_id_team_id", ["org_id", "team_id"], unique=False
        )
    op.create_table(
        "access_grant_templates",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=True),
        sa.Column("permissions", JSON, nullable=True),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=40), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_access_grant_templates_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_grant_templates")),
        sa.UniqueConstraint("org_id", "name", name=op.f("uq_access_grant_templates_org_id_name")),
    )
    # Custom roles' ids (`role_…`) are longer than the built-in names the columns were made for.
    with op.batch_alter_table("team_memberships", schema=None) as batch_op:
        batch_op.alter_column(
            "role", existing_type=sa.String(length=16), type_=sa.String(length=40)
        )
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.alter_column(
            "role", existing_type=sa.String(length=16), type_=sa.String(length=40)
        )


def downgrade() -> None:
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.alter_column(
            "role", existing_type=sa.String(length=40), type_=sa.String(length=16)
        )
    with op.batch_alter_table("team_memberships", schema=None) as batch_op:
        batch_op.alter_column(
            "role", existing_type=sa.String(length=40), type_=sa.String(length=16)
        )
    op.drop_table("access_grant_templates")
    with op.batch_alter_table("access_grants", schema=None) as batch_op:
        batch_op.drop_index("ix_access_grants_org_id_team_id")
        batch_op.drop_index("ix_access_grants_org_id_resource")
        batch_op.drop_index("ix_access_grants_expires_at")
    op.drop_table("access_grants")
    op.drop_table("access_roles")
    op.drop_table("access_versions")
