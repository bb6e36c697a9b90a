"""Organizations: creating one (for oneself, or for someone else), listing, updating, deleting,
and transferring ownership."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.audit.retention import check_retention_setting
from tenantry.authz.catalog import OrgRole, Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import org_role
from tenantry.identity.models import User
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, Forbidden, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.kit.pagination import Page, PageRequest
from tenantry.plans import live as live_catalog
from tenantry.tenancy import repository
from tenantry.tenancy.fields import before_after, check_slug, free_slug, slugify
from tenantry.tenancy.invitations import IssuedInvitation, new_invitation
from tenantry.tenancy.memberships import add_org_member
from tenantry.tenancy.models import Organization, OrgMembership, OrgStatus
from tenantry.tenancy.scope import resolve_member


@dataclass(frozen=True)
class CreatedOrg:
    org: Organization
    owner_invitation: IssuedInvitation | None


def insert_org(
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
        slug = free_slug(base, repository.slugs_like(ctx.session, base))
    now = ctx.clock.now()
    org = Organization(
        id=new_id("org"),
        name=name,
        slug=slug,
        plan=plan,
        billing_email=billing_email,
        settings=settings,
        status=OrgStatus.ACTIVE,
        created_at=now,
        updated_at=now,
    )
    ctx.session.add(org)
    ctx.session.flush()
    return org


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
    org = insert_org(
        ctx, name=name, slug=slug, plan=plan, billing_email=billing_email, settings=settings
    )
    add_org_member(ctx, org_id=org.id, user_id=principal.user_id, role=OrgRole.OWNER)
    principal.org_roles[org.id] = OrgRole.OWNER
    invitation: IssuedInvitation | None = None
    owner: User | None = None
    if owner_email:
        owner = repository.user_by_ref(ctx.session, owner_email)
        if owner is not None and owner.id != principal.user_id:
            add_org_member(ctx, org_id=org.id, user_id=owner.id, role=OrgRole.OWNER)
        elif owner is None:
            invitation = new_invitation(
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
    org = insert_org(ctx, name=name, slug=slug, plan=plan, billing_email=owner_email, settings={})
    owner = repository.user_by_ref(ctx.session, owner_email)
    invitation: IssuedInvitation | None = None
    if owner is not None:
        add_org_member(ctx, org_id=org.id, user_id=owner.id, role=OrgRole.OWNER)
    else:
        invitation = new_invitation(
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
    summary = before_after(org, changes)
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
