"""Business rules of custom roles, resource grants, grant templates and bulk grant changes.

Rules that hold everywhere here:
- Nobody creates or edits a role, or creates, changes or revokes a grant or a template, carrying
  a permission they do not hold themselves on that scope (`403 permission_escalation`).
- Built-in roles cannot be edited or deleted (`403 builtin_role`).
- A grant never names a subject or a resource of another org: such a reference answers exactly
  as one that exists nowhere (`404 subject_not_found`, `404 not_found`).
- Every change is audited, one event per change; a bulk change is all or nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.orm import Session

from tenantry.access import repository
from tenantry.access.models import CustomRole, Grant, GrantTemplate
from tenantry.access.schemas import ResourceIn, SubjectIn
from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission, is_known_permission, parse_team_role
from tenantry.authz.engine import (
    EVERY,
    TEAM_RESOURCE,
    CustomRoleData,
    PolicyError,
    Resource,
    flatten_roles,
)
from tenantry.authz.principal import Principal
from tenantry.authz.resources import has_valid_shape, is_known_type, resolver_of
from tenantry.authz.service import (
    authorize,
    is_in_org,
    permissions_on,
    policy,
    role_permissions,
    role_ref,
)
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, Forbidden, NotFound, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.kit.pagination import Page, PageRequest
from tenantry.tenancy.models import Organization, Team

ROLE_NAME: Final = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
RESERVED_NAMES: Final = frozenset({"owner", "admin", "editor", "viewer", "developer", "member"})


# ---- shared checks ----


def _check_name(name: str, what: str) -> str:
    name = name.strip().lower()
    if not ROLE_NAME.match(name) or name.startswith(("role_", "gtpl_")):
        raise Unprocessable(
            f"A {what} name is 1-64 lowercase letters, digits, '.', '_' or '-', starting with a "
            "letter",
            code="invalid_name",
        )
    if name in RESERVED_NAMES:
        raise Unprocessable(f"{name!r} is the name of a built-in role", code="reserved_name")
    return name


def _permissions(values: Sequence[str]) -> frozenset[Permission]:
    unknown = sorted({v for v in values if not is_known_permission(v)})
    if unknown:
        raise Unprocessable(f"Unknown permissions: {', '.join(unknown)}", code="unknown_permission")
    return frozenset(Permission(v) for v in values)


def _check_holds(
    ctx: Ctx,
    principal: Principal,
    *,
    org_id: str,
    permissions: frozenset[Permission],
    resource: Resource,
) -> None:
    """The caller holds every one of `permissions` on `resource`, or 403."""
    held = permissions_on(ctx.session, principal, org_id=org_id, resource=resource)
    beyond = sorted(p.value for p in permissions - held)
    if beyond:
        team_id = resource.id if resource.type == TEAM_RESOURCE else resource.team_id
        raise Forbidden(
            f"You cannot give or take away permissions you do not hold: {', '.join(beyond)}",
            code="permission_escalation",
            extra={"missing_permission": beyond[0]},
            org_id=org_id,
            team_id=team_id,
        )


def _is_builtin(name: str) -> bool:
    try:
        parse_team_role(name)
    except ValueError:
        return False
    return True


def _refuse_builtin(name: str, org_id: str) -> None:
    if _is_builtin(name):
        raise Forbidden(
            "Built-in roles cannot be edited or deleted; create a custom role instead",
            code="builtin_role",
            org_id=org_id,
        )


def _org_resource(org_id: str) -> Resource:
    return Resource("org", org_id)


# ---- custom roles ----


def _inherit_refs(ctx: Ctx, org_id: str, names: Sequence[str]) -> list[str]:
    refs: list[str] = []
    for name in names:
        ref = role_ref(ctx.session, org_id=org_id, name=name)
        if ref is None:
            raise Unprocessable(f"Unknown role to inherit from: {name}", code="unknown_role")
        if ref not in refs:
            refs.append(ref)
    return refs


def _flattened(ctx: Ctx, org_id: str, roles: dict[str, CustomRoleData]) -> dict[str, Any]:
    try:
        return dict(flatten_roles(roles))
    except PolicyError as exc:
        raise Unprocessable(
            f"Roles must not inherit from themselves, directly or not ({exc})", code="role_cycle"
        ) from None


def find_role(ctx: Ctx, org: Organization, ref: str) -> CustomRole:
    role = repository.role_in_org(ctx.session, org_id=org.id, ref=ref)
    if role is None:
        raise NotFound("Role not found")
    return role


def _check_role_name_free(ctx: Ctx, org_id: str, name: str) -> None:
    if repository.role_name_taken(ctx.session, org_id=org_id, name=name):
        raise Conflict(f"A role named {name!r} exists in this organization", code="role_exists")


def create_role(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    *,
    name: str,
    description: str,
    permissions: Sequence[str],
    inherits: Sequence[str],
) -> CustomRole:
    name = _check_name(name, "role")
    own = _permissions(permissions)
    parents = _inherit_refs(ctx, org.id, inherits)
    _check_role_name_free(ctx, org.id, name)
    role_id = new_id("role")
    roles = dict(policy(ctx.session, org.id).custom_roles)
    roles[role_id] = CustomRoleData(role_id, name, frozenset(own), tuple(parents))
    flat = _flattened(ctx, org.id, roles)
    _check_holds(
        ctx, principal, org_id=org.id, permissions=flat[role_id], resource=_org_resource(org.id)
    )
    now = ctx.clock.now()
    role = CustomRole(
        id=role_id,
        org_id=org.id,
        name=name,
        description=description,
        permissions=sorted(p.value for p in own),
        inherits=parents,
        created_by=principal.user_id,
        created_at=now,
        updated_at=now,
    )
    ctx.session.add(role)
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="role",
        target_id=role.id,
        summary=role.describe(),
    )
    return role


def update_role(
    ctx: Ctx, principal: Principal, org: Organization, ref: str, changes: dict[str, Any]
) -> CustomRole:
    _refuse_builtin(ref, org.id)
    role = find_role(ctx, org, ref)
    if not changes:
        raise Unprocessable(
            "Nothing to update: give name, description, permissions or inherits",
            code="nothing_to_update",
        )
    before = role.describe()
    name = _check_name(changes["name"], "role") if changes.get("name") is not None else role.name
    if name != role.name:
        _check_role_name_free(ctx, org.id, name)
    own = (
        _permissions(changes["permissions"])
        if changes.get("permissions") is not None
        else frozenset(Permission(p) for p in role.permissions if is_known_permission(p))
    )
    parents = (
        _inherit_refs(ctx, org.id, changes["inherits"])
        if changes.get("inherits") is not None
        else list(role.inherits)
    )
    roles = dict(policy(ctx.session, org.id).custom_roles)
    roles[role.id] = CustomRoleData(role.id, name, own, tuple(parents))
    flat = _flattened(ctx, org.id, roles)
    # What the role carries after the edit, and what it carried before: both within one's own.
    carried = flat[role.id] | role_permissions(ctx.session, org_id=org.id, ref=role.id)
    _check_holds(ctx, principal, org_id=org.id, permissions=carried, resource=_org_resource(org.id))
    role.name = name
    role.permissions = sorted(p.value for p in own)
    role.inherits = parents
    if changes.get("description") is not None:
        role.description = changes["description"]
    role.updated_at = ctx.clock.now()
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="role",
        target_id=role.id,
        summary={"before": before, "after": role.describe()},
    )
    return role


def delete_role(
    ctx: Ctx, principal: Principal, org: Organization, ref: str, *, reassign_to: str | None
) -> None:
    _refuse_builtin(ref, org.id)
    role = find_role(ctx, org, ref)
    carried = role_permissions(ctx.session, org_id=org.id, ref=role.id)
    _check_holds(ctx, principal, org_id=org.id, permissions=carried, resource=_org_resource(org.id))
    holders = repository.holders_of(ctx.session, org_id=org.id, role_id=role.id)
    target: str | None = None
    if reassign_to is not None:
        target = role_ref(ctx.session, org_id=org.id, name=reassign_to)
        if target is None or target == role.id:
            raise Unprocessable(
                "reassign_to must name another role of this organization", code="unknown_role"
            )
        moved_to = role_permissions(ctx.session, org_id=org.id, ref=target)
        _check_holds(
            ctx, principal, org_id=org.id, permissions=moved_to, resource=_org_resource(org.id)
        )
    elif holders.total:
        raise Conflict(
            f"The role {role.name} is in use; name a role to move its holders to (reassign_to)",
            code="role_in_use",
            extra={"holders": holders.as_dict()},
        )
    if target is not None:
        _reassign_inheritors(ctx, org, role, target, holders.roles)
        repository.move_holders(ctx.session, org_id=org.id, role_id=role.id, to=target)
    summary = {"name": role.name, "reassigned_to": target, "moved": holders.as_dict()}
    ctx.session.delete(role)
    ctx.session.flush()
    audit.record(
        ctx, principal, org_id=org.id, target_type="role", target_id=role.id, summary=summary
    )


def _reassign_inheritors(
    ctx: Ctx, org: Organization, role: CustomRole, target: str, inheritor_ids: list[str]
) -> None:
    """Roles that inherited from the deleted one inherit from its replacement instead."""
    if not inheritor_ids:
        return
    roles = dict(policy(ctx.session, org.id).custom_roles)
    roles.pop(role.id, None)
    changed: list[CustomRole] = []
    for inheritor_id in inheritor_ids:
        inheritor = repository.role_in_org(ctx.session, org_id=org.id, ref=inheritor_id)
        if inheritor is None:
            continue
        parents = [target if p == role.id else p for p in inheritor.inherits]
        parents = list(dict.fromkeys(parents))
        roles[inheritor.id] = CustomRoleData(
            inheritor.id, inheritor.name, frozenset(inheritor.permissions), tuple(parents)
        )
        inheritor.inherits = parents
        changed.append(inheritor)
    _flattened(ctx, org.id, roles)


def list_roles(ctx: Ctx, org: Organization, page: PageRequest) -> Page[CustomRole]:
    return repository.roles_of_org(ctx.session, org_id=org.id, page=page)


# ---- what a grant names ----


@dataclass(frozen=True)
class Target:
    """A grant's resource, resolved: its type, id and owning team."""

    resource_type: str
    resource_id: str
    team_id: str

    @property
    def as_resource(self) -> Resource:
        if self.resource_type == TEAM_RESOURCE:
            return Resource(TEAM_RESOURCE, self.team_id)
        return Resource(self.resource_type, self.resource_id, self.team_id)


