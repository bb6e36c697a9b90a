"""Presets for the identity providers people use most: how each names its issuer and the claims
or attributes that carry a person's email, name and groups. A preset fills in what the admin
leaves out; anything given explicitly wins."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Preset(StrEnum):
    GENERIC = "generic"
    GOOGLE_WORKSPACE = "google_workspace"
    ENTRA_ID = "entra_id"
    OKTA = "okta"
    AUTH0 = "auth0"


@dataclass(frozen=True)
class OidcPreset:
    # `{tenant}` / `{domain}` are filled from the connection's `tenant` / `domain` setting.
    issuer_template: str | None
    email_claim: str = "email"
    name_claim: str = "name"
    groups_claim: str = "groups"
    scopes: tuple[str, ...] = ("openid", "email", "profile")


OIDC_PRESETS: Final[dict[Preset, OidcPreset]] = {
    Preset.GENERIC: OidcPreset(issuer_template=None),
    # Google signs in any Google account; `hosted_domain` (the `hd` claim) keeps it to the
    # org's Workspace. Google sends no groups in its tokens.
    Preset.GOOGLE_WORKSPACE: OidcPreset(issuer_template="https://accounts.google.com"),
    # Entra ID's v2.0 endpoint of one tenant; groups arrive as object ids unless the app
    # registration emits names. Some accounts have no `email`: `preferred_username` is the UPN.
    Preset.ENTRA_ID: OidcPreset(
        issuer_template="https://login.microsoftonline.com/{tenant}/v2.0",
        email_claim="email",
    ),
    # Okta's org authorization server; a custom one is `https://{domain}/oauth2/<id>`.
    Preset.OKTA: OidcPreset(
        issuer_template="https://{domain}", scopes=("openid", "email", "profile", "groups")
    ),
    # Auth0 puts custom claims under a namespace chosen in an Action; groups by convention here.
    Preset.AUTH0: OidcPreset(
        issuer_template="https://{domain}/", groups_claim="https://tenantry.dev/groups"
    ),
}


@dataclass(frozen=True)
class SamlPreset:
    email_attribute: str
    name_attribute: str
    groups_attribute: str


SAML_PRESETS: Final[dict[Preset, SamlPreset]] = {
    Preset.GENERIC: SamlPreset("email", "name", "groups"),
    Preset.GOOGLE_WORKSPACE: SamlPreset("email", "name", "groups"),
    Preset.ENTRA_ID: SamlPreset(
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        "http://schemas.microsoft.com/identity/claims/displayname",
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    ),
    Preset.OKTA: SamlPreset("email", "name", "groups"),
    Preset.AUTH0: SamlPreset(
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "http://schemas.xmlsoap.org/claims/Group",
    ),
}


# Where a SAML IdP's attributes are looked for when the configured name is not among them:
# the names IdPs commonly send (plain, the LDAP OIDs, Microsoft's claim URIs).
SAML_EMAIL_FALLBACKS: Final = (
    "email",
    "mail",
    "urn:oid:0.9.2342.19200300.100.1.3",
    "urn:oid:1.2.840.113549.1.9.1.1",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
)
SAML_NAME_FALLBACKS: Final = (
    "name",
    "displayName",
    "urn:oid:2.16.840.1.113730.3.1.241",
    "cn",
    "urn:oid:2.5.4.3",
    "http://schemas.microsoft.com/identity/claims/displayname",
)
SAML_GROUPS_FALLBACKS: Final = (
    "groups",
    "memberOf",
    "isMemberOf",
    "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
)


def issuer_for(preset: Preset, *, tenant: str | None, domain: str | None) -> str | None:
    template = OIDC_PRESETS[preset].issuer_template
    if template is None:
        return None
    if "{tenant}" in template and not tenant:
        return None
    if "{domain}" in template and not domain:
        return None
    return template.format(tenant=tenant or "", domain=domain or "")
