"""The one authorization function. Every endpoint reaches it through the typed dependencies in
`access.dependencies`; services call it again for rules that depend on the resource.

Answers: 404 when the principal has no standing in the org at all (never reveal another tenant's
things), 403 with the missing permission inside one's own tenant.

Every decision goes through the org's compiled snapshot (`access.engine`, cached by
`access.policy`), so custom roles, resource grants and the team hierarchy give access on the real
routes exactly as `check` says they do.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from tenantry.authz.catalog import (
    ORG_ROLE_AS_TEAM_ROLE,
    TEAM_ROLE_RANK,
    OrgRole,
    Permission,
    TeamRole,
    parse_team_role,
)
from tenantry.authz.engine import (
    BUILTIN_ROLES,
    ORG_RESOURCE,
    TEAM_RESOURCE,
    Decision,
    KeyData,
    Resource,
    Snapshot,
)
from tenantry.authz.policy import principal_snapshot, snapshot_for
from tenantry.authz.principal import Principal
from tenantry.kit.clock import Clock, SystemClock
from tenantry.kit.errors import Forbidden, NotFound, Unprocessable

_CLOCK = "tenantry.access.clock"
_SYSTEM_CLOCK = SystemClock()


# ---- time ----


def bind_clock(session: Session, clock: Clock) -> None:
    """Decide this session's questions at `clock`'s time (the app's clock, which tests move):
    grant expiry is compared with it."""
    session.info[_CLOCK] = clock


def now_of(session: Session) -> datetime:
    clock: Clock = session.info.get(_CLOCK, _SYSTEM_CLOCK)
    return clock.now()


# ---- the principal, as the engine sees it ----


def policy(session: Session, org_id: str) -> Snapshot:
    """The org's whole compiled policy (questions about anyone, role management)."""
    return snapshot_for(session, org_id)


def policy_of(session: Session, principal: Principal, org_id: str) -> Snapshot:
    """A compiled policy good for every decision about `principal` in the org (the request
    path: the whole org's when cached, else a slice for this principal)."""
    return principal_snapshot(session, org_id, principal.user_id, principal.api_key_id)


def key_of(principal: Principal) -> KeyData | None:
    if principal.kind != "api_key" or principal.api_key_id is None:
        return None
    return KeyData(
        id=principal.api_key_id,
        creator_id=principal.user_id,
        team_id=principal.key_team_id,
        permissions=principal.key_permissions,
    )


def decide(
    snapshot: Snapshot,
    principal: Principal,
    permission: Permission,
    resource: Resource,
    now: datetime,
) -> Decision:
    key = key_of(principal)
    if key is not None:
        return snapshot.check_key(key, permission, resource, now)
    return snapshot.check_user(principal.user_id, permission, resource, now)


def org_role(session: Session, principal: Principal, org_id: str) -> OrgRole | None:
    if org_id not in principal.org_roles:
        principal.org_roles[org_id] = policy_of(session, principal, org_id).org_roles.get(
            principal.user_id
        )
    return principal.org_roles[org_id]


def team_role(
    session: Session, principal: Principal, *, org_id: str, team_id: str
) -> TeamRole | None:
    """The built-in role of the principal's own membership of the team (None for none, or for
    a custom role)."""
    ref = policy_of(session, principal, org_id).team_roles.get((team_id, principal.user_id))
    return TeamRole(ref) if ref is not None and ref in TeamRole._value2member_map_ else None


def is_in_org(session: Session, principal: Principal, org_id: str) -> bool:
    """Whether the principal may know the org exists at all."""
    if principal.kind == "api_key" and principal.key_org_id != org_id:
        return False
    return org_role(session, principal, org_id) is not None


def sees_team(session: Session, principal: Principal, *, org_id: str, team_id: str) -> bool:
    """Whether the principal may know the team exists (a private team: only its members and the
    org's admins and owners); an API key sees what its creator sees."""
    return policy_of(session, principal, org_id).sees_team(principal.user_id, team_id)


def hidden_teams(session: Session, principal: Principal, org_id: str) -> frozenset[str]:
    """The org's private teams the principal may not see (to leave out of a listing)."""
    snapshot = policy_of(session, principal, org_id)
    return frozenset(t for t in snapshot.teams if not snapshot.sees_team(principal.user_id, t))


def _resource(org_id: str, team_id: str | None) -> Resource:
    return Resource(ORG_RESOURCE, org_id) if team_id is None else Resource(TEAM_RESOURCE, team_id)


def permissions_on(
    session: Session, principal: Principal, *, org_id: str, resource: Resource
) -> frozenset[Permission]:
    """Everything the principal may do on the resource (empty outside its tenants)."""
    if not is_in_org(session, principal, org_id):
        return frozenset()
    snapshot, now = policy_of(session, principal, org_id), now_of(session)
    return frozenset(p for p in Permission if decide(snapshot, principal, p, resource, now).allowed)


def org_permissions(session: Session, principal: Principal, org_id: str) -> frozenset[Permission]:
    return permissions_on(session, principal, org_id=org_id, resource=_resource(org_id, None))


def team_permissions(
    session: Session, principal: Principal, *, org_id: str, team_id: str
) -> frozenset[Permission]:
    return permissions_on(session, principal, org_id=org_id, resource=_resource(org_id, team_id))


def effective_team_role(
    session: Session, principal: Principal, *, org_id: str, team_id: str
) -> TeamRole | None:
    """The highest built-in role the principal holds on the team (directly or through the org)."""
    candidates: list[TeamRole] = []
    role = org_role(session, principal, org_id)
    as_team = ORG_ROLE_AS_TEAM_ROLE[role] if role is not None else None
    if as_team is not None:
        candidates.append(as_team)
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


def authorize_resource(
    session: Session,
    principal: Principal,
    permission: Permission,
    *,
    org_id: str,
    resource: Resource,
) -> Decision:
    """May `principal` do `permission` on `resource` of this org? NotFound without standing in
    the org, Forbidden (naming the missing permission) without the permission."""
    if not is_in_org(session, principal, org_id):
        raise NotFound("Organization not found" if resource.type == ORG_RESOURCE else "Not found")
    snapshot = policy_of(session, principal, org_id)
    team_id = snapshot.team_of(resource) if resource.type != ORG_RESOURCE else None
    if team_id is not None and not snapshot.sees_team(principal.user_id, team_id):
        # A private team is to outsiders what another tenant's team is: not there.
        raise NotFound("Team not found" if resource.type == TEAM_RESOURCE else "Not found")
    decision = decide(snapshot, principal, permission, resource, now_of(session))
    if not decision.allowed:
        where = "organization" if resource.type == ORG_RESOURCE else resource.type
        team_id = resource.id if resource.type == TEAM_RESOURCE else resource.team_id
        raise _deny(permission, where, org_id=org_id, team_id=team_id)
    return decision


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
    authorize_resource(
        session, principal, permission, org_id=org_id, resource=_resource(org_id, team_id)
    )


def can(
    session: Session,
    principal: Principal,
    permission: Permission,
    *,
    org_id: str,
    team_id: str | None = None,
) -> bool:
    if not is_in_org(session, principal, org_id):
        return False
    resource = _resource(org_id, team_id)
    snapshot = policy_of(session, principal, org_id)
    return decide(snapshot, principal, permission, resource, now_of(session)).allowed


# ---- roles as memberships name them ----


def role_ref(session: Session, *, org_id: str, name: str) -> str | None:
    """What a membership, grant or template stores for a role named `name`: a built-in team
    role's name (`developer` means editor) or a custom role's id (given by id or by name)."""
    try:
        return parse_team_role(name).value
    except ValueError:
        pass
    snapshot = policy(session, org_id)
    if name in snapshot.custom_roles:
        return name
    for role in snapshot.custom_roles.values():
        if role.name == name.lower():
            return role.id
    return None


def parse_team_role_ref(session: Session, *, org_id: str, name: str) -> str:
    """A team role by name for a membership or invitation: built-in or one of the org's custom
    roles; 422 `invalid_role` otherwise."""
    ref = role_ref(session, org_id=org_id, name=name)
    if ref is None:
        raise Unprocessable(
            "Team role must be owner, admin, editor (or developer), viewer or a custom role of "
            "this organization",
            code="invalid_role",
        )
    return ref


def role_permissions(session: Session, *, org_id: str, ref: str) -> frozenset[Permission]:
    if ref in BUILTIN_ROLES:
        return BUILTIN_ROLES[ref]
    return policy(session, org_id).role_permissions.get(ref, frozenset())


def role_name(session: Session, *, org_id: str, ref: str) -> str:
    return policy(session, org_id).role_names.get(ref, ref)


def check_may_assign(
    session: Session, principal: Principal, *, org_id: str, team_id: str, ref: str
) -> None:
    """Nobody assigns (or touches a holder of) a role carrying a permission they do not hold on
    the team: 403 `role_above_own`. For the nested built-in roles this is the rank rule."""
    held = team_permissions(session, principal, org_id=org_id, team_id=team_id)
    beyond = sorted(p.value for p in role_permissions(session, org_id=org_id, ref=ref) - held)
    if beyond or not held:
        name = role_name(session, org_id=org_id, ref=ref)
        raise Forbidden(
            f"You cannot grant the role {name}, which is above your own",
            code="role_above_own",
            org_id=org_id,
            team_id=team_id,
            extra={"missing_permission": beyond[0]} if beyond else None,
        )
