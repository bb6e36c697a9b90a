"""scim — SCIM tokens, the org's provisioning rules, the directory's users and groups, and the
people it suspended

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tenantry.kit.db

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["org_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_org_id_organizations"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    when = tenantry.kit.db.UTCDateTime(timezone=True)
    op.create_table(
        "scim_tokens",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("display_prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.Column("last_used_at", when, nullable=True),
        sa.Column("revoked_at", when, nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_scim_tokens_created_by_users"),
            ondelete="SET NULL",
        ),
        _org_fk("scim_tokens"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scim_tokens")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_scim_tokens_secret_hash")),
    )
    op.create_index(
        "ix_scim_tokens_org_id_created_at", "scim_tokens", ["org_id", "created_at"], unique=False
    )
    op.create_table(
        "scim_settings",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("mapping", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("updated_at", when, nullable=False),
        _org_fk("scim_settings"),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_scim_settings")),
    )
    op.create_table(
        "scim_users",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("user_name", sa.String(length=300), nullable=False),
        sa.Column("user_name_key", sa.String(length=300), nullable=False),
        sa.Column("external_id", sa.String(length=300), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("attributes", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("updated_at", when, nullable=False),
        _org_fk("scim_users"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_scim_users_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scim_users")),
        sa.UniqueConstraint(
            "org_id", "user_name_key", name=op.f("uq_scim_users_org_id_user_name_key")
        ),
        sa.UniqueConstraint("org_id", "user_id", name=op.f("uq_scim_users_org_id_user_id")),
    )
    op.create_index(
        "ix_scim_users_org_id_external_id", "scim_users", ["org_id", "external_id"], unique=False
    )
    op.create_index("ix_scim_users_user_id", "scim_users", ["user_id"], unique=False)
    op.create_table(
        "scim_groups",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("display_name", sa.String(length=300), nullable=False),
        sa.Column("display_name_key", sa.String(length=300), nullable=False),
        sa.Column("external_id", sa.String(length=300), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("updated_at", when, nullable=False),
        _org_fk("scim_groups"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scim_groups")),
        sa.UniqueConstraint(
            "org_id", "display_name_key", name=op.f("uq_scim_groups_org_id_display_name_key")
        ),
    )
    op.create_table(
        "scim_group_members",
        sa.Column("group_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("display", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["scim_groups.id"],
            name=op.f("fk_scim_group_members_group_id_scim_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["scim_users.id"],
            name=op.f("fk_scim_group_members_member_id_scim_users"),
            ondelete="CASCADE",
        ),
        _org_fk("scim_group_members"),
        sa.PrimaryKeyConstraint("group_id", "member_id", name=op.f("pk_scim_group_members")),
    )
    op.create_index(
        "ix_scim_group_members_org_id_member_id",
        "scim_group_members",
        ["org_id", "member_id"],
        unique=False,
    )
    op.create_table(
        "scim_suspensions",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", when, nullable=False),
        _org_fk("scim_suspensions"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_scim_suspensions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "user_id", name=op.f("pk_scim_suspensions")),
    )


def downgrade() -> None:
    op.drop_table("scim_suspensions")
    op.drop_index("ix_scim_group_members_org_id_member_id", table_name="scim_group_members")
    op.drop_table("scim_group_members")
    op.drop_table("scim_groups")
    op.drop_index("ix_scim_users_user_id", table_name="scim_users")
    op.drop_index("ix_scim_users_org_id_external_id", table_name="scim_users")
    op.drop_table("scim_users")
    op.drop_table("scim_settings")
    op.drop_index("ix_scim_tokens_org_id_created_at", table_name="scim_tokens")
    op.drop_table("scim_tokens")
