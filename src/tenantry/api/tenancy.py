"""HTTP routes of tenancy. Each mutating route's `name` is the audit action it records."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from tenantry.api.billing import ProviderDep
from tenantry.authz.catalog import Permission
from tenantry.billing import subscriptions
from tenantry.http.auth import OrgScope, PrincipalDep, TeamScope, org_scope, team_scope
from tenantry.http.body import JsonBodyRoute
from tenantry.http.state import app_state
from tenantry.http.work import CtxDep
from tenantry.identity import repository as identity_repository
from tenantry.identity import service as identity
from tenantry.identity.models import User
from tenantry.kit.context import Ctx, quota_exempt
from tenantry.kit.errors import Unprocessable
from tenantry.kit.pagination import PageDep, PageOut
from tenantry.plans import live as live_catalog
from tenantry.plans.catalog import DEFAULT_PLAN
from tenantry.sso import repository as sso_repository
from tenantry.tenancy import invitations, memberships, onboarding, orgs, security, teams
from tenantry.tenancy.models import Invitation, OrgMembership, TeamMembership
from tenantry.tenancy.schemas import (
    DeleteConfirmIn,
    InvitationCreatedOut,
    InvitationCreateIn,
    InvitationLinkOut,
    InvitationOut,
    MemberRoleIn,
    OnboardIn,
    OnboardOut,
    OrgCreatedOut,
    OrgCreateIn,
    OrgMemberOut,
    OrgOut,
    OrgUpdateIn,
    SecurityPolicyIn,
    SecurityPolicyOut,
    TeamCreateIn,
    TeamMemberIn,
    TeamMemberOut,
    TeamOut,
    TeamUpdateIn,
    TransferIn,
)

router = APIRouter(prefix="/api/v1", route_class=JsonBodyRoute)

OrgRead = Annotated[OrgScope, Depends(org_scope(Permission.ORG_READ))]
OrgUpdate = Annotated[OrgScope, Depends(org_scope(Permission.ORG_UPDATE))]
OrgDelete = Annotated[OrgScope, Depends(org_scope(Permission.ORG_DELETE))]
OrgTransfer = Annotated[OrgScope, Depends(org_scope(Permission.ORG_TRANSFER))]
OrgMembersRead = Annotated[OrgScope, Depends(org_scope(Permission.MEMBER_READ))]
OrgMembersUpdate = Annotated[OrgScope, Depends(org_scope(Permission.MEMBER_UPDATE))]
OrgInvite = Annotated[OrgScope, Depends(org_scope(Permission.MEMBER_INVITE))]
TeamsRead = Annotated[OrgScope, Depends(org_scope(Permission.TEAM_READ))]
TeamsCreate = Annotated[OrgScope, Depends(org_scope(Permission.TEAM_CREATE))]
TeamRead = Annotated[TeamScope, Depends(team_scope(Permission.TEAM_READ))]
TeamUpdate = Annotated[TeamScope, Depends(team_scope(Permission.TEAM_UPDATE))]
TeamDelete = Annotated[TeamScope, Depends(team_scope(Permission.TEAM_DELETE))]
TeamMembersRead = Annotated[TeamScope, Depends(team_scope(Permission.MEMBER_READ))]
TeamMembersAdd = Annotated[TeamScope, Depends(team_scope(Permission.MEMBER_INVITE))]
TeamMembersUpdate = Annotated[TeamScope, Depends(team_scope(Permission.MEMBER_UPDATE))]
TeamMembersRemove = Annotated[TeamScope, Depends(team_scope(Permission.TEAM_READ))]


def asked_trial(ctx: Ctx, plan: str | None, tier: str | None) -> str | None:
    """The paid plan a sign-up asks for (`plan`, or its alias `tier`), checked against the
    catalog; None for none or the Free plan. 422 before anything is written."""
    if plan is not None and tier is not None and plan != tier:
        raise Unprocessable("Send `plan` or `tier`, not two different plans", code="invalid_plan")
    asked = plan if plan is not None else tier
    if asked is None:
        return None
    live_catalog.current(ctx.session).check(asked)
    return None if asked == DEFAULT_PLAN else asked


def invitation_url(ctx: Ctx, token: str) -> str:
    return f"{ctx.origin.base_url.rstrip('/')}/invitations/{token}"


def link_out(ctx: Ctx, issued: invitations.IssuedInvitation) -> InvitationLinkOut:
    inv = issued.invitation
    return InvitationLinkOut(
        id=inv.id,
        email=inv.email,
        role=inv.role,
        token=issued.token,
        url=invitation_url(ctx, issued.token),
        expires_at=inv.expires_at,
    )


# ---- organizations ----


@router.post(
    "/orgs",
    name="organization.created",
    status_code=201,
    response_model=OrgCreatedOut,
    tags=["organizations"],
)
def create_org(
    body: OrgCreateIn, ctx: CtxDep, principal: PrincipalDep, provider: ProviderDep
) -> Response:
    """A new org, owned by you. It starts on the Free plan; a paid `plan` (or `tier`) starts
    a trial of it that needs a payment method by its end (docs/billing.md#trials)."""
    trial = asked_trial(ctx, body.plan, body.tier)
    created = orgs.create_org(
        ctx,
        principal,
        name=body.name,
        slug=body.slug,
        plan=DEFAULT_PLAN,
        billing_email=body.billing_email,
        settings=body.settings,
        owner_email=body.owner_email,
        trial=trial,
    )
    ends = None
    if trial is not None:
        ends = subscriptions.start_trial(ctx, created.org, trial, via=provider.name).trial_end
    out = OrgCreatedOut.model_validate(
        {
            **OrgOut.model_validate(created.org).model_dump(),
            "owner_invitation": link_out(ctx, created.owner_invitation)
            if created.owner_invitation
            else None,
            "trial_ends_at": ends,
        }
    )
    return ctx.done(out, status=201)


@router.get("/orgs", response_model=PageOut[OrgOut], tags=["organizations"])
def list_orgs(ctx: CtxDep, principal: PrincipalDep, page: PageDep) -> PageOut[OrgOut]:
    found = orgs.list_orgs(ctx.session, principal, page)
    return PageOut(
        items=[OrgOut.model_validate(o) for o in found.items], next_cursor=found.next_cursor
    )


@router.get("/orgs/{org}", response_model=OrgOut, tags=["organizations"])
def show_org(scope: OrgRead) -> OrgOut:
    return OrgOut.model_validate(scope.org)


@router.patch(
    "/orgs/{org}", name="organization.updated", response_model=OrgOut, tags=["organizations"]
)
@quota_exempt
def update_org(body: OrgUpdateIn, scope: OrgUpdate) -> Response:
    org = orgs.update_org(
        scope.ctx, scope.principal, scope.org, body.model_dump(exclude_unset=True)
    )
    return scope.ctx.done(OrgOut.model_validate(org))


@router.delete("/orgs/{org}", name="organization.deleted", status_code=204, tags=["organizations"])
def delete_org(body: DeleteConfirmIn, scope: OrgDelete) -> Response:
    orgs.delete_org(scope.ctx, scope.principal, scope.org, confirm=body.confirm)
    return scope.ctx.done(None, status=204)


@router.post(
    "/orgs/{org}/transfer-ownership",
    name="organization.ownership_transferred",
    response_model=OrgMemberOut,
    tags=["organizations"],
)
def transfer_ownership(body: TransferIn, scope: OrgTransfer) -> Response:
    membership = orgs.transfer_ownership(
        scope.ctx, scope.principal, scope.org, new_owner_ref=body.new_owner
    )
    return scope.ctx.done(_org_members_out(scope.ctx, [membership])[0])


def _users(ctx: Ctx, ids: list[str]) -> dict[str, User]:
    return identity_repository.users_by_ids(ctx.session, ids)


def _org_members_out(ctx: Ctx, rows: list[OrgMembership]) -> list[OrgMemberOut]:
    users = _users(ctx, [m.user_id for m in rows])
    return [
        OrgMemberOut(
            user_id=m.user_id,
            email=users[m.user_id].email,
            username=users[m.user_id].username,
            full_name=users[m.user_id].full_name,
            role=m.role,
            joined_at=m.created_at,
        )
        for m in rows
    ]


@router.get("/orgs/{org}/members", response_model=PageOut[OrgMemberOut], tags=["organizations"])
def list_org_members(scope: OrgMembersRead, page: PageDep) -> PageOut[OrgMemberOut]:
    found = memberships.list_org_members(scope.ctx.session, scope.principal, scope.org, page)
    return PageOut(
        items=_org_members_out(scope.ctx, list(found.items)), next_cursor=found.next_cursor
    )


@router.patch(
    "/orgs/{org}/members/{user}",
    name="organization.member.updated",
    response_model=OrgMemberOut,
    tags=["organizations"],
)
def update_org_member(user: str, body: MemberRoleIn, scope: OrgMembersUpdate) -> Response:
    membership = memberships.update_org_member(
        scope.ctx, scope.principal, scope.org, user_ref=user, role_name=body.role
    )
    return scope.ctx.done(_org_members_out(scope.ctx, [membership])[0])


@router.delete(
    "/orgs/{org}/members/{user}",
    name="organization.member.removed",
    status_code=204,
    tags=["organizations"],
)
def remove_org_member(user: str, scope: OrgRead) -> Response:
    memberships.remove_org_member(scope.ctx, scope.principal, scope.org, user_ref=user)
    return scope.ctx.done(None, status=204)


@router.delete(
    "/orgs/{org}/members/{user}/mfa",
    name="organization.member.mfa_reset",
    status_code=204,
    tags=["organizations"],
)
def reset_member_mfa(user: str, scope: OrgRead) -> Response:
    """An owner's recovery for a member who lost their authenticator and backup codes: their
    second factor is removed (audited); a policy that requires MFA has them enrol again at
    their next sign-in."""
    security.reset_member_mfa(scope.ctx, scope.principal, scope.org, user_ref=user)
    return scope.ctx.done(None, status=204)


# ---- the security policy ----


def _policy_out(ctx: Ctx, org_id: str, view: security.PolicyView) -> SecurityPolicyOut:
    sso = sso_repository.policy_of(ctx.session, org_id=org_id)
    return SecurityPolicyOut(
        org_id=org_id,
        password=view.rules.password,
        mfa={
            **view.rules.mfa.model_dump(),
            "required_since": view.mfa_required_since,
            "enforced_from": view.mfa_enforced_from,
        },
        sessions=view.rules.sessions,
        ip_allowlist=view.rules.ip_allowlist,
        sso_enforced=bool(sso and sso.enforced),
        updated_at=view.updated_at,
    )


@router.get(
    "/orgs/{org}/security-policy", response_model=SecurityPolicyOut, tags=["security policy"]
)
def read_security_policy(scope: OrgRead) -> SecurityPolicyOut:
    """The org's security policy; every member may read the rules they are held to."""
    view = security.read_policy(scope.ctx.session, scope.principal, scope.org)
    return _policy_out(scope.ctx, scope.org.id, view)


@router.put(
    "/orgs/{org}/security-policy",
    name="organization.security_policy_updated",
    response_model=SecurityPolicyOut,
    tags=["security policy"],
)
def set_security_policy(body: SecurityPolicyIn, scope: OrgRead) -> Response:
    """Replaces the policy. Password and MFA rules are account-wide: a person is held to the
    strictest of their orgs' (a refusal names the org and the rule). Session timeouts apply
    to sessions started after the change; the IP allowlist to the next request."""
    view = security.set_policy(scope.ctx, scope.principal, scope.org, body)
    return scope.ctx.done(_policy_out(scope.ctx, scope.org.id, view))


# ---- teams ----


@router.post(
    "/orgs/{org}/teams",
    name="team.created",
    status_code=201,
    response_model=TeamOut,
    tags=["teams"],
)
def create_team(body: TeamCreateIn, scope: TeamsCreate) -> Response:
    team = teams.create_team(
        scope.ctx,
        scope.principal,
        scope.org,
        name=body.name,
        slug=body.slug,
        description=body.description,
        parent_team_id=body.parent_team_id,
        settings=body.settings,
        private=body.private,
    )
    return scope.ctx.done(TeamOut.model_validate(team), status=201)


@router.get("/orgs/{org}/teams", response_model=PageOut[TeamOut], tags=["teams"])
def list_teams(scope: TeamsRead, page: PageDep) -> PageOut[TeamOut]:
    found = teams.list_teams(scope.ctx.session, scope.principal, scope.org, page)
    return PageOut(
        items=[TeamOut.model_validate(t) for t in found.items], next_cursor=found.next_cursor
    )


@router.get("/teams/{team}", response_model=TeamOut, tags=["teams"])
def show_team(scope: TeamRead) -> TeamOut:
    return TeamOut.model_validate(scope.team)


@router.patch("/teams/{team}", name="team.updated", response_model=TeamOut, tags=["teams"])
def update_team(body: TeamUpdateIn, scope: TeamUpdate) -> Response:
    team = teams.update_team(
        scope.ctx, scope.principal, scope.team, body.model_dump(exclude_unset=True)
    )
    return scope.ctx.done(TeamOut.model_validate(team))


@router.delete("/teams/{team}", name="team.deleted", status_code=204, tags=["teams"])
def delete_team(body: DeleteConfirmIn, scope: TeamDelete) -> Response:
    teams.delete_team(scope.ctx, scope.principal, scope.team, confirm=body.confirm)
    return scope.ctx.done(None, status=204)


def _team_members_out(ctx: Ctx, rows: list[TeamMembership]) -> list[TeamMemberOut]:
    users = _users(ctx, [m.user_id for m in rows])
    return [
        TeamMemberOut(
            user_id=m.user_id,
            team_id=m.team_id,
            email=users[m.user_id].email,
            username=users[m.user_id].username,
            full_name=users[m.user_id].full_name,
            role=m.role,
            joined_at=m.created_at,
        )
        for m in rows
    ]


@router.get("/teams/{team}/members", response_model=PageOut[TeamMemberOut], tags=["teams"])
def list_team_members(scope: TeamMembersRead, page: PageDep) -> PageOut[TeamMemberOut]:
    found = memberships.list_team_members(scope.ctx.session, scope.principal, scope.team, page)
    return PageOut(
        items=_team_members_out(scope.ctx, list(found.items)), next_cursor=found.next_cursor
    )


@router.post(
    "/teams/{team}/members",
    name="team.member.added",
    status_code=201,
    response_model=TeamMemberOut,
    tags=["teams"],
)
def add_team_member(body: TeamMemberIn, scope: TeamMembersAdd) -> Response:
    membership = memberships.add_team_member(
        scope.ctx, scope.principal, scope.team, user_ref=body.user, role_name=body.role
    )
    return scope.ctx.done(_team_members_out(scope.ctx, [membership])[0], status=201)


@router.patch(
    "/teams/{team}/members/{user}",
    name="team.member.updated",
    response_model=TeamMemberOut,
    tags=["teams"],
)
def update_team_member(user: str, body: MemberRoleIn, scope: TeamMembersUpdate) -> Response:
    membership = memberships.update_team_member(
        scope.ctx, scope.principal, scope.team, user_ref=user, role_name=body.role
    )
    return scope.ctx.done(_team_members_out(scope.ctx, [membership])[0])


@router.delete(
    "/teams/{team}/members/{user}", name="team.member.removed", status_code=204, tags=["teams"]
)
def remove_team_member(user: str, scope: TeamMembersRemove) -> Response:
    memberships.remove_team_member(scope.ctx, scope.principal, scope.team, user_ref=user)
    return scope.ctx.done(None, status=204)


# ---- invitations ----


def _invitation_created(ctx: Ctx, issued: invitations.IssuedInvitation) -> InvitationCreatedOut:
    base = InvitationOut.model_validate(issued.invitation).model_dump()
    return InvitationCreatedOut.model_validate(
        {**base, "token": issued.token, "url": invitation_url(ctx, issued.token)}
    )


@router.post(
    "/orgs/{org}/invitations",
    name="invitation.created",
    status_code=201,
    response_model=InvitationCreatedOut,
    tags=["invitations"],
)
def create_invitation(body: InvitationCreateIn, scope: OrgRead) -> Response:
    issued = invitations.create_invitation(
        scope.ctx,
        scope.principal,
        scope.org,
        email=body.email,
        role_name=body.role,
        team_id=body.team_id,
    )
    return scope.ctx.done(_invitation_created(scope.ctx, issued), status=201)


@router.get("/orgs/{org}/invitations", response_model=PageOut[InvitationOut], tags=["invitations"])
def list_invitations(
    scope: OrgInvite,
    page: PageDep,
    status: Annotated[
        Literal["pending", "accepted", "declined", "revoked", "all"], Query()
    ] = "pending",
) -> PageOut[InvitationOut]:
    found = invitations.list_invitations(
        scope.ctx.session,
        scope.principal,
        scope.org,
        status=None if status == "all" else status,
        page=page,
        now=scope.ctx.clock.now(),
    )
    return PageOut(
        items=[InvitationOut.model_validate(i) for i in found.items], next_cursor=found.next_cursor
    )


def _invitation_out(invitation: Invitation) -> InvitationOut:
    return InvitationOut.model_validate(invitation)


@router.post(
    "/invitations/{token}/accept",
    name="invitation.accepted",
    response_model=InvitationOut,
    tags=["invitations"],
)
def accept_invitation(token: str, ctx: CtxDep, principal: PrincipalDep) -> Response:
    return ctx.done(_invitation_out(invitations.accept_invitation(ctx, principal, token)))


@router.post(
    "/invitations/{token}/decline",
    name="invitation.declined",
    response_model=InvitationOut,
    tags=["invitations"],
)
def decline_invitation(token: str, ctx: CtxDep, principal: PrincipalDep) -> Response:
    return ctx.done(_invitation_out(invitations.decline_invitation(ctx, principal, token)))


@router.delete(
    "/invitations/{invitation_id}",
    name="invitation.revoked",
    response_model=InvitationOut,
    tags=["invitations"],
)
def revoke_invitation(invitation_id: str, ctx: CtxDep, principal: PrincipalDep) -> Response:
    return ctx.done(_invitation_out(invitations.revoke_invitation(ctx, principal, invitation_id)))


# ---- onboarding ----


@router.post(
    "/onboard",
    name="organization.onboarded",
    status_code=201,
    response_model=OnboardOut,
    tags=["onboarding"],
)
def onboard(body: OnboardIn, ctx: CtxDep, request: Request, provider: ProviderDep) -> Response:
    """A company's first sign-up: an account, its org (Free, or a trial of the paid `plan` or
    `tier` asked for) with a default team, and a session."""
    state = app_state(request)
    trial = asked_trial(ctx, body.plan, body.tier)
    owner = identity.create_user(
        ctx,
        passwords=state.passwords,
        email=body.admin_email,
        password=body.admin_password,
        full_name=body.admin_name,
    )
    done = onboarding.onboard(
        ctx, company_name=body.company_name, owner=owner, plan=DEFAULT_PLAN, trial=trial
    )
    ends = None
    if trial is not None:
        ends = subscriptions.start_trial(ctx, done.org, trial, via=provider.name).trial_end
    issued = identity.start_session(ctx, tokens=state.tokens, user=owner)
    out = OnboardOut(
        organization=OrgOut.model_validate(done.org),
        team=TeamOut.model_validate(done.team),
        user_id=owner.id,
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=int((issued.access_expires_at - ctx.clock.now()).total_seconds()),
        trial_ends_at=ends,
    )
    return ctx.done(out, status=201)
