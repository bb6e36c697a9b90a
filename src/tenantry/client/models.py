"""Typed results of the SDK.

These mirror the server's response bodies but are the client's own: they keep fields that a newer
server adds (`extra="allow"`) instead of failing on them, so an older SDK keeps working against a
newer server, and `model_dump(mode="json")` gives back what the server sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Result(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)


class Page(Result, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next one."""

    items: list[T]
    next_cursor: str | None = None


# ---- identity ----


class User(Result):
    id: str
    email: str
    username: str
    full_name: str
    status: str
    created_at: datetime


class Tokens(Result):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    expires_at: datetime
    refresh_token: str
    session_id: str
    user: User


class MfaStep(Result):
    """A sign-in waiting for its second step (see `MfaRequired`)."""

    mfa_required: bool
    mfa_token: str
    expires_at: datetime
    enrolment_required: bool = False
    required_by: str | None = None


class MfaTokens(Tokens):
    """The session a second step opens, with the backup codes of an enrolment it finished."""

    backup_codes: list[str] = []


class MfaStatus(Result):
    user_id: str
    enabled: bool
    pending: bool
    confirmed_at: datetime | None = None
    backup_codes_remaining: int


class MfaEnrolment(Result):
    secret: str
    provisioning_uri: str
    qr_svg: str


class BackupCodes(Result):
    backup_codes: list[str]


class SecurityPolicy(Result):
    """An org's security policy; the sections are plain mappings, as sent to
    `set_security_policy` (see docs/security.md for every rule)."""

    org_id: str
    password: dict[str, Any]
    mfa: dict[str, Any]
    sessions: dict[str, Any]
    ip_allowlist: list[str]
    sso_enforced: bool
    updated_at: datetime | None = None


class Session(Result):
    id: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    ip: str | None = None
    user_agent: str | None = None
    current: bool = False


class OrgMembership(Result):
    org_id: str
    org_slug: str
    org_name: str
    role: str


class TeamMembership(Result):
    team_id: str
    org_id: str
    team_name: str
    role: str


class Me(Result):
    user: User
    principal_type: str
    api_key_id: str | None = None
    organizations: list[OrgMembership] = Field(default_factory=list)
    teams: list[TeamMembership] = Field(default_factory=list)


class ApiKey(Result):
    id: str
    org_id: str
    team_id: str | None = None
    name: str
    display_prefix: str
    permissions: list[str] | None = None
    created_by: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKey):
    secret: str


# ---- tenancy ----


class Org(Result):
    id: str
    name: str
    slug: str
    plan: str
    billing_email: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    status: str
    created_at: datetime
    updated_at: datetime


class InvitationLink(Result):
    id: str
    email: str
    role: str
    token: str
    url: str
    expires_at: datetime


class OrgCreated(Org):
    owner_invitation: InvitationLink | None = None


class OrgMember(Result):
    user_id: str
    email: str
    username: str
    full_name: str
    role: str
    joined_at: datetime


class Team(Result):
    id: str
    org_id: str
    name: str
    slug: str
    description: str = ""
    parent_team_id: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    private: bool = False
    created_at: datetime
    updated_at: datetime


class TeamMember(OrgMember):
    team_id: str


class Invitation(Result):
    id: str
    org_id: str
    team_id: str | None = None
    email: str
    role: str
    status: str
    invited_by: str | None = None
    created_at: datetime
    expires_at: datetime
    responded_at: datetime | None = None


class InvitationCreated(Invitation):
    token: str
    url: str


class Onboarded(Result):
    organization: Org
    team: Team
    user_id: str
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"


# ---- audit ----


class AuditEvent(Result):
    id: str
    chain_id: str | None = None
    seq: int | None = None
    org_id: str | None = None
    team_id: str | None = None
    actor_type: str
    actor_id: str | None = None
    action: str
    target_type: str | None = None
    target_id: str | None = None
    result: str
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    occurred_at: datetime
    summary: dict[str, Any] = Field(default_factory=dict)
    personal_digest: str | None = None
    prev_hash: str | None = None
    hash: str | None = None
    personal: dict[str, Any] | None = None


class AuditFault(Result):
    seq: int
    kind: str
    detail: str


class AuditVerdict(Result):
    """The server's check of a chain: `ok`, or the first bad seq and what is wrong (`fault`)."""

    chain_id: str
    ok: bool
    events_checked: int
    first_seq: int | None = None
    last_seq: int
    head_seq: int
    checkpoints_checked: int
    fault: AuditFault | None = None


class AuditCheckpoint(Result):
    id: str
    chain_id: str
    seq: int
    hash: str
    created_at: datetime
    reason: str
    purged_through: int
    signature: str


class AuditPublicKey(Result):
    algorithm: str
    public_key_pem: str


# ---- operations ----


class Health(Result):
    status: str
    version: str | None = None


class Readiness(Result):
    status: str
    database: str | None = None


# ---- enterprise sign-in (SSO) ----


class ServiceProvider(Result):
    """What to give the identity provider: the redirect URI (OIDC) or the SP entity id, ACS URL
    and metadata URL (SAML)."""

    redirect_uri: str | None = None
    entity_id: str | None = None
    acs_url: str | None = None
    metadata_url: str | None = None


class SsoConnection(Result):
    id: str
    org_id: str
    name: str
    protocol: str
    preset: str
    enabled: bool
    settings: dict[str, Any] = Field(default_factory=dict)
    has_client_secret: bool
    jit_provisioning: bool
    mapping: dict[str, Any] = Field(default_factory=dict)
    revision: int
    tested: bool
    last_test_ok: bool | None = None
    service_provider: ServiceProvider
    created_at: datetime
    updated_at: datetime


class SsoStarted(Result):
    """A trip to the identity provider: send the browser to `redirect_url`; keep `verifier`
    for the exchange of the sign-in's one-time code."""

    attempt_id: str
    redirect_url: str
    verifier: str
    expires_at: datetime


class SsoTestResult(Result):
    connection_id: str
    tested: bool
    result: dict[str, Any] | None = None


class SsoPolicy(Result):
    enforced: bool
    break_glass: list[str] = Field(default_factory=list)
    verified_domains: list[str] = Field(default_factory=list)


class Domain(Result):
    id: str
    domain: str
    status: str
    record_name: str
    record_type: str = "TXT"
    record_value: str
    created_at: datetime
    verified_at: datetime | None = None
    last_checked_at: datetime | None = None


class DiscoveredConnection(Result):
    id: str
    name: str
    protocol: str


class DiscoveredOrg(Result):
    slug: str
    name: str


class SsoDiscovery(Result):
    domain: str
    sso: bool
    enforced: bool
    org: DiscoveredOrg | None = None
    connections: list[DiscoveredConnection] = Field(default_factory=list)
