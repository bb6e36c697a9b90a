"""The one authorization function. Every endpoint reaches it through the typed dependencies in
`access.dependencies`; services call it again for rules that depend on the resource.

Answers: 404 when the principal has no standing in the org at all (never reveal another tenant's
things), 403 with the missing permission inside one's own tenant.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from tenantry.access import repository
from tenantry.access.catalog import (
    ORG_MEMBER_PERMISSIONS,
    ORG_ROLE_AS_TEAM_ROLE,
    TEAM_ROLE_PERMISSIONS,
    OrgRole,
    Permission,
    TeamRole,
    org_role_permissions,
)
from tenantry.access.principal import Principal
from tenantry.kit.errors import Forbidden, NotFound


def org_role(session: Session, principal: Principal, org_id: str) -> OrgRole | None:
    if org_id not in principal.org_roles:
        raw = repository.org_role_of(session, org_id=org_id, user_id=principal.user_id)
        principal.org_roles[org_id] = OrgRole(raw) if raw else None
    return principal.org_roles[org_id]


def team_role(
    session: Session, principal: Principal, *, org_id: str, team_id: str
) -> TeamRole | None:
    if team_id not in principal.team_roles:
        raw = repository.team_role_of(
            session, org_id=org_id, team_id=team_id, user_id=principal.user_id
        )
        principal.team_roles[team_id] = TeamRole(raw) if raw else None
    return principal.team_roles[team_id]


def is_in_org(session: Session, principal: Principal, org_id: str) -> bool:
    """Whether the principal may know the org exists at all."""
    if principal.kind == "api_key" and principal.key_org_id != org_id:
        return False
    return org_role(session, principal, org_id) is not None


def _limit_to_key(principal: Principal, granted: frozenset[Permission]) -> frozenset[Permission]:
    if principal.key_permissions is not None:
        return granted & principal.key_permissions
    return granted


def org_permissions(session: Session, principal: Principal, org_id: str) -> frozenset[Permission]:
    if not is_in_org(session, principal, org_id):
        return frozenset()
    role = org_role(session, principal, org_id)
    granted = org_role_permissions(role) if role else frozenset()
    if principal.kind == "api_key" and principal.key_team_id is not None:
        # A team-bound key may look at its org but act only inside its team.
        granted = granted & ORG_MEMBER_PERMISSIONS
    return _limit_to_key(principal, granted)


def team_permissions(
    session: Session, principal: Principal, *, org_id: str, team_id: str
) -> frozenset[Permission]:
    if not is_in_org(session, principal, org_id):
        return frozenset()
    if principal.kind == "api_key" and principal.key_team_id not in (None, team_id):
        return frozenset()
    granted: frozenset[Permission] = ORG_MEMBER_PERMISSIONS
    role = org_role(session, principal, org_id)
    as_team = ORG_ROLE_AS_TEAM_ROLE[role] if role else None
    if as_team is not None:
        granted = granted | TEAM_ROLE_PERMISSIONS[as_team]
    member_role = team_role(session, principal, org_id=org_id, team_id=team_id)
    if member_role is not None:
        granted = granted | TEAM_ROLE_PERMISSIONS[member_role]
    return _limit_to_key(principal, granted)


def effective_team_role(
    session: Session, principal: Principal, *, org_id: str, team_id: str
) -> TeamRole | None:
    """The highest built-in role the principal holds on the team (directly or through the org)."""
    from tenantry.access.catalog import TEAM_ROLE_RANK

    candidates: list[TeamRole] = []
    role = org_role(session, principal, org_id)
    if role is not None and ORG_ROLE_AS_TEAM_ROLE[role] is not None:
        candidates.append(ORG_ROLE_AS_TEAM_ROLE[role])  # type: ignore[arg-type]
    member_role = team_role(session, principal, org_id=org_id, team_id=team_id)
    if member_role is not None:
        candidates.append(member_role)
    return max(candidates, key=TEAM_ROLE_RANK.__getitem__) if candidates else None


def _deny(
    permission: Permission, where: str, *, org_id: str, team_id: str | None = None
) -> Forbidden:
    return Forbidden(
        f"Missing permission {permission.value} on this {where}",
        code="permission_denied",
        extra={"missing_permission": permission.value},
        org_id=org_id,
        team_id=team_id,
    )


def authorize(
    session: Session,
    principal: Principal,
    permission: Permission,
    *,
    org_id: str,
    team_id: str | None = None,
) -> None:
    """The one authorization function: may `principal` do `permission` in this org (or team)?

    Raises NotFound when the principal has no standing in the org at all, Forbidden (naming the
    missing permission) when it has standing but not the permission.
    """
    if not is_in_org(session, principal, org_id):
        raise NotFound("Organization not found" if team_id is None else "Team not found")
    if team_id is None:
        if permission not in org_permissions(session, principal, org_id):
            raise _deny(permission, "organization", org_id=org_id)
    elif permission not in team_permissions(session, principal, org_id=org_id, team_id=team_id):
        raise _deny(permission, "team", org_id=org_id, team_id=team_id)


def can(
    session: Session,
    principal: Principal,
    permission: Permission,
    *,
    org_id: str,
    team_id: str | None = None,
) -> bool:
    if team_id is None:
        return permission in org_permissions(session, principal, org_id)
    return permission in team_permissions(session, principal, org_id=org_id, team_id=team_id)
