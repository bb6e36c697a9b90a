"""sso — SSO connections (OIDC, SAML), sign-in attempts, linked identities, SAML assertions
seen, verified domains, the SSO policy; login sessions record how they were signed in

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tenantry.kit.db

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sso_connections",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("preset", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("settings", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("client_secret_sealed", sa.Text(), nullable=True),
        sa.Column("idp_metadata_xml", sa.Text(), nullable=True),
        sa.Column("mapping", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("jit_provisioning", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("tested_revision", sa.Integer(), nullable=True),
        sa.Column("last_test", tenantry.kit.db.JSONType, nullable=True),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_sso_connections_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_sso_connections_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_connections")),
    )
    with op.batch_alter_table("sso_connections", schema=None) as batch_op:
        batch_op.create_index("ix_sso_connections_org_id", ["org_id"], unique=False)

    op.create_table(
        "sso_domains",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("verified_domain", sa.String(length=253), nullable=True),
        sa.Column("created_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("verified_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_checked_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_sso_domains_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_domains")),
        sa.UniqueConstraint("org_id", "domain", name=op.f("uq_sso_domains_org_id_domain")),
        sa.UniqueConstraint("verified_domain", name=op.f("uq_sso_domains_verified_domain")),
    )
    with op.batch_alter_table("sso_domains", schema=None) as batch_op:
        batch_op.create_index("ix_sso_domains_domain", ["domain"], unique=False)

    op.create_table(
        "sso_policies",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("enforced", sa.Boolean(), nullable=False),
        sa.Column("break_glass_user_ids", tenantry.kit.db.JSONType, nullable=False),
        sa.Column("updated_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_sso_policies_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_sso_policies")),
    )
    op.create_table(
        "sso_attempts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("lookup_hash", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=True),
        sa.Column("code_verifier", sa.String(length=128), nullable=True),
        sa.Column("verifier_hash", sa.String(length=64), nullable=True),
        sa.Column("return_to", sa.String(length=2000), nullable=True),
        sa.Column("started_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("consumed_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("handoff_hash", sa.String(length=64), nullable=True),
        sa.Column("handoff_used_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["sso_connections.id"],
            name=op.f("fk_sso_attempts_connection_id_sso_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_sso_attempts_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["started_by"],
            ["users.id"],
            name=op.f("fk_sso_attempts_started_by_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_sso_attempts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_attempts")),
        sa.UniqueConstraint("handoff_hash", name=op.f("uq_sso_attempts_handoff_hash")),
        sa.UniqueConstraint("lookup_hash", name=op.f("uq_sso_attempts_lookup_hash")),
    )
    with op.batch_alter_table("sso_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sso_attempts_connection_id"), ["connection_id"], unique=False
        )
        batch_op.create_index(
            "ix_sso_attempts_org_id_created_at", ["org_id", "created_at"], unique=False
        )

    op.create_table(
        "sso_identities",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=True),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_sign_in_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["sso_connections.id"],
            name=op.f("fk_sso_identities_connection_id_sso_connections"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_sso_identities_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_sso_identities_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_identities")),
        sa.UniqueConstraint("issuer", "subject", name=op.f("uq_sso_identities_issuer_subject")),
    )
    with op.batch_alter_table("sso_identities", schema=None) as batch_op:
        batch_op.create_index("ix_sso_identities_user_id", ["user_id"], unique=False)

    op.create_table(
        "sso_saml_assertions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("assertion_id", sa.String(length=200), nullable=False),
        sa.Column("expires_at", tenantry.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["sso_connections.id"],
            name=op.f("fk_sso_saml_assertions_connection_id_sso_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_sso_saml_assertions_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_saml_assertions")),
        sa.UniqueConstraint(
            "connection_id",
            "assertion_id",
            name=op.f("uq_sso_saml_assertions_connection_id_assertion_id"),
        ),
    )
    with op.batch_alter_table("sso_saml_assertions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sso_saml_assertions_expires_at"), ["expires_at"], unique=False
        )

    with op.batch_alter_table("login_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("method", sa.String(length=16), nullable=False, server_default="password")
        )


def downgrade() -> None:
    with op.batch_alter_table("login_sessions", schema=None) as batch_op:
        batch_op.drop_column("method")

    with op.batch_alter_table("sso_saml_assertions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sso_saml_assertions_expires_at"))

    op.drop_table("sso_saml_assertions")
    with op.batch_alter_table("sso_identities", schema=None) as batch_op:
        batch_op.drop_index("ix_sso_identities_user_id")

    op.drop_table("sso_identities")
    with op.batch_alter_table("sso_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_sso_attempts_org_id_created_at")
        batch_op.drop_index(batch_op.f("ix_sso_attempts_connection_id"))

    op.drop_table("sso_attempts")
    op.drop_table("sso_policies")
    with op.batch_alter_table("sso_domains", schema=None) as batch_op:
        batch_op.drop_index("ix_sso_domains_domain")

    op.drop_table("sso_domains")
    with op.batch_alter_table("sso_connections", schema=None) as batch_op:
        batch_op.drop_index("ix_sso_connections_org_id")

    op.drop_table("sso_connections")