def resolve_target(ctx: Ctx, team: Team, resource: ResourceIn | None) -> Target:
    """The resource a grant made in `team`'s path names: the team itself, or one of its
    team-owned resources (`*`: every resource of the type in the team)."""
    if resource is None or resource.type == TEAM_RESOURCE:
        if resource is not None and resource.id not in (None, team.id):
            raise Unprocessable(
                "A grant on a team is made under that team's path", code="resource_team_mismatch"
            )
        return Target(TEAM_RESOURCE, team.id, team.id)
    if not is_known_type(resource.type):
        raise Unprocessable(
            f"Unknown resource type {resource.type!r}", code="unknown_resource_type"
        )
    if resource.team_id not in (None, team.id):
        raise Unprocessable(
            "The resource belongs to another team than the one in the path",
            code="resource_team_mismatch",
        )
    if resource.id is None:
        raise Unprocessable("resource.id is required for this type", code="resource_required")
    if resource.id == EVERY:
        return Target(resource.type, EVERY, team.id)
    if not has_valid_shape(resource.type, resource.id):
        raise Unprocessable(
            f"{resource.id!r} is not the id of a {resource.type}", code="invalid_resource_id"
        )
    resolver = resolver_of(resource.type)
    owner = (
        resolver(ctx.session, team.org_id, resource.id)
        if resolver is not None
        else policy(ctx.session, team.org_id).resource_team.get((resource.type, resource.id))
    )
    if resolver is not None and owner is None:
        raise NotFound(f"{resource.type.capitalize()} not found")
    if owner is not None and owner != team.id:
        raise Unprocessable(
            "The resource belongs to another team than the one in the path",
            code="resource_team_mismatch",
        )
    return Target(resource.type, resource.id, team.id)


