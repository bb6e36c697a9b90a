"""Bodies of the identity endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from tenantry.kit.schemas import Email, Input, Name, Output, Password, Timestamp, left_out


class SignupIn(Input):
    email: Email
    password: Password
    username: str | None = Field(
        default=None, min_length=2, max_length=64, pattern=r"^[a-zA-Z0-9_.-]+$"
    )
    full_name: str = Field(default="", max_length=200)


class LoginIn(Input):
    email: Email
    password: Password


class RefreshIn(Input):
    refresh_token: str = Field(min_length=1, max_length=200)


class UserOut(Output):
    id: str
    email: str
    username: str
    full_name: str
    status: str
    created_at: datetime


class TokensOut(Input):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    expires_at: datetime
    refresh_token: str
    session_id: str
    user: UserOut


class SessionOut(Output):
    id: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool = False


class MeUpdateIn(Input):
    """What changes; a field left out stays as it is, neither can be null."""

    full_name: str = left_out(max_length=200)
    username: str = left_out(min_length=2, max_length=64, pattern=r"^[a-zA-Z0-9_.-]+$")


class PasswordChangeIn(Input):
    current_password: Password
    new_password: Password


class MembershipOut(Output):
    org_id: str
    org_slug: str
    org_name: str
    role: str


class TeamMembershipOut(Output):
    team_id: str
    org_id: str
    team_name: str
    role: str


class MeOut(Output):
    user: UserOut
    principal_type: str
    api_key_id: str | None = None
    organizations: list[MembershipOut]
    teams: list[TeamMembershipOut]


class ApiKeyCreateIn(Input):
    name: Name
    team_id: str | None = Field(default=None, max_length=40)
    permissions: list[str] | None = Field(default=None, max_length=100)
    # With its zone: a naive time is ambiguous (and cannot be compared with the clock).
    expires_at: Timestamp | None = None


class ApiKeyOut(Output):
    id: str
    org_id: str
    team_id: str | None
    name: str
    display_prefix: str
    permissions: list[str] | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreatedOut(ApiKeyOut):
    secret: str = Field(description="Shown once; store it now. Tenantry keeps only a hash.")
