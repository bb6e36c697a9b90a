"""Invitations into an org or one of its teams: sending (a token, by email), answering (accept,
decline), revoking, listing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import OrgRole, Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize, is_in_org
from tenantry.identity.models import User
from tenantry.kit.clock import as_utc
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, Forbidden, Gone, NotFound
from tenantry.kit.ids import new_id
from tenantry.kit.pagination import Page, PageRequest
from tenantry.kit.security import new_secret, token_hash
from tenantry.tenancy import repository
from tenantry.tenancy.memberships import (
    add_org_member,
    check_org_role_grant,
    check_team_role_grant,
    insert_team_member,
    org_role_from,
    team_role_from,
)
from tenantry.tenancy.models import Invitation, InvitationStatus, Organization

INVITATION_TOKEN_PREFIX = "tni_"


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str


def new_invitation(
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
        status=InvitationStatus.PENDING,
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
    one_of_many: bool = False,
) -> IssuedInvitation:
    """An invitation to the org or one of its teams. `one_of_many`: one of several sent by one
    request (a pasted list), each recorded as its own audit event."""
    normalized = email.strip().lower()
    if team_id is not None:
        team = repository.team_in_org(ctx.session, org_id=org.id, team_id=team_id)
        if team is None:
            raise NotFound("Team not found")
        authorize(ctx.session, principal, Permission.MEMBER_INVITE, org_id=org.id, team_id=team.id)
        role = team_role_from(ctx, org.id, role_name)
        check_team_role_grant(ctx, principal, team, role)
        invitee = repository.user_by_ref(ctx.session, normalized)
        if invitee and repository.team_membership(
            ctx.session, org_id=org.id, team_id=team.id, user_id=invitee.id
        ):
            raise Conflict("Already a member of this team", code="already_member")
    else:
        authorize(ctx.session, principal, Permission.MEMBER_INVITE, org_id=org.id)
        org_level = org_role_from(role_name)
        check_org_role_grant(ctx, principal, org.id, org_level)
        role = org_level.value
        invitee = repository.user_by_ref(ctx.session, normalized)
        if invitee and repository.org_membership(ctx.session, org_id=org.id, user_id=invitee.id):
            raise Conflict("Already a member of this organization", code="already_member")
    issued = new_invitation(ctx, principal, org_id=org.id, team_id=team_id, email=email, role=role)
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        team_id=team_id,
        target_type="invitation",
        target_id=issued.invitation.id,
        summary={"role": role, "team_id": team_id},
        one_of_many=one_of_many,
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
    if invitation.status != InvitationStatus.PENDING:
        raise Gone(
            f"This invitation was already {invitation.status}",
            code=f"invitation_{invitation.status}",
        )
    if as_utc(invitation.expires_at) <= ctx.clock.now():
        raise Gone("This invitation has expired", code="invitation_expired")
    if principal.kind != "user":
        raise Forbidden("Invitations are answered by signed-in users", code="users_only")
    return invitation, user


def invitation_to_answer(ctx: Ctx, principal: Principal, token: str) -> Invitation:
    """The invitation `token` opens for the signed-in person, shown before they accept or
    decline it: refused exactly as accepting it would be (404 for anyone else's, 410 once it
    is answered or expired)."""
    return _open_invitation(ctx, principal, token)[0]


def accept_invitation(ctx: Ctx, principal: Principal, token: str) -> Invitation:
    invitation, user = _open_invitation(ctx, principal, token)
    org_membership = repository.org_membership(
        ctx.session, org_id=invitation.org_id, user_id=user.id
    )
    if invitation.team_id is None:
        if org_membership is not None:
            raise Conflict("Already a member of this organization", code="already_member")
        add_org_member(
            ctx, org_id=invitation.org_id, user_id=user.id, role=OrgRole(invitation.role)
        )
    else:
        team = repository.team_in_org(
            ctx.session, org_id=invitation.org_id, team_id=invitation.team_id
        )
        if team is None:
            raise Gone("The team of this invitation no longer exists", code="invitation_revoked")
        if org_membership is None:
            add_org_member(ctx, org_id=invitation.org_id, user_id=user.id, role=OrgRole.MEMBER)
        if repository.team_membership(
            ctx.session, org_id=team.org_id, team_id=team.id, user_id=user.id
        ):
            raise Conflict("Already a member of this team", code="already_member")
        insert_team_member(ctx, team=team, user_id=user.id, role=invitation.role)
    invitation.status = InvitationStatus.ACCEPTED
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
    invitation.status = InvitationStatus.DECLINED
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
    if invitation.status != InvitationStatus.PENDING:
        raise Conflict(
            f"This invitation was already {invitation.status}",
            code=f"invitation_{invitation.status}",
        )
    invitation.status = InvitationStatus.REVOKED
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
