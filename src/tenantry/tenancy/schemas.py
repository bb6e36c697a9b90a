"""Bodies of the tenancy endpoints."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, field_validator

from tenantry.kit.schemas import (
    Description,
    Email,
    Input,
    Name,
    Output,
    Password,
    Ref,
    Slug,
    check_settings_size,
    left_out,
)

# A plan of the catalog, checked against it by the server (`invalid_plan`).
PlanKey = Annotated[str, Field(min_length=1, max_length=32)]


class OrgCreateIn(Input):
    name: Name
    slug: Slug | None = None
    plan: PlanKey | None = Field(
        default=None,
        description="A paid plan starts as a trial of it (billing); none or Free: the Free plan",
    )
    tier: PlanKey | None = Field(default=None, description="The same as `plan`")
    billing_email: Email | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    owner_email: Email | None = None

    _settings = field_validator("settings")(check_settings_size)


class OrgUpdateIn(Input):
    """What changes; a field left out stays as it is. Only `billing_email` can be cleared (null)."""

    name: Name = left_out()
    slug: Slug = left_out()
    billing_email: Email | None = Field(default=None, description="null: no billing email")
    settings: dict[str, Any] = left_out(description="Replaces the settings; {} for none")

    _settings = field_validator("settings")(check_settings_size)


class OrgOut(Output):
    id: str
    name: str
    slug: str
    plan: str
    billing_email: str | None
    settings: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime


class InvitationLinkOut(Input):
    id: str
    email: str
    role: str
    token: str
    url: str
    expires_at: datetime


class OrgCreatedOut(OrgOut):
    owner_invitation: InvitationLinkOut | None = None
    trial_ends_at: datetime | None = None


class DeleteConfirmIn(Input):
    confirm: Slug = Field(description="The slug of the thing being deleted, typed back")


class TransferIn(Input):
    new_owner: Ref = Field(description="User id or email of an existing member")


class MemberRoleIn(Input):
    role: str = Field(min_length=1, max_length=64)  # a custom role by name or id


class OrgMemberOut(Output):
    user_id: str
    email: str
    username: str
    full_name: str
    role: str
    joined_at: datetime


class TeamCreateIn(Input):
    name: Name
    slug: Slug | None = None
    description: Description = ""
    parent_team_id: str | None = Field(default=None, max_length=40)
    settings: dict[str, Any] = Field(default_factory=dict)
    private: bool = Field(
        default=False,
        description="Seen only by its members and the organization's admins and owners",
    )

    _settings = field_validator("settings")(check_settings_size)


class TeamUpdateIn(Input):
    """What changes; a field left out stays as it is. Only `parent_team_id` can be cleared
    (null: a top-level team)."""

    name: Name = left_out()
    slug: Slug = left_out()
    description: Description = left_out(description='"" for none')
    parent_team_id: str | None = Field(
        default=None, max_length=40, description="null: a top-level team"
    )
    settings: dict[str, Any] = left_out(description="Replaces the settings; {} for none")
    private: bool = Field(
        default=False,
        description="true: seen only by its members and the organization's admins and owners; "
        "left out: unchanged",
    )

    _settings = field_validator("settings")(check_settings_size)


class TeamOut(Output):
    id: str
    org_id: str
    name: str
    slug: str
    description: str
    parent_team_id: str | None
    settings: dict[str, Any]
    private: bool
    created_at: datetime
    updated_at: datetime


class TeamMemberIn(Input):
    user: Ref = Field(description="User id or email")
    role: str = Field(min_length=1, max_length=64)  # a custom role by name or id


class TeamMemberOut(Output):
    user_id: str
    team_id: str
    email: str
    username: str
    full_name: str
    role: str
    joined_at: datetime


class InvitationCreateIn(Input):
    email: Email
    role: str = Field(default="member", min_length=1, max_length=64)
    team_id: str | None = Field(default=None, max_length=40)


class InvitationOut(Output):
    id: str
    org_id: str
    team_id: str | None
    email: str
    role: str
    status: str
    invited_by: str | None
    created_at: datetime
    expires_at: datetime
    responded_at: datetime | None


class InvitationCreatedOut(InvitationOut):
    token: str = Field(description="Shown once; send it to the invitee")
    url: str


class OnboardIn(Input):
    company_name: Name
    admin_email: Email
    admin_password: Password
    admin_name: str = Field(default="", max_length=200)
    plan: PlanKey | None = Field(
        default=None,
        description="A paid plan starts as a trial of it (billing); none or Free: the Free plan",
    )
    tier: PlanKey | None = Field(default=None, description="The same as `plan`")


class OnboardOut(Input):
    organization: OrgOut
    team: TeamOut
    user_id: str
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"
    trial_ends_at: datetime | None = None


# ---- the org's security policy ----


class PasswordRulesIn(Input):
    min_length: int | None = Field(default=None, ge=8, le=128)
    require_uppercase: bool = False
    require_lowercase: bool = False
    require_digit: bool = False
    require_symbol: bool = False
    min_complexity: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="0-100: five times the decimal logarithm of the guesses zxcvbn estimates "
        "(70 is about 10^14 guesses)",
    )
    history: int = Field(default=0, ge=0, le=24, description="Not one of the last N passwords")
    max_age_days: int | None = Field(default=None, ge=1, le=3650)
    lockout_attempts: int | None = Field(default=None, ge=1, le=100)
    lockout_minutes: int | None = Field(default=None, ge=1, le=24 * 60)


class MfaRulesIn(Input):
    required: bool = False
    grace_days: int = Field(default=0, ge=0, le=90)


class SessionRulesIn(Input):
    idle_timeout_minutes: int | None = Field(default=None, ge=5, le=30 * 24 * 60)
    absolute_timeout_minutes: int | None = Field(default=None, ge=5, le=30 * 24 * 60)


class SecurityPolicyIn(Input):
    """The whole policy (a PUT replaces it); what is left out takes its default (no rule)."""

    password: PasswordRulesIn = Field(default_factory=PasswordRulesIn)
    mfa: MfaRulesIn = Field(default_factory=MfaRulesIn)
    sessions: SessionRulesIn = Field(default_factory=SessionRulesIn)
    ip_allowlist: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list,
        max_length=100,
        description="CIDRs (or single addresses) the org's API and dashboard answer; empty: all",
    )

    @field_validator("ip_allowlist")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for item in value:
            try:
                network = ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR") from None
            if str(network) not in out:
                out.append(str(network))
        return out


class MfaRulesOut(MfaRulesIn):
    required_since: datetime | None = None
    enforced_from: datetime | None = Field(
        default=None, description="When the grace days end: sign-in asks members to enrol"
    )


class SecurityPolicyOut(Input):
    org_id: str
    password: PasswordRulesIn
    mfa: MfaRulesOut
    sessions: SessionRulesIn
    ip_allowlist: list[str]
    sso_enforced: bool = Field(description="Set with PUT /orgs/{org}/sso/policy")
    updated_at: datetime | None
