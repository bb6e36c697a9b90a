"""Bodies of the identity endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

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


# ---- the second factor ----

MfaCode = Annotated[
    str,
    Field(
        min_length=6,
        max_length=16,
        description="A 6-digit code of the authenticator app, or an unused backup code",
    ),
]


class MfaRequiredOut(Input):
    """The answer to a right password of someone with a second factor (or whose org requires
    one, `enrolment_required`): no session yet. Send a code with `mfa_token` to
    `POST /auth/mfa` (after `POST /auth/mfa/enrolment` when enrolment is required)."""

    mfa_required: bool = True
    mfa_token: str
    expires_at: datetime
    enrolment_required: bool = False
    required_by: str | None = Field(
        default=None, description="The org whose security policy requires MFA"
    )
    methods: list[str] = ["totp", "backup_code"]


class MfaSignInIn(Input):
    mfa_token: str = Field(min_length=1, max_length=200)
    code: MfaCode


class MfaTokenIn(Input):
    mfa_token: str = Field(min_length=1, max_length=200)


class MfaCodeIn(Input):
    code: MfaCode


class MfaStatusOut(Output):
    user_id: str
    enabled: bool
    pending: bool
    confirmed_at: datetime | None
    backup_codes_remaining: int


class MfaEnrolmentOut(Input):
    secret: str = Field(description="The TOTP seed (base32), for typing into an authenticator")
    provisioning_uri: str = Field(description="An otpauth:// URI, shown as a QR code")
    qr_svg: str = Field(description="The provisioning URI as an SVG QR code")


class BackupCodesOut(Input):
    backup_codes: list[str] = Field(
        description="Ten single-use codes, shown once; Tenantry keeps only keyed hashes"
    )


class MfaTokensOut(TokensOut):
    """The session a second step opens; an enrolment it finished brings its backup codes."""

    backup_codes: list[str] = []
