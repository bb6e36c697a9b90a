"""Memberships: who is in an org and its teams with which role, and the rules for granting,
changing and removing a role (never above one's own; never the last owner)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import ORG_ROLE_RANK, OrgRole, Permission, TeamRole, parse_org_role
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize, check_may_assign, org_role, parse_team_role_ref
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, Forbidden, NotFound, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.kit.pagination import Page, PageRequest
from tenantry.tenancy import hooks, repository
from tenantry.tenancy.models import Organization, OrgMembership, Team, TeamMembership
from tenantry.tenancy.scope import resolve_member

# ---- org memberships ----


def add_org_member(ctx: Ctx, *, org_id: str, user_id: str, role: OrgRole) -> OrgMembership:
    # Every way into an org comes through here: the plan's member quota is claimed atomically
    # (metering's hook).
    hooks.person_joining(ctx.session, org_id, user_id)
    hooks.member_joining(ctx.session, org_id)
    membership = OrgMembership(
        id=new_id("mem"),
        org_id=org_id,
        user_id=user_id,
        role=role.value,
        created_at=ctx.clock.now(),
    )
    ctx.session.add(membership)
    ctx.session.flush()
    return membership


def list_org_members(
    session: Session, principal: Principal, org: Organization, page: PageRequest
) -> Page[OrgMembership]:
    authorize(session, principal, Permission.MEMBER_READ, org_id=org.id)
    return repository.org_members(session, org_id=org.id, page=page)


def check_org_role_grant(ctx: Ctx, principal: Principal, org_id: str, role: OrgRole) -> None:
    own = org_role(ctx.session, principal, org_id)
    if own is None or ORG_ROLE_RANK[role] > ORG_ROLE_RANK[own]:
        raise Forbidden(
            f"You cannot grant the role {role.value}, which is above your own",
            code="role_above_own",
            org_id=org_id,
        )


def _guard_last_owner(ctx: Ctx, org_id: str, membership: OrgMembership) -> None:
    if (
        membership.role == OrgRole.OWNER.value
        and repository.count_org_owners(ctx.session, org_id=org_id) <= 1
    ):
        raise Conflict(
            "The last owner cannot be removed or demoted; transfer ownership first",
            code="last_owner",
        )


def update_org_member(
    ctx: Ctx, principal: Principal, org: Organization, *, user_ref: str, role_name: str
) -> OrgMembership:
    repository.lock_org(ctx.session, org_id=org.id)
    role = org_role_from(role_name)
    user = resolve_member(ctx.session, org_id=org.id, ref=user_ref)
    membership = repository.org_membership(ctx.session, org_id=org.id, user_id=user.id)
    assert membership is not None
    check_org_role_grant(ctx, principal, org.id, role)
    check_org_role_grant(ctx, principal, org.id, OrgRole(membership.role))
    if role is not OrgRole.OWNER:
        _guard_last_owner(ctx, org.id, membership)
    summary = {"before": membership.role, "after": role.value}
    membership.role = role.value
    audit.record(
        ctx, principal, org_id=org.id, target_type="user", target_id=user.id, summary=summary
    )
    return membership


def remove_org_member(ctx: Ctx, principal: Principal, org: Organization, *, user_ref: str) -> None:
    repository.lock_org(ctx.session, org_id=org.id)
    user = resolve_member(ctx.session, org_id=org.id, ref=user_ref)
    if user.id != principal.user_id or principal.kind != "user":
        authorize(ctx.session, principal, Permission.MEMBER_REMOVE, org_id=org.id)
    membership = repository.org_membership(ctx.session, org_id=org.id, user_id=user.id)
    assert membership is not None
    if user.id != principal.user_id:
        check_org_role_grant(ctx, principal, org.id, OrgRole(membership.role))
    _guard_last_owner(ctx, org.id, membership)
    repository.remove_org_member(ctx.session, org_id=org.id, user_id=user.id)
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="user",
        target_id=user.id,
        summary={"role": membership.role},
    )


def org_role_from(name: str) -> OrgRole:
    try:
        return parse_org_role(name)
    except ValueError:
        raise Unprocessable(
            "Organization role must be owner, admin or member", code="invalid_role"
        ) from None


def team_role_from(ctx: Ctx, org_id: str, name: str) -> str:
    """A built-in team role's name, or the id of one of the org's custom roles."""
    return parse_team_role_ref(ctx.session, org_id=org_id, name=name)


# ---- team memberships ----


def list_team_members(
    session: Session, principal: Principal, team: Team, page: PageRequest
) -> Page[TeamMembership]:
    return repository.team_members(session, org_id=team.org_id, team_id=team.id, page=page)


def check_team_role_grant(ctx: Ctx, principal: Principal, team: Team, role: str) -> None:
    # A role (built-in or custom) may be given only by someone holding all it carries.
    check_may_assign(ctx.session, principal, org_id=team.org_id, team_id=team.id, ref=role)


def add_team_member(
    ctx: Ctx, principal: Principal, team: Team, *, user_ref: str, role_name: str
) -> TeamMembership:
    role = team_role_from(ctx, team.org_id, role_name)
    check_team_role_grant(ctx, principal, team, role)
    user = repository.user_by_ref(ctx.session, user_ref)
    if (
        user is None
        or repository.org_membership(ctx.session, org_id=team.org_id, user_id=user.id) is None
    ):
        raise Unprocessable(
            "Only members of the organization can join its teams; invite them first",
            code="not_an_org_member",
        )
    if (
        repository.team_membership(
            ctx.session, org_id=team.org_id, team_id=team.id, user_id=user.id
        )
        is not None
    ):
        raise Conflict("Already a member of this team", code="already_member")
    membership = insert_team_member(ctx, team=team, user_id=user.id, role=role)
    audit.record(
        ctx,
        principal,
        org_id=team.org_id,
        team_id=team.id,
        target_type="user",
        target_id=user.id,
        summary={"role": role},
    )
    return membership


def insert_team_member(ctx: Ctx, *, team: Team, user_id: str, role: str) -> TeamMembership:
    membership = TeamMembership(
        id=new_id("tmm"),
        org_id=team.org_id,
        team_id=team.id,
        user_id=user_id,
        role=role,
        created_at=ctx.clock.now(),
    )
    ctx.session.add(membership)
    ctx.session.flush()
    return membership


def _team_member(ctx: Ctx, team: Team, user_ref: str) -> TeamMembership:
    user = repository.user_by_ref(ctx.session, user_ref)
    membership = (
        repository.team_membership(
            ctx.session, org_id=team.org_id, team_id=team.id, user_id=user.id
        )
        if user is not None
        else None
    )
    if membership is None:
        raise NotFound("Member not found")
    return membership


def _guard_last_team_owner(ctx: Ctx, team: Team, membership: TeamMembership) -> None:
    if (
        membership.role == TeamRole.OWNER.value
        and repository.count_team_owners(ctx.session, org_id=team.org_id, team_id=team.id) <= 1
    ):
        raise Conflict("The team's last owner cannot be removed or demoted", code="last_owner")


def update_team_member(
    ctx: Ctx, principal: Principal, team: Team, *, user_ref: str, role_name: str
) -> TeamMembership:
    repository.lock_org(ctx.session, org_id=team.org_id)
    role = team_role_from(ctx, team.org_id, role_name)
    membership = _team_member(ctx, team, user_ref)
    check_team_role_grant(ctx, principal, team, role)
    check_team_role_grant(ctx, principal, team, membership.role)
    if role != TeamRole.OWNER.value:
        _guard_last_team_owner(ctx, team, membership)
    summary = {"before": membership.role, "after": role}
    membership.role = role
    audit.record(
        ctx,
        principal,
        org_id=team.org_id,
        team_id=team.id,
        target_type="user",
        target_id=membership.user_id,
        summary=summary,
    )
    return membership


def remove_team_member(ctx: Ctx, principal: Principal, team: Team, *, user_ref: str) -> None:
    repository.lock_org(ctx.session, org_id=team.org_id)
    membership = _team_member(ctx, team, user_ref)
    if membership.user_id != principal.user_id or principal.kind != "user":
        authorize(
            ctx.session, principal, Permission.MEMBER_REMOVE, org_id=team.org_id, team_id=team.id
        )
        check_team_role_grant(ctx, principal, team, membership.role)
    _guard_last_team_owner(ctx, team, membership)
    ctx.session.delete(membership)
    audit.record(
        ctx,
        principal,
        org_id=team.org_id,
        team_id=team.id,
        target_type="user",
        target_id=membership.user_id,
        summary={"role": membership.role},
    )
