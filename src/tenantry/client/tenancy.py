"""SDK calls of tenancy (mixed into `tenantry.client.api.Api`): organizations, teams,
memberships, invitations and onboarding."""

from __future__ import annotations

from typing import Any, Literal

from tenantry.client._calls import (
    API,
    Call,
    endpoint,
    fields,
    model,
    nothing,
    page_query,
    paged,
    segment,
)
from tenantry.client.models import (
    Invitation,
    InvitationCreated,
    Onboarded,
    Org,
    OrgCreated,
    OrgMember,
    Page,
    SecurityPolicy,
    Team,
    TeamMember,
)

# A plan of the server's catalog (`GET /api/v1/billing/plans`); the server checks it.
PlanName = str
InvitationStatus = Literal["pending", "accepted", "declined", "revoked", "all"]


class TenancyCalls:
    # ---- organizations ----

    @endpoint
    def create_org(
        self,
        name: str,
        *,
        slug: str | None = None,
        plan: PlanName | None = None,
        billing_email: str | None = None,
        settings: dict[str, Any] | None = None,
        owner_email: str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[OrgCreated]:
        """Create an organization owned by the caller. With `owner_email`, that person becomes an
        owner too; if they have no account yet, `owner_invitation` carries their invitation. It
        starts on the Free plan; a paid `plan` starts a trial of it (`trial_ends_at`)."""
        body = fields(
            name=name,
            slug=slug,
            plan=plan,
            billing_email=billing_email,
            settings=settings,
            owner_email=owner_email,
        )
        return Call(
            "POST", f"{API}/orgs", model(OrgCreated), body=body, idempotency_key=idempotency_key
        )

    @endpoint
    def list_orgs(self, *, limit: int | None = None, cursor: str | None = None) -> Call[Page[Org]]:
        return Call("GET", f"{API}/orgs", model(Page[Org]), params=page_query(limit, cursor))

    iter_orgs = paged(list_orgs)

    @endpoint
    def get_org(self, org: str) -> Call[Org]:
        return Call("GET", f"{API}/orgs/{segment(org)}", model(Org))

    @endpoint
    def update_org(
        self,
        org: str,
        *,
        name: str | None = None,
        slug: str | None = None,
        billing_email: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Call[Org]:
        """Rename, re-slug or re-configure an org. Its plan moves through billing
        (`subscribe`) or an operator (`set_tenant_plan`), never here."""
        body = fields(name=name, slug=slug, billing_email=billing_email, settings=settings)
        return Call("PATCH", f"{API}/orgs/{segment(org)}", model(Org), body=body)

    @endpoint
    def delete_org(self, org: str, *, confirm: str) -> Call[None]:
        """Delete an organization and all its data; `confirm` must be its slug."""
        return Call("DELETE", f"{API}/orgs/{segment(org)}", nothing, body={"confirm": confirm})

    @endpoint
    def transfer_ownership(self, org: str, new_owner: str) -> Call[OrgMember]:
        """Make a member (id or email) the owner; the current owner becomes an admin."""
        return Call(
            "POST",
            f"{API}/orgs/{segment(org)}/transfer-ownership",
            model(OrgMember),
            body={"new_owner": new_owner},
        )

    @endpoint
    def list_org_members(
        self, org: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[OrgMember]]:
        return Call(
            "GET",
            f"{API}/orgs/{segment(org)}/members",
            model(Page[OrgMember]),
            params=page_query(limit, cursor),
        )

    iter_org_members = paged(list_org_members)

    @endpoint
    def update_org_member(self, org: str, user: str, *, role: str) -> Call[OrgMember]:
        return Call(
            "PATCH",
            f"{API}/orgs/{segment(org)}/members/{segment(user)}",
            model(OrgMember),
            body={"role": role},
        )

    @endpoint
    def remove_org_member(self, org: str, user: str) -> Call[None]:
        return Call("DELETE", f"{API}/orgs/{segment(org)}/members/{segment(user)}", nothing)

    # ---- teams ----

    @endpoint
    def create_team(
        self,
        org: str,
        name: str,
        *,
        slug: str | None = None,
        description: str | None = None,
        parent_team_id: str | None = None,
        settings: dict[str, Any] | None = None,
        private: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Team]:
        """A team in the organization; `private=True`: seen only by its members and the
        organization's admins and owners."""
        body = fields(
            name=name,
            slug=slug,
            description=description,
            parent_team_id=parent_team_id,
            settings=settings,
            private=private,
        )
        return Call(
            "POST",
            f"{API}/orgs/{segment(org)}/teams",
            model(Team),
            body=body,
            idempotency_key=idempotency_key,
        )

    @endpoint
    def list_teams(
        self, org: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[Team]]:
        return Call(
            "GET",
            f"{API}/orgs/{segment(org)}/teams",
            model(Page[Team]),
            params=page_query(limit, cursor),
        )

    iter_teams = paged(list_teams)

    @endpoint
    def get_team(self, team: str) -> Call[Team]:
        return Call("GET", f"{API}/teams/{segment(team)}", model(Team))

    @endpoint
    def update_team(
        self,
        team: str,
        *,
        name: str | None = None,
        slug: str | None = None,
        description: str | None = None,
        parent_team_id: str | None = None,
        settings: dict[str, Any] | None = None,
        private: bool | None = None,
    ) -> Call[Team]:
        """Change a team; what is left out (None) stays. `private` makes it private or public."""
        body = fields(
            name=name,
            slug=slug,
            description=description,
            parent_team_id=parent_team_id,
            settings=settings,
            private=private,
        )
        return Call("PATCH", f"{API}/teams/{segment(team)}", model(Team), body=body)

    @endpoint
    def delete_team(self, team: str, *, confirm: str) -> Call[None]:
        """Delete a team; `confirm` must be its slug."""
        return Call("DELETE", f"{API}/teams/{segment(team)}", nothing, body={"confirm": confirm})

    @endpoint
    def list_team_members(
        self, team: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[TeamMember]]:
        return Call(
            "GET",
            f"{API}/teams/{segment(team)}/members",
            model(Page[TeamMember]),
            params=page_query(limit, cursor),
        )

    iter_team_members = paged(list_team_members)

    @endpoint
    def add_team_member(
        self, team: str, user: str, *, role: str, idempotency_key: str | None = None
    ) -> Call[TeamMember]:
        """Add a member of the team's organization (id or email) with a team role."""
        return Call(
            "POST",
            f"{API}/teams/{segment(team)}/members",
            model(TeamMember),
            body={"user": user, "role": role},
            idempotency_key=idempotency_key,
        )

    @endpoint
    def update_team_member(self, team: str, user: str, *, role: str) -> Call[TeamMember]:
        return Call(
            "PATCH",
            f"{API}/teams/{segment(team)}/members/{segment(user)}",
            model(TeamMember),
            body={"role": role},
        )

    @endpoint
    def remove_team_member(self, team: str, user: str) -> Call[None]:
        return Call("DELETE", f"{API}/teams/{segment(team)}/members/{segment(user)}", nothing)

    # ---- invitations ----

    @endpoint
    def create_invitation(
        self,
        org: str,
        email: str,
        *,
        role: str = "member",
        team_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[InvitationCreated]:
        """Invite someone by email to the organization, or with `team_id` to one of its teams
        (then `role` is a team role). The token and URL are shown only in this answer."""
        return Call(
            "POST",
            f"{API}/orgs/{segment(org)}/invitations",
            model(InvitationCreated),
            body=fields(email=email, role=role, team_id=team_id),
            idempotency_key=idempotency_key,
        )

    @endpoint
    def list_invitations(
        self,
        org: str,
        *,
        status: InvitationStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[Invitation]]:
        """Invitations of an organization; pending ones unless `status` says otherwise."""
        return Call(
            "GET",
            f"{API}/orgs/{segment(org)}/invitations",
            model(Page[Invitation]),
            params=page_query(limit, cursor, status=status),
        )

    iter_invitations = paged(list_invitations)

    @endpoint
    def accept_invitation(self, token: str) -> Call[Invitation]:
        """Accept an invitation sent to the signed-in user's email."""
        return Call("POST", f"{API}/invitations/{segment(token)}/accept", model(Invitation))

    @endpoint
    def decline_invitation(self, token: str) -> Call[Invitation]:
        return Call("POST", f"{API}/invitations/{segment(token)}/decline", model(Invitation))

    @endpoint
    def revoke_invitation(self, invitation_id: str) -> Call[Invitation]:
        return Call("DELETE", f"{API}/invitations/{segment(invitation_id)}", model(Invitation))

    # ---- onboarding ----
    @endpoint
    def onboard(
        self,
        company_name: str,
        admin_email: str,
        admin_password: str,
        *,
        admin_name: str | None = None,
        plan: PlanName | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Onboarded]:
        """Create an organization, its owner's account and a "default" team in one call. The
        answer carries the owner's tokens; this client's own credentials are left unchanged. A
        paid `plan` starts a trial of it (`trial_ends_at`); else the org is on Free."""
        body = fields(
            company_name=company_name,
            admin_email=admin_email,
            admin_password=admin_password,
            admin_name=admin_name,
            plan=plan,
        )
        return Call(
            "POST",
            f"{API}/onboard",
            model(Onboarded),
            body=body,
            auth=False,
            idempotency_key=idempotency_key,
        )

    # ---- the security policy ----

    @endpoint
    def security_policy(self, org: str) -> Call[SecurityPolicy]:
        return Call("GET", f"{API}/orgs/{segment(org)}/security-policy", model(SecurityPolicy))

    @endpoint
    def set_security_policy(
        self,
        org: str,
        *,
        password: dict[str, Any] | None = None,
        mfa: dict[str, Any] | None = None,
        sessions: dict[str, Any] | None = None,
        ip_allowlist: list[str] | None = None,
    ) -> Call[SecurityPolicy]:
        """Replace the org's security policy: a section left out takes its defaults (no rule);
        read the policy first to change one rule."""
        body = fields(password=password, mfa=mfa, sessions=sessions, ip_allowlist=ip_allowlist)
        return Call(
            "PUT", f"{API}/orgs/{segment(org)}/security-policy", model(SecurityPolicy), body=body
        )

    @endpoint
    def reset_member_mfa(self, org: str, user: str) -> Call[None]:
        """An owner's recovery: the member's second factor is removed (audited)."""
        return Call("DELETE", f"{API}/orgs/{segment(org)}/members/{segment(user)}/mfa", nothing)
