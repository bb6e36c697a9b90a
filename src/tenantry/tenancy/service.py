"""Business rules of tenancy: organizations, teams, memberships, invitations, onboarding."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.audit.retention import check_retention_setting
from tenantry.authz.catalog import ORG_ROLE_RANK, OrgRole, Permission, TeamRole, parse_org_role
from tenantry.authz.principal import Principal
from tenantry.authz.service import (
    authorize,
    check_may_assign,
    is_in_org,
    org_role,
    parse_team_role_ref,
)
from tenantry.identity.models import User
from tenantry.kit.clock import as_utc
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, Forbidden, Gone, NotFound, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.kit.pagination import Page, PageRequest
from tenantry.kit.security import new_secret, token_hash
from tenantry.plans import live as live_catalog
from tenantry.tenancy import hooks, repository
from tenantry.tenancy.models import Invitation, Organization, OrgMembership, Team, TeamMembership
from tenantry.tenancy.scope import resolve_member

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
INVITATION_TOKEN_PREFIX = "tni_"


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:50].strip("-") or "org"


def _free_slug(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def check_slug(slug: str) -> str:
    if not SLUG_PATTERN.match(slug):
        raise Unprocessable(
            "Slug must be 1-64 lowercase letters, digits and inner hyphens", code="invalid_slug"
        )
    return slug


# Fields that may hold a person's details: the trail records that they changed, not to what.
PERSONAL_FIELDS = frozenset({"billing_email"})


def _before_after(obj: Any, changes: dict[str, Any]) -> dict[str, Any]:
    def shown(key: str, value: Any) -> Any:
        return "(changed)" if key in PERSONAL_FIELDS else value

    return {
        "before": {k: shown(k, getattr(obj, k)) for k in changes},
        "after": {k: shown(k, v) for k, v in changes.items()},
    }


# ---- resolution of path references (404 for anything outside the principal's tenants) ----


# ---- organizations ----


@dataclass(frozen=True)
class CreatedOrg:
    org: Organization
    owner_invitation: IssuedInvitation | None


def _insert_org(
    ctx: Ctx,
    *,
    name: str,
    slug: str | None,
    plan: str,
    billing_email: str | None,
    settings: dict[str, Any],
) -> Organization:
    live_catalog.current(ctx.session).check(plan)
    check_retention_setting(settings)
    if slug is not None:
        check_slug(slug)
        if repository.slug_taken(ctx.session, slug):
            raise Conflict(f"The slug {slug!r} is taken", code="slug_taken")
    else:
        base = slugify(name)
        slug = _free_slug(base, repository.slugs_like(ctx.session, base))
    now = ctx.clock.now()
    org = Organization(
        id=new_id("org"),
        name=name,
        slug=slug,
        plan=plan,
        billing_email=billing_email,
        settings=settings,
        status="active",
        created_at=now,
        updated_at=now,
    )
    ctx.session.add(org)
    ctx.session.flush()
    return org


def _add_org_member(ctx: Ctx, *, org_id: str, user_id: str, role: OrgRole) -> OrgMembership:
    # Every way into an org comes through here: the plan's member quota is claimed atomically
    # (metering's hook).
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


def create_org(
    ctx: Ctx,
    principal: Principal,
    *,
    name: str,
    slug: str | None,
    plan: str,
    billing_email: str | None,
    settings: dict[str, Any],
    owner_email: str | None,
    trial: str | None = None,
) -> CreatedOrg:
    """A new org owned by the principal. `trial` names the paid plan whose trial billing starts
    for it right after (recorded here: the org's creation is the request's one event)."""
    if principal.kind != "user":
        raise Forbidden("Organizations are created by signed-in users", code="users_only")
    org = _insert_org(
        ctx, name=name, slug=slug, plan=plan, billing_email=billing_email, settings=settings
    )
    _add_org_member(ctx, org_id=org.id, user_id=principal.user_id, role=OrgRole.OWNER)
    principal.org_roles[org.id] = OrgRole.OWNER
    invitation: IssuedInvitation | None = None
    owner: User | None = None
    if owner_email:
        owner = repository.user_by_ref(ctx.session, owner_email)
        if owner is not None and owner.id != principal.user_id:
            _add_org_member(ctx, org_id=org.id, user_id=owner.id, role=OrgRole.OWNER)
        elif owner is None:
            invitation = _new_invitation(
                ctx,
                principal,
                org_id=org.id,
                team_id=None,
                email=owner_email,
                role=OrgRole.OWNER.value,
            )
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="organization",
        target_id=org.id,
        # Ids, not the email: the chained record must hold nothing erasure would need to remove.
        summary={
            "name": name,
            "slug": org.slug,
            "plan": plan,
            **({"trial": trial} if trial else {}),
            "owner_id": owner.id if owner is not None else None,
            "owner_invitation_id": invitation.invitation.id if invitation is not None else None,
        },
    )
    return CreatedOrg(org=org, owner_invitation=invitation)


def open_org_for(
    ctx: Ctx,
    principal: Principal,
    *,
    name: str,
    slug: str | None,
    plan: str,
    owner_email: str,
) -> CreatedOrg:
    """An org made for someone else by a principal who does not join it (an operator): the
    owner is the account of `owner_email`, or is invited when there is none yet. The caller
    records the audit events."""
    org = _insert_org(ctx, name=name, slug=slug, plan=plan, billing_email=owner_email, settings={})
    owner = repository.user_by_ref(ctx.session, owner_email)
    invitation: IssuedInvitation | None = None
    if owner is not None:
        _add_org_member(ctx, org_id=org.id, user_id=owner.id, role=OrgRole.OWNER)
    else:
        invitation = _new_invitation(
            ctx, principal, org_id=org.id, team_id=None, email=owner_email, role=OrgRole.OWNER.value
        )
    return CreatedOrg(org=org, owner_invitation=invitation)


def list_orgs(session: Session, principal: Principal, page: PageRequest) -> Page[Organization]:
    only = principal.key_org_id if principal.kind == "api_key" else None
    return repository.orgs_of_user(session, user_id=principal.user_id, page=page, only_org_id=only)


def update_org(
    ctx: Ctx, principal: Principal, org: Organization, changes: dict[str, Any]
) -> Organization:
    # The plan is not a field here: it moves through billing (a subscription) or an operator.
    if "settings" in changes:
        check_retention_setting(changes["settings"])
    if "slug" in changes:
        check_slug(changes["slug"])
        if changes["slug"] != org.slug and repository.slug_taken(ctx.session, changes["slug"]):
            raise Conflict(f"The slug {changes['slug']!r} is taken", code="slug_taken")
    summary = _before_after(org, changes)
    for key, value in changes.items():
        setattr(org, key, value)
    org.updated_at = ctx.clock.now()
    audit.record(
        ctx, principal, org_id=org.id, target_type="organization", target_id=org.id, summary=summary
    )
    return org


def delete_org(ctx: Ctx, principal: Principal, org: Organization, *, confirm: str) -> None:
    if confirm != org.slug:
        raise Unprocessable(
            "Type the organization's slug in `confirm` to delete it", code="confirmation_mismatch"
        )
    org_id, slug = org.id, org.slug
    ctx.session.expunge(org)
    audit.discard_chain(ctx.session, chain_id=org_id, now=ctx.clock.now())
    repository.delete_org(ctx.session, org_id=org_id)
    # The deletion itself stays on record, the one event that outlives the org.
    audit.record(
        ctx,
        principal,
        org_id=org_id,
        target_type="organization",
        target_id=org_id,
        summary={"slug": slug},
    )


def transfer_ownership(
    ctx: Ctx, principal: Principal, org: Organization, *, new_owner_ref: str
) -> OrgMembership:
    repository.lock_org(ctx.session, org_id=org.id)
    if principal.kind != "user":
        raise Forbidden(
            "Ownership is transferred by a signed-in owner", code="users_only", org_id=org.id
        )
    if org_role(ctx.session, principal, org.id) is not OrgRole.OWNER:
        raise Forbidden(
            "Only an owner can transfer ownership",
            code="permission_denied",
            org_id=org.id,
            extra={"missing_permission": Permission.ORG_TRANSFER.value},
        )
    target = resolve_member(ctx.session, org_id=org.id, ref=new_owner_ref)
    if target.id == principal.user_id:
        raise Unprocessable("You already own this organization", code="already_owner")
    new = repository.org_membership(ctx.session, org_id=org.id, user_id=target.id)
    old = repository.org_membership(ctx.session, org_id=org.id, user_id=principal.user_id)
    assert new is not None and old is not None
    new.role = OrgRole.OWNER.value
    old.role = OrgRole.ADMIN.value
    principal.org_roles[org.id] = OrgRole.ADMIN
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="user",
        target_id=target.id,
        summary={"from": principal.user_id, "to": target.id},
    )
    return new


def list_org_members(
    session: Session, principal: Principal, org: Organization, page: PageRequest
) -> Page[OrgMembership]:
    authorize(session, principal, Permission.MEMBER_READ, org_id=org.id)
    return repository.org_members(session, org_id=org.id, page=page)


def _check_org_role_grant(ctx: Ctx, principal: Principal, org_id: str, role: OrgRole) -> None:
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
    role = _parse_org_role(role_name)
    user = resolve_member(ctx.session, org_id=org.id, ref=user_ref)
    membership = repository.org_membership(ctx.session, org_id=org.id, user_id=user.id)
    assert membership is not None
    _check_org_role_grant(ctx, principal, org.id, role)
    _check_org_role_grant(ctx, principal, org.id, OrgRole(membership.role))
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
        _check_org_role_grant(ctx, principal, org.id, OrgRole(membership.role))
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


def _parse_org_role(name: str) -> OrgRole:
    try:
        return parse_org_role(name)
    except ValueError:
        raise Unprocessable(
            "Organization role must be owner, admin or member", code="invalid_role"
        ) from None


def _parse_team_role(ctx: Ctx, org_id: str, name: str) -> str:
    """A built-in team role's name, or the id of one of the org's custom roles."""
    return parse_team_role_ref(ctx.session, org_id=org_id, name=name)


# ---- teams ----


def create_team(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    *,
    name: str,
    slug: str | None,
    description: str,
    parent_team_id: str | None,
    settings: dict[str, Any],
) -> Team:
    if (
        parent_team_id is not None
        and repository.team_in_org(ctx.session, org_id=org.id, team_id=parent_team_id) is None
    ):
        raise Unprocessable(
            "Parent team not found in this organization", code="invalid_parent_team"
        )
    if slug is not None:
        check_slug(slug)
        if repository.team_slug_taken(ctx.session, org_id=org.id, slug=slug):
            raise Conflict(
                f"A team with slug {slug!r} exists in this organization", code="slug_taken"
            )
    else:
        base = slugify(name)
        slug = _free_slug(base, repository.team_slugs_like(ctx.session, org_id=org.id, base=base))
    now = ctx.clock.now()
    team = Team(
        id=new_id("team"),
        org_id=org.id,
        name=name,
        slug=slug,
        description=description,
        parent_team_id=parent_team_id,
        settings=settings,
        created_at=now,
        updated_at=now,
    )
    ctx.session.add(team)
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        team_id=team.id,
        target_type="team",
        target_id=team.id,
        summary={"name": name, "slug": slug, "parent_team_id": parent_team_id},
    )
    return team


def list_teams(
    session: Session, principal: Principal, org: Organization, page: PageRequest
) -> Page[Team]:
    if principal.kind == "api_key" and principal.key_team_id is not None:
        team = repository.team_in_org(session, org_id=org.id, team_id=principal.key_team_id)
        return Page(items=[team] if team and not page.cursor else [], next_cursor=None)
    return repository.teams_of_org(session, org_id=org.id, page=page)


def update_team(ctx: Ctx, principal: Principal, team: Team, changes: dict[str, Any]) -> Team:
    if "slug" in changes:
        check_slug(changes["slug"])
        if changes["slug"] != team.slug and repository.team_slug_taken(
            ctx.session, org_id=team.org_id, slug=changes["slug"]
        ):
            raise Conflict(
                f"A team with slug {changes['slug']!r} exists in this organization",
                code="slug_taken",
            )
    if changes.get("parent_team_id") is not None:
        parent = repository.team_in_org(
            ctx.session, org_id=team.org_id, team_id=changes["parent_team_id"]
        )
        if parent is None:
            raise Unprocessable(
                "Parent team not found in this organization", code="invalid_parent_team"
            )
        if team.id in repository.team_ancestors(ctx.session, org_id=team.org_id, team_id=parent.id):
            raise Unprocessable("A team cannot be its own ancestor", code="team_cycle")
    summary = _before_after(team, changes)
    for key, value in changes.items():
        setattr(team, key, value)
    team.updated_at = ctx.clock.now()
    audit.record(
        ctx,
        principal,
        org_id=team.org_id,
        team_id=team.id,
        target_type="team",
        target_id=team.id,
        summary=summary,
    )
    return team


def delete_team(ctx: Ctx, principal: Principal, team: Team, *, confirm: str) -> None:
    if confirm != team.slug:
        raise Unprocessable(
            "Type the team's slug in `confirm` to delete it", code="confirmation_mismatch"
        )
    org_id, team_id, slug = team.org_id, team.id, team.slug
    ctx.session.expunge(team)
    repository.detach_children(ctx.session, org_id=org_id, team_id=team_id)
    repository.delete_team(ctx.session, org_id=org_id, team_id=team_id)
    audit.record(
        ctx,
        principal,
        org_id=org_id,
        team_id=team_id,
        target_type="team",
        target_id=team_id,
        summary={"slug": slug},
    )


def list_team_members(
    session: Session, principal: Principal, team: Team, page: PageRequest
) -> Page[TeamMembership]:
    return repository.team_members(session, org_id=team.org_id, team_id=team.id, page=page)


def _check_team_role_grant(ctx: Ctx, principal: Principal, team: Team, role: str) -> None:
    # A role (built-in or custom) may be given only by someone holding all it carries.
    check_may_assign(ctx.session, principal, org_id=team.org_id, team_id=team.id, ref=role)


def add_team_member(
    ctx: Ctx, principal: Principal, team: Team, *, user_ref: str, role_name: str
) -> TeamMembership:
    role = _parse_team_role(ctx, team.org_id, role_name)
    _check_team_role_grant(ctx, principal, team, role)
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
    membership = _insert_team_member(ctx, team=team, user_id=user.id, role=role)
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


def _insert_team_member(ctx: Ctx, *, team: Team, user_id: str, role: str) -> TeamMembership:
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
    role = _parse_team_role(ctx, team.org_id, role_name)
    membership = _team_member(ctx, team, user_ref)
    _check_team_role_grant(ctx, principal, team, role)
    _check_team_role_grant(ctx, principal, team, membership.role)
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
        _check_team_role_grant(ctx, principal, team, membership.role)
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


# ---- invitations ----


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str


def _new_invitation(
    ctx: Ctx, principal: Principal, *, org_id: str, team_id: str | None, email: str, role: str
) -> IssuedInvitation:
    normalized = email.strip().lower()
    if repository.pending_invitation_for(
        ctx.session,
        org_id=org_id,
        email_normalized=normalized,
        team_id=team_id,
        now=ctx.clock.now(),
    ):
        raise Conflict(
            "A pending invitation for this email exists; revoke it to send a new one",
            code="already_invited",
        )
    token = new_secret(INVITATION_TOKEN_PREFIX)
    now = ctx.clock.now()
    invitation = Invitation(
        id=new_id("inv"),
        org_id=org_id,
        team_id=team_id,
        email=email.strip(),
        email_normalized=normalized,
        role=role,
        token_hash=token_hash(token),
        status="pending",
        invited_by=principal.user_id,
        created_at=now,
        expires_at=now + timedelta(seconds=ctx.settings.invitation_ttl_seconds),
    )
    ctx.session.add(invitation)
    ctx.session.flush()
    return IssuedInvitation(invitation=invitation, token=token)


def create_invitation(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    *,
    email: str,
    role_name: str,
    team_id: str | None,
) -> IssuedInvitation:
    normalized = email.strip().lower()
    if team_id is not None:
        team = repository.team_in_org(ctx.session, org_id=org.id, team_id=team_id)
        if team is None:
            raise NotFound("Team not found")
        authorize(ctx.session, principal, Permission.MEMBER_INVITE, org_id=org.id, team_id=team.id)
        role = _parse_team_role(ctx, org.id, role_name)
        _check_team_role_grant(ctx, principal, team, role)
        invitee = repository.user_by_ref(ctx.session, normalized)
        if invitee and repository.team_membership(
            ctx.session, org_id=org.id, team_id=team.id, user_id=invitee.id
        ):
            raise Conflict("Already a member of this team", code="already_member")
    else:
        authorize(ctx.session, principal, Permission.MEMBER_INVITE, org_id=org.id)
        org_level = _parse_org_role(role_name)
        _check_org_role_grant(ctx, principal, org.id, org_level)
        role = org_level.value
        invitee = repository.user_by_ref(ctx.session, normalized)
        if invitee and repository.org_membership(ctx.session, org_id=org.id, user_id=invitee.id):
            raise Conflict("Already a member of this organization", code="already_member")
    issued = _new_invitation(ctx, principal, org_id=org.id, team_id=team_id, email=email, role=role)
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        team_id=team_id,
        target_type="invitation",
        target_id=issued.invitation.id,
        summary={"role": role, "team_id": team_id},
    )
    return issued


def list_invitations(
    session: Session,
    principal: Principal,
    org: Organization,
    *,
    status: str | None,
    page: PageRequest,
    now: datetime,
) -> Page[Invitation]:
    return repository.invitations_of_org(session, org_id=org.id, status=status, page=page, now=now)


def _open_invitation(ctx: Ctx, principal: Principal, token: str) -> tuple[Invitation, User]:
    invitation = repository.invitation_by_token_hash(ctx.session, token_hash(token))
    user = repository.user_by_ref(ctx.session, principal.user_id)
    # Someone else's invitation answers like one that does not exist (404, never 403): a token
    # must not tell a stranger, or another tenant, that it is live, used or expired.
    if invitation is None or user is None or user.email_normalized != invitation.email_normalized:
        raise NotFound("Invitation not found; it may have been sent to another email address")
    if invitation.status != "pending":
        raise Gone(
            f"This invitation was already {invitation.status}",
            code=f"invitation_{invitation.status}",
        )
    if as_utc(invitation.expires_at) <= ctx.clock.now():
        raise Gone("This invitation has expired", code="invitation_expired")
    if principal.kind != "user":
        raise Forbidden("Invitations are answered by signed-in users", code="users_only")
    return invitation, user


def accept_invitation(ctx: Ctx, principal: Principal, token: str) -> Invitation:
    invitation, user = _open_invitation(ctx, principal, token)
    org_membership = repository.org_membership(
        ctx.session, org_id=invitation.org_id, user_id=user.id
    )
    if invitation.team_id is None:
        if org_membership is not None:
            raise Conflict("Already a member of this organization", code="already_member")
        _add_org_member(
            ctx, org_id=invitation.org_id, user_id=user.id, role=OrgRole(invitation.role)
        )
    else:
        team = repository.team_in_org(
            ctx.session, org_id=invitation.org_id, team_id=invitation.team_id
        )
        if team is None:
            raise Gone("The team of this invitation no longer exists", code="invitation_revoked")
        if org_membership is None:
            _add_org_member(ctx, org_id=invitation.org_id, user_id=user.id, role=OrgRole.MEMBER)
        if repository.team_membership(
            ctx.session, org_id=team.org_id, team_id=team.id, user_id=user.id
        ):
            raise Conflict("Already a member of this team", code="already_member")
        _insert_team_member(ctx, team=team, user_id=user.id, role=invitation.role)
    invitation.status = "accepted"
    invitation.responded_at = ctx.clock.now()
    audit.record(
        ctx,
        principal,
        org_id=invitation.org_id,
        team_id=invitation.team_id,
        target_type="invitation",
        target_id=invitation.id,
        summary={"role": invitation.role},
    )
    return invitation


def decline_invitation(ctx: Ctx, principal: Principal, token: str) -> Invitation:
    invitation, _ = _open_invitation(ctx, principal, token)
    invitation.status = "declined"
    invitation.responded_at = ctx.clock.now()
    audit.record(
        ctx,
        principal,
        org_id=invitation.org_id,
        team_id=invitation.team_id,
        target_type="invitation",
        target_id=invitation.id,
    )
    return invitation


def revoke_invitation(ctx: Ctx, principal: Principal, invitation_id: str) -> Invitation:
    invitation = repository.unscoped_invitation(ctx.session, invitation_id)
    if invitation is None or not is_in_org(ctx.session, principal, invitation.org_id):
        raise NotFound("Invitation not found")
    if invitation.team_id is None:
        authorize(ctx.session, principal, Permission.MEMBER_INVITE, org_id=invitation.org_id)
    else:
        authorize(
            ctx.session,
            principal,
            Permission.MEMBER_INVITE,
            org_id=invitation.org_id,
            team_id=invitation.team_id,
        )
    if invitation.status != "pending":
        raise Conflict(
            f"This invitation was already {invitation.status}",
            code=f"invitation_{invitation.status}",
        )
    invitation.status = "revoked"
    invitation.responded_at = ctx.clock.now()
    audit.record(
        ctx,
        principal,
        org_id=invitation.org_id,
        team_id=invitation.team_id,
        target_type="invitation",
        target_id=invitation.id,
    )
    return invitation


# ---- onboarding ----


@dataclass(frozen=True)
class Onboarded:
    org: Organization
    team: Team
    owner: User


def onboard(
    ctx: Ctx, *, company_name: str, owner: User, plan: str, trial: str | None = None
) -> Onboarded:
    org = _insert_org(
        ctx, name=company_name, slug=None, plan=plan, billing_email=owner.email, settings={}
    )
    _add_org_member(ctx, org_id=org.id, user_id=owner.id, role=OrgRole.OWNER)
    now = ctx.clock.now()
    team = Team(
        id=new_id("team"),
        org_id=org.id,
        name="default",
        slug="default",
        description="",
        parent_team_id=None,
        settings={},
        created_at=now,
        updated_at=now,
    )
    ctx.session.add(team)
    ctx.session.flush()
    audit.record(
        ctx,
        None,
        org_id=org.id,
        target_type="organization",
        target_id=org.id,
        actor=("user", owner.id),
        summary={
            "name": company_name,
            "slug": org.slug,
            "plan": plan,
            **({"trial": trial} if trial else {}),
        },
    )
    return Onboarded(org=org, team=team, owner=owner)


# ---- a person's data: export, erasure, and the worker's view of orgs ----


@dataclass(frozen=True)
class MemberRecords:
    """What tenancy holds about one person (in one org, when the export is an org's)."""

    memberships: list[tuple[OrgMembership, Organization]]
    team_memberships: list[tuple[TeamMembership, Team]]
    invitations_sent: list[Invitation]
    invitations_received: list[Invitation]


def member_records(
    session: Session, user: User, *, org_id: str | None, team_id: str | None = None
) -> MemberRecords:
    """The person's memberships and invitations; only org `org_id`'s (and only team `team_id`
    among teams) when given, as an org's admin or an API key bound to it sees them."""
    orgs = repository.memberships_of_user(session, user_id=user.id)
    teams = repository.team_memberships_of_user(session, user_id=user.id)
    if org_id is not None:
        orgs = [(m, o) for m, o in orgs if o.id == org_id]
        teams = [(m, t) for m, t in teams if t.org_id == org_id and team_id in (None, t.id)]
    return MemberRecords(
        memberships=orgs,
        team_memberships=teams,
        invitations_sent=repository.invitations_sent_by(session, user_id=user.id, org_id=org_id),
        invitations_received=repository.invitations_to(
            session, email_normalized=user.email_normalized, org_id=org_id
        ),
    )


def orgs_only_owned_by(session: Session, *, user_id: str) -> list[Organization]:
    """Orgs the person is the last owner of. Each org is locked (in id order, so two erasures
    cannot deadlock), so a concurrent demotion cannot leave an org with no owner after all."""
    alone: list[Organization] = []
    for org_id in repository.owned_org_ids(session, user_id=user_id):
        repository.lock_org(session, org_id=org_id)
        if repository.count_org_owners(session, org_id=org_id) <= 1:
            org = repository.unscoped_org_by_ref(session, org_id)
            if org is not None:
                alone.append(org)
    return alone


def forget_member(session: Session, user: User) -> None:
    """Erasure: the person leaves every org and team; invitations to them go, those they sent
    stay without a sender."""
    repository.unscoped_forget_member(
        session, user_id=user.id, email_normalized=user.email_normalized
    )