def resolve_subject(
    ctx: Ctx, org_id: str, subject: SubjectIn, *, team_id: str | None, viewer: str | None = None
) -> tuple[str, str]:
    """(type, id) of a user, team or API key of this org; 404 `subject_not_found` otherwise (a
    private team `viewer`, the user acting, may not see included)."""
    snapshot = policy(ctx.session, org_id)
    kind = subject.type.replace("_", " ")
    missing = NotFound(f"No such {kind} in this organization", code="subject_not_found")
    if subject.type == "user":
        if "@" not in subject.id:
            if subject.id not in snapshot.org_roles:
                raise missing
            return ("user", subject.id)
        user = repository.member_by_ref(ctx.session, org_id=org_id, ref=subject.id)
        if user is None:
            raise missing
        return ("user", user.id)
    if subject.type == "team":
        hidden = viewer is not None and not snapshot.sees_team(viewer, subject.id)
        if subject.id not in snapshot.teams or hidden:
            raise missing
        return ("team", subject.id)
    key = repository.live_api_key(
        ctx.session, org_id=org_id, key_id=subject.id, now=ctx.clock.now()
    )
    if key is None:
        raise missing
    if team_id is not None and key.team_id not in (None, team_id):
        raise Unprocessable(
            "The API key is bound to another team; it can hold grants only there",
            code="outside_key_team",
        )
    return ("api_key", key.id)


