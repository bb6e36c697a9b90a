"""Who is making a request: a signed-in user, or an API key acting for its creator."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tenantry.authz.catalog import OrgRole, Permission, TeamRole


@dataclass
class Principal:
    kind: Literal["user", "api_key"]
    user_id: str
    session_id: str | None = None
    api_key_id: str | None = None
    # An API key is bound to one org, optionally one team, optionally a subset of permissions.
    key_org_id: str | None = None
    key_team_id: str | None = None
    key_permissions: frozenset[Permission] | None = None
    # Memberships read once per request.
    org_roles: dict[str, OrgRole | None] = field(default_factory=dict)
    team_roles: dict[str, TeamRole | None] = field(default_factory=dict)

    @property
    def actor_type(self) -> str:
        return self.kind

    @property
    def actor_id(self) -> str:
        return self.api_key_id if self.kind == "api_key" and self.api_key_id else self.user_id

    def audit_key(self) -> str:
        return f"{self.kind}:{self.actor_id}"
