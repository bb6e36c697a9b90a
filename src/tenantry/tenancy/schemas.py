"""Bodies of the tenancy endpoints."""

from __future__ import annotations

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