def subject_filter_id(session: Session, org_id: str, subject_type: str | None, ref: str) -> str:
    """The subject id a grant listing filters on: a user may be named by email, as when
    granting (404 `subject_not_found` if no member has it); any other id is taken as it is."""
    if subject_type in (None, "user") and "@" in ref:
        user = repository.member_by_ref(session, org_id=org_id, ref=ref)
        if user is None:
            raise NotFound("No such user in this organization", code="subject_not_found")
        return user.id
    return ref


@dataclass(frozen=True)
class Content:
    """What a grant gives: a role, or an explicit set of permissions."""

    role: str | None
    permissions: list[str] | None
    effective: frozenset[Permission]


def grant_content(
    ctx: Ctx, org_id: str, *, role: str | None, permissions: Sequence[str] | None
) -> Content:
    if (role is None) == (permissions is None):
        raise Unprocessable("Give exactly one of role or permissions", code="role_or_permissions")
    if role is not None:
        ref = role_ref(ctx.session, org_id=org_id, name=role)
        if ref is None:
            raise Unprocessable(f"Unknown role {role!r}", code="unknown_role")
        return Content(ref, None, role_permissions(ctx.session, org_id=org_id, ref=ref))
    chosen = _permissions(permissions or ())
    if not chosen:
        raise Unprocessable("Give at least one permission", code="no_permissions")
    return Content(None, sorted(p.value for p in chosen), chosen)


def _content_of(ctx: Ctx, grant: Grant) -> frozenset[Permission]:
    if grant.role is not None:
        return role_permissions(ctx.session, org_id=grant.org_id, ref=grant.role)
    return frozenset(Permission(p) for p in grant.permissions or () if is_known_permission(p))


