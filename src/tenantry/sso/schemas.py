"""Bodies of the enterprise sign-in endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from tenantry.kit.schemas import Email, Input, Name, Output
from tenantry.sso.mapping import MappingRules
from tenantry.sso.presets import Preset

Url = Field(default=None, min_length=1, max_length=2000)
ClaimName = Field(default=None, min_length=1, max_length=300)


class ConnectionSettings(Input):
    """What configures a connection. OIDC: `issuer` (or a preset's `tenant` / `domain`),
    `client_id`, `scopes`, claim names, `hosted_domain` (Google Workspace). SAML:
    `idp_metadata_url` (or the document itself as `idp_metadata_xml` beside these settings),
    `idp_entity_id` when the metadata describes several IdPs, attribute names,
    `allow_idp_initiated`."""

    issuer: str | None = Url
    client_id: str | None = Field(default=None, min_length=1, max_length=500)
    scopes: list[str] | None = Field(default=None, max_length=20)
    tenant: str | None = Field(default=None, min_length=1, max_length=200)
    domain: str | None = Field(default=None, min_length=1, max_length=253)
    hosted_domain: str | None = Field(default=None, min_length=1, max_length=253)
    email_claim: str | None = ClaimName
    name_claim: str | None = ClaimName
    groups_claim: str | None = ClaimName
    idp_entity_id: str | None = Url
    idp_metadata_url: str | None = Url
    email_attribute: str | None = ClaimName
    name_attribute: str | None = ClaimName
    groups_attribute: str | None = ClaimName
    allow_idp_initiated: bool | None = None


class ConnectionCreateIn(Input):
    name: Name
    protocol: Literal["oidc", "saml"]
    preset: Preset = Preset.GENERIC
    settings: ConnectionSettings = Field(default_factory=ConnectionSettings)
    client_secret: str | None = Field(default=None, min_length=1, max_length=2000)
    idp_metadata_xml: str | None = Field(default=None, min_length=1, max_length=500_000)
    jit_provisioning: bool = True


class ConnectionUpdateIn(Input):
    name: Name | None = None
    # Only the settings sent change; a setting sent as null is removed.
    settings: ConnectionSettings | None = None
    client_secret: str | None = Field(default=None, min_length=1, max_length=2000)
    idp_metadata_xml: str | None = Field(default=None, min_length=1, max_length=500_000)
    jit_provisioning: bool | None = None


class ServiceProviderOut(Output):
    """What to give the identity provider."""

    redirect_uri: str | None = None
    entity_id: str | None = None
    acs_url: str | None = None
    metadata_url: str | None = None


class ConnectionOut(Output):
    id: str
    org_id: str
    name: str
    protocol: str
    preset: str
    enabled: bool
    settings: dict[str, Any]
    has_client_secret: bool
    jit_provisioning: bool
    mapping: MappingRules
    revision: int
    # A successful test of the current settings: what enabling needs.
    tested: bool
    last_test_ok: bool | None
    service_provider: ServiceProviderOut
    created_at: datetime
    updated_at: datetime


class ReturnIn(Input):
    return_to: str | None = Field(default=None, min_length=1, max_length=2000)


class StartedOut(Output):
    attempt_id: str
    redirect_url: str
    # Keep it: the exchange of the sign-in's one-time code needs it.
    verifier: str
    expires_at: datetime


class TestResultOut(Output):
    connection_id: str
    tested: bool
    result: dict[str, Any] | None


class SignInStartIn(Input):
    """Which connection: by id, or by the person's email (their verified domain's org)."""

    connection_id: str | None = Field(default=None, min_length=1, max_length=40)
    email: Email | None = None
    return_to: str | None = Field(default=None, min_length=1, max_length=2000)


class LinkStartIn(Input):
    connection_id: str = Field(min_length=1, max_length=40)
    return_to: str | None = Field(default=None, min_length=1, max_length=2000)


class DiscoverIn(Input):
    email: Email


class DiscoveredConnectionOut(Output):
    id: str
    name: str
    protocol: str


class DiscoveredOrgOut(Output):
    slug: str
    name: str


class DiscoverOut(Output):
    domain: str
    sso: bool
    enforced: bool
    org: DiscoveredOrgOut | None
    connections: list[DiscoveredConnectionOut]


class ExchangeIn(Input):
    code: str = Field(min_length=1, max_length=200)
    # The verifier `start` returned (none for an IdP-initiated sign-in).
    verifier: str = Field(default="", max_length=200)


class PolicyIn(Input):
    enforced: bool
    break_glass: list[str] = Field(default_factory=list, max_length=50)


class PolicyOut(Output):
    enforced: bool
    break_glass: list[str]
    verified_domains: list[str]


class DomainIn(Input):
    domain: str = Field(min_length=1, max_length=253)


class DomainOut(Output):
    id: str
    domain: str
    status: str
    record_name: str
    record_type: str = "TXT"
    record_value: str
    created_at: datetime
    verified_at: datetime | None
    last_checked_at: datetime | None
