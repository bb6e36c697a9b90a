"""Tables of SCIM provisioning. Every tenant-owned table leads with `org_id`.

A SCIM user is the directory's record of a person: its attributes as the directory sent them
(so what it reads back is what it wrote), and the Tenantry account it stands for once it names
an email. A SCIM group is a name the mapping rules match; its members are SCIM users.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.kit.db import Base, JSONType, UTCDateTime


class ScimToken(Base):
    """A bearer token a directory presents; it names the org. Stored as a hash only."""

    __tablename__ = "scim_tokens"
    __table_args__ = (Index("ix_scim_tokens_org_id_created_at", "org_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    display_prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ScimSettings(Base):
    """The org's mapping rules for provisioned people (`sso.mapping.MappingRules`): which org
    role and teams a person gets from the groups the directory puts them in."""

    __tablename__ = "scim_settings"

    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    mapping: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScimUser(Base):
    __tablename__ = "scim_users"
    __table_args__ = (
        UniqueConstraint("org_id", "user_name_key"),
        UniqueConstraint("org_id", "user_id"),
        Index("ix_scim_users_org_id_external_id", "org_id", "external_id"),
        Index("ix_scim_users_user_id", "user_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # The Tenantry account, once the record names an email; its deletion (erasure) takes the
    # directory's record of the person with it.
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    user_name: Mapped[str] = mapped_column(String(300))
    # userName compared as SCIM compares it (case-insensitively): unique in the org.
    user_name_key: Mapped[str] = mapped_column(String(300))
    external_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The resource as the directory last wrote it, without id, meta and groups.
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScimGroup(Base):
    __tablename__ = "scim_groups"
    __table_args__ = (UniqueConstraint("org_id", "display_name_key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    display_name: Mapped[str] = mapped_column(String(300))
    # The mapping rules name groups by displayName, so two groups of an org cannot share one.
    display_name_key: Mapped[str] = mapped_column(String(300))
    external_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScimGroupMember(Base):
    __tablename__ = "scim_group_members"
    __table_args__ = (Index("ix_scim_group_members_org_id_member_id", "org_id", "member_id"),)

    group_id: Mapped[str] = mapped_column(
        ForeignKey("scim_groups.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[str] = mapped_column(
        ForeignKey("scim_users.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # The member's name as the directory gave it in the group, if it gave one.
    display: Mapped[str | None] = mapped_column(String(300), nullable=True)


class ScimSuspension(Base):
    """A person the directory deactivated or deleted: they cannot join the org again (by an
    invitation or an SSO sign-in) until the directory reactivates or re-creates them."""

    __tablename__ = "scim_suspensions"

    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