def _check_expiry(ctx: Ctx, expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= ctx.clock.now():
        raise Unprocessable("expires_at must be in the future", code="invalid_expiry")


# ---- recording many changes ----


def _record_each(
    ctx: Ctx,
    principal: Principal,
    *,
    org_id: str,
    team_id: str | None,
    changes: Sequence[tuple[str, dict[str, Any]]],
    reason: str = "",
) -> None:
    """One audit event per changed grant, all with the route's action, in this transaction."""
    details = {"reason": reason} if reason else None
    for index, (grant_id, summary) in enumerate(changes):
        if index == 0:
            audit.record(
                ctx,
                principal,
                org_id=org_id,
                team_id=team_id,
                target_type="grant",
                target_id=grant_id,
                summary=summary,
                personal_details=details,
            )
            continue
        audit.append(
            ctx.session,
            now=ctx.clock.now(),
            org_id=org_id,
            team_id=team_id,
            actor_type=principal.actor_type,
            actor_id=principal.actor_id,
            action=ctx.origin.action or "grant.changed",
            result="success",
            request_id=ctx.origin.request_id,
            summary=summary,
            subject_id=principal.user_id,
            target_type="grant",
            target_id=grant_id,
            personal=audit.Personal(ctx.origin.ip, ctx.origin.user_agent, details or {}),
        )


# ---- grants ----


def _new_grant(
    ctx: Ctx,
    principal: Principal,
    *,
    org_id: str,
    target: Target,
    subject: tuple[str, str],
    content: Content,
    expires_at: datetime | None,
    reason: str,
) -> Grant:
    grant = Grant(
        id=new_id("grt"),
        org_id=org_id,
        team_id=target.team_id,
        subject_type=subject[0],
        subject_id=subject[1],
        resource_type=target.resource_type,
        resource_id=target.resource_id,
        role=content.role,
        permissions=content.permissions,
        expires_at=expires_at,
        granted_by=principal.user_id,
        reason=reason,
        created_at=ctx.clock.now(),
    )
    ctx.session.add(grant)
    return grant


def create_grant(
    ctx: Ctx,
    principal: Principal,
    team: Team,
    *,
    subject: SubjectIn,
    resource: ResourceIn | None,
    role: str | None,
    permissions: Sequence[str] | None,
    expires_at: datetime | None,
    reason: str,
) -> Grant:
    created = grant_many(
        ctx,
        principal,
        team,
        subjects=[subject],
        resource=resource,
        role=role,
        permissions=permissions,
        expires_at=expires_at,
        reason=reason,
    )
    return created[0]


def _subjects(
    ctx: Ctx, principal: Principal, team: Team, subjects: Sequence[SubjectIn]
) -> list[tuple[str, str]]:
    resolved: list[tuple[str, str]] = []
    for index, subject in enumerate(subjects):
        try:
            found = resolve_subject(
                ctx, team.org_id, subject, team_id=team.id, viewer=principal.user_id
            )
        except (NotFound, Unprocessable) as exc:
            if len(subjects) > 1:
                exc.detail = f"subjects[{index}]: {exc.detail}"
                exc.extra = {**exc.extra, "index": index}
            raise
        if found in resolved:
            raise Unprocessable(
                f"subjects[{index}] names a subject already listed", code="duplicate_subject"
            )
        resolved.append(found)
    return resolved


def _grants_on(
    ctx: Ctx, team: Team, target: Target, resolved: list[tuple[str, str]]
) -> dict[tuple[str, str], Grant]:
    """The grants on `target` that these subjects hold already, by subject."""
    return repository.grants_on(
        ctx.session,
        org_id=team.org_id,
        resource_type=target.resource_type,
        resource_id=target.resource_id,
        subjects=resolved,
    )


def grant_many(
    ctx: Ctx,
    principal: Principal,
    team: Team,
    *,
    subjects: Sequence[SubjectIn],
    resource: ResourceIn | None,
    role: str | None,
    permissions: Sequence[str] | None,
    expires_at: datetime | None,
    reason: str,
    target: Target | None = None,
) -> list[Grant]:
    """Grant the same thing to every subject, all or nothing, one audit event per grant."""
    target = target or resolve_target(ctx, team, resource)
    content = grant_content(ctx, team.org_id, role=role, permissions=permissions)
    _check_expiry(ctx, expires_at)
    resolved = _subjects(ctx, principal, team, subjects)
    _check_holds(
        ctx,
        principal,
        org_id=team.org_id,
        permissions=content.effective,
        resource=target.as_resource,
    )
    existing = _grants_on(ctx, team, target, resolved)
    if existing:
        taken = [f"{kind}:{ident}" for kind, ident in existing]
        raise Conflict(
            f"Already granted on this resource: {', '.join(taken[:5])}; change or revoke it",
            code="grant_exists",
            extra={"grants": [g.id for g in existing.values()]},
        )
    grants = [
        _new_grant(
            ctx,
            principal,
            org_id=team.org_id,
            target=target,
            subject=subject,
            content=content,
            expires_at=expires_at,
            reason=reason,
        )
        for subject in resolved
    ]
    ctx.session.flush()
    _record_each(
        ctx,
        principal,
        org_id=team.org_id,
        team_id=team.id,
        changes=[(g.id, {"change": "granted", **g.describe()}) for g in grants],
        reason=reason,
    )
    return grants


def _grants_of(
    ctx: Ctx, team: Team, target: Target, resolved: list[tuple[str, str]]
) -> list[Grant]:
    existing = _grants_on(ctx, team, target, resolved)
    missing = [f"{kind}:{ident}" for kind, ident in resolved if (kind, ident) not in existing]
    if missing:
        raise NotFound(
            f"No grant on this resource for: {', '.join(missing[:5])}", code="grant_not_found"
        )
    return [existing[s] for s in resolved]


def revoke_many(
    ctx: Ctx,
    principal: Principal,
    team: Team,
    *,
    subjects: Sequence[SubjectIn],
    resource: ResourceIn | None,
) -> list[str]:
    target = resolve_target(ctx, team, resource)
    grants = _grants_of(ctx, team, target, _subjects(ctx, principal, team, subjects))
    for grant in grants:
        _check_holds(
            ctx,
            principal,
            org_id=team.org_id,
            permissions=_content_of(ctx, grant),
            resource=target.as_resource,
        )
    changes = [(g.id, {"change": "revoked", **g.describe()}) for g in grants]
    for grant in grants:
        ctx.session.delete(grant)
    ctx.session.flush()
    _record_each(ctx, principal, org_id=team.org_id, team_id=team.id, changes=changes)
    return [g.id for g in grants]


def change_many(
    ctx: Ctx,
    principal: Principal,
    team: Team,
    *,
    subjects: Sequence[SubjectIn],
    resource: ResourceIn | None,
    role: str | None,
    permissions: Sequence[str] | None,
    expires_at: datetime | None,
    reason: str,
) -> list[Grant]:
    target = resolve_target(ctx, team, resource)
    content = grant_content(ctx, team.org_id, role=role, permissions=permissions)
    _check_expiry(ctx, expires_at)
    grants = _grants_of(ctx, team, target, _subjects(ctx, principal, team, subjects))
    for grant in grants:
        _check_holds(
            ctx,
            principal,
            org_id=team.org_id,
            permissions=content.effective | _content_of(ctx, grant),
            resource=target.as_resource,
        )
    changes = []
    for grant in grants:
        before = grant.describe()
        grant.role, grant.permissions = content.role, content.permissions
        if expires_at is not None:
            grant.expires_at = expires_at
            grant.expiry_recorded_at = None
        if reason:
            grant.reason = reason
        changes.append(
            (grant.id, {"change": "changed", "before": before, "after": grant.describe()})
        )
    ctx.session.flush()
    _record_each(
        ctx, principal, org_id=team.org_id, team_id=team.id, changes=changes, reason=reason
    )
    return grants


def find_grant(ctx: Ctx, principal: Principal, grant_id: str) -> Grant:
    """A grant of one of the principal's orgs (404 for anything else, another tenant's too)."""
    grant = repository.unscoped_grant(ctx.session, grant_id)
    if grant is None or not is_in_org(ctx.session, principal, grant.org_id):
        raise NotFound("Grant not found")
    if principal.kind == "api_key" and principal.key_team_id not in (None, grant.team_id):
        raise NotFound("Grant not found")
    return grant


def revoke_grant(ctx: Ctx, principal: Principal, grant_id: str) -> Grant:
    grant = find_grant(ctx, principal, grant_id)
    authorize(
        ctx.session,
        principal,
        Permission.GRANT_MANAGE,
        org_id=grant.org_id,
        team_id=grant.team_id,
    )
    target = Target(grant.resource_type, grant.resource_id, grant.team_id)
    _check_holds(
        ctx,
        principal,
        org_id=grant.org_id,
        permissions=_content_of(ctx, grant),
        resource=target.as_resource,
    )
    summary = {"change": "revoked", **grant.describe()}
    ctx.session.delete(grant)
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=grant.org_id,
        team_id=grant.team_id,
        target_type="grant",
        target_id=grant.id,
        summary=summary,
    )
    return grant


