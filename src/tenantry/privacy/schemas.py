"""Bodies of the personal-data endpoints: the export document and the erasure confirmation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from tenantry.audit.schemas import AuditEventOut
from tenantry.kit.schemas import Input, Output
from tenantry.privacy.service import PersonalData
from tenantry.tenancy.models import Invitation

EXPORT_FORMAT = "tenantry-personal-data/1"


class EraseIn(Input):
    confirm: str = Field(
        min_length=1, max_length=254, description="The account's email, typed back"
    )


class ScopeOut(BaseModel):
    kind: Literal["account", "organization"]
    org_id: str | None = None
    team_id: str | None = None


class ProfileOut(Output):
    id: str
    email: str
    username: str
    full_name: str
    # Account facts, left out of an org's view of a member.
    status: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_login_at: datetime | None = None


class OrgMembershipOut(BaseModel):
    org_id: str
    org_slug: str
    org_name: str
    role: str
    joined_at: datetime


class TeamMembershipOut(BaseModel):
    team_id: str
    org_id: str
    team_name: str
    role: str
    joined_at: datetime


class SessionRecordOut(Output):
    """A sign-in: when and from where. Refresh tokens are stored as hashes and never shown."""

    id: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    revoked_reason: str | None
    ip: str | None
    user_agent: str | None


class ApiKeyRecordOut(Output):
    """An API key's metadata; the secret was shown once and only its hash is kept."""

    id: str
    org_id: str
    team_id: str | None
    name: str
    display_prefix: str
    permissions: list[str] | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class InvitationRecordOut(Output):
    id: str
    org_id: str
    team_id: str | None
    # The invitee's address: present for invitations the person received (their own address),
    # absent for those they sent (it is someone else's).
    email: str | None = None
    role: str
    status: str
    created_at: datetime
    expires_at: datetime
    responded_at: datetime | None

    @classmethod
    def of(cls, invitation: Invitation, *, received: bool) -> InvitationRecordOut:
        out = cls.model_validate(invitation)
        if not received:
            out.email = None
        return out


class LoginThrottleOut(Output):
    email_normalized: str
    failures: int
    first_failure_at: datetime
    locked_until: datetime | None


class SsoIdentityOut(Output):
    """An identity provider's account linked to this one (SSO)."""

    issuer: str
    subject: str
    org_id: str
    connection_id: str | None
    created_at: datetime
    last_sign_in_at: datetime | None


class PersonalDataOut(BaseModel):
    format: str = EXPORT_FORMAT
    generated_at: datetime
    scope: ScopeOut
    user: ProfileOut
    organizations: list[OrgMembershipOut]
    teams: list[TeamMembershipOut]
    sessions: list[SessionRecordOut]
    api_keys: list[ApiKeyRecordOut]
    invitations_sent: list[InvitationRecordOut]
    invitations_received: list[InvitationRecordOut]
    audit_events: list[AuditEventOut]
    login_throttles: list[LoginThrottleOut]
    sso_identities: list[SsoIdentityOut] = Field(default_factory=list)

    @classmethod
    def of(cls, data: PersonalData) -> PersonalDataOut:
        held = data.tenancy
        return cls(
            generated_at=data.generated_at,
            scope=ScopeOut(kind=data.scope, org_id=data.org_id, team_id=data.team_id),
            user=_profile(data),
            organizations=[
                OrgMembershipOut(
                    org_id=o.id,
                    org_slug=o.slug,
                    org_name=o.name,
                    role=m.role,
                    joined_at=m.created_at,
                )
                for m, o in held.memberships
            ],
            teams=[
                TeamMembershipOut(
                    team_id=t.id,
                    org_id=t.org_id,
                    team_name=t.name,
                    role=m.role,
                    joined_at=m.created_at,
                )
                for m, t in held.team_memberships
            ],
            sessions=[SessionRecordOut.model_validate(s) for s in data.account.sessions],
            api_keys=[ApiKeyRecordOut.model_validate(k) for k in data.account.api_keys],
            invitations_sent=[
                InvitationRecordOut.of(i, received=False) for i in held.invitations_sent
            ],
            invitations_received=[
                InvitationRecordOut.of(i, received=True) for i in held.invitations_received
            ],
            audit_events=[AuditEventOut.of(view) for view in data.audit_events],
            login_throttles=[
                LoginThrottleOut.model_validate(t) for t in data.account.login_throttles
            ],
            sso_identities=[SsoIdentityOut.model_validate(i) for i in data.sso_identities],
        )


def _profile(data: PersonalData) -> ProfileOut:
    profile = ProfileOut.model_validate(data.account.user)
    if data.scope == "account":
        return profile
    kept: dict[str, Any] = profile.model_dump(include={"id", "email", "username", "full_name"})
    return ProfileOut(**kept)
