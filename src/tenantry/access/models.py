"""Tables of access control. Every tenant-owned table leads with `org_id`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.kit.db import Base, JSONType, UTCDateTime
from tenantry.kit.stamps import track


class CustomRole(Base):
    """A role an org defines: a set of catalog permissions, plus the roles it inherits from
    (built-in names or other custom roles' ids)."""

    __tablename__ = "access_roles"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    permissions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    inherits: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "permissions": sorted(self.permissions),
            "inherits": list(self.inherits),
        }


class Grant(Base):
    """A subject (user, team, API key) given a role or a set of permissions on a resource (a
    whole team, one team-owned resource, or every resource of a type in a team), perhaps until
    `expires_at`."""

    __tablename__ = "access_grants"
    __table_args__ = (
        UniqueConstraint(
            "org_id",
            "subject_type",
            "subject_id",
            "resource_type",
            "resource_id",
            name="uq_access_grants_subject_resource",
        ),
        Index("ix_access_grants_org_id_resource", "org_id", "resource_type", "resource_id"),
        Index("ix_access_grants_org_id_team_id", "org_id", "team_id"),
        Index("ix_access_grants_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(40))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(40))
    role: Mapped[str | None] = mapped_column(String(40), nullable=True)
    permissions: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    granted_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set by the worker once it has recorded the `grant.expired` event (so it records it once).
    expiry_recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    def describe(self) -> dict[str, Any]:
        return {
            "subject": f"{self.subject_type}:{self.subject_id}",
            "resource": f"{self.resource_type}:{self.resource_id}",
            "team_id": self.team_id,
            "role": self.role,
            "permissions": sorted(self.permissions) if self.permissions is not None else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


class GrantTemplate(Base):
    """A named bundle — a role or permissions, a resource pattern and a duration — applied to
    many subjects at once."""

    __tablename__ = "access_grant_templates"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    role: Mapped[str | None] = mapped_column(String(40), nullable=True)
    permissions: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    resource_type: Mapped[str] = mapped_column(String(32))
    # None: named when the template is applied; "*": every resource of the type in the team.
    resource_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    duration_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# What decides an org's requests (see `kit.stamps`).
track(CustomRole)
track(
    Grant,
    deciding=frozenset(
        {"subject_type", "subject_id", "resource_type", "resource_id", "team_id"}
        | {"role", "permissions", "expires_at"}
    ),
)