# ---- templates ----


def create_template(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    *,
    name: str,
    description: str,
    role: str | None,
    permissions: Sequence[str] | None,
    resource_type: str,
    resource_id: str | None,
    duration_seconds: int | None,
) -> GrantTemplate:
    name = _check_name(name, "template")
    content = grant_content(ctx, org.id, role=role, permissions=permissions)
    if resource_type != TEAM_RESOURCE and not is_known_type(resource_type):
        raise Unprocessable(
            f"Unknown resource type {resource_type!r}", code="unknown_resource_type"
        )
    if resource_id not in (None, EVERY) or (resource_type == TEAM_RESOURCE and resource_id):
        raise Unprocessable(
            "A template's resource is its type, and `*` (every resource of the type) or nothing "
            "(named when applied); a team template applies to the team it is applied in",
            code="invalid_resource_pattern",
        )
    if repository.template_name_taken(ctx.session, org_id=org.id, name=name):
        raise Conflict(f"A template named {name!r} exists", code="template_exists")
    _check_holds(
        ctx, principal, org_id=org.id, permissions=content.effective, resource=_org_resource(org.id)
    )
    template = GrantTemplate(
        id=new_id("gtpl"),
        org_id=org.id,
        name=name,
        description=description,
        role=content.role,
        permissions=content.permissions,
        resource_type=resource_type,
        resource_id=resource_id,
        duration_seconds=duration_seconds,
        created_by=principal.user_id,
        created_at=ctx.clock.now(),
    )
    ctx.session.add(template)
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="grant_template",
        target_id=template.id,
        summary={
            "name": name,
            "role": content.role,
            "permissions": content.permissions,
            "resource": f"{resource_type}:{resource_id or '(named when applied)'}",
            "duration_seconds": duration_seconds,
        },
    )
    return template


def find_template(ctx: Ctx, org_id: str, ref: str) -> GrantTemplate:
    template = repository.template_in_org(ctx.session, org_id=org_id, ref=ref)
    if template is None:
        raise NotFound("Template not found")
    return template


def delete_template(ctx: Ctx, principal: Principal, org: Organization, ref: str) -> None:
    template = find_template(ctx, org.id, ref)
    ctx.session.delete(template)
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="grant_template",
        target_id=template.id,
        summary={"name": template.name},
    )


def apply_template(
    ctx: Ctx,
    principal: Principal,
    team: Team,
    ref: str,
    *,
    subjects: Sequence[SubjectIn],
    resource_id: str | None,
    reason: str,
) -> list[Grant]:
    """One grant per subject, as the template says, in this team; all or nothing."""
    template = find_template(ctx, team.org_id, ref)
    if template.resource_type == TEAM_RESOURCE:
        if resource_id not in (None, team.id):
            raise Unprocessable(
                "This template grants on the team it is applied in", code="resource_team_mismatch"
            )
        resource = ResourceIn(type=TEAM_RESOURCE)
    else:
        if template.resource_id is not None and resource_id not in (None, template.resource_id):
            raise Unprocessable(
                "This template names its resource already", code="invalid_resource_pattern"
            )
        chosen = template.resource_id or resource_id
        if chosen is None:
            raise Unprocessable(
                f"This template needs resource_id: the {template.resource_type} to grant on",
                code="resource_required",
            )
        resource = ResourceIn(type=template.resource_type, id=chosen)
    expires_at = (
        ctx.clock.now() + timedelta(seconds=template.duration_seconds)
        if template.duration_seconds
        else None
    )
    return grant_many(
        ctx,
        principal,
        team,
        subjects=subjects,
        resource=resource,
        role=template.role,
        permissions=template.permissions,
        expires_at=expires_at,
        reason=reason or f"template {template.name}",
    )
