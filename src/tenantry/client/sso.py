"""SDK calls of enterprise sign-in (mixed into `tenantry.client.api.Api`): an org's SSO
connections, their mapping rules and test sign-ins, verified domains and the SSO policy; and
signing in through SSO (discovery, the trip to the provider, the one-time code's exchange)."""

from __future__ import annotations

from typing import Any, Literal

from tenantry.client._calls import API, Call, endpoint, fields, model, models, nothing, segment
from tenantry.client.models import (
    Domain,
    SsoConnection,
    SsoDiscovery,
    SsoPolicy,
    SsoStarted,
    SsoTestResult,
    Tokens,
)

Protocol = Literal["oidc", "saml"]
Preset = Literal["generic", "google_workspace", "entra_id", "okta", "auth0"]


def _connections(org: str, connection: str | None = None, what: str = "") -> str:
    base = f"{API}/orgs/{segment(org)}/sso/connections"
    return base if connection is None else f"{base}/{segment(connection)}{what}"


class SsoCalls:
    # ---- connections ----

    @endpoint
    def create_sso_connection(
        self,
        org: str,
        *,
        name: str,
        protocol: Protocol,
        preset: Preset | None = None,
        settings: dict[str, Any] | None = None,
        client_secret: str | None = None,
        idp_metadata_xml: str | None = None,
        jit_provisioning: bool | None = None,
    ) -> Call[SsoConnection]:
        """A connection to an identity provider, disabled until a test sign-in succeeds.
        OIDC: `settings` holds `issuer` (or the preset's `tenant` / `domain`) and `client_id`;
        SAML: `idp_metadata_xml`, or `settings={"idp_metadata_url": ...}`."""
        body = fields(
            name=name,
            protocol=protocol,
            preset=preset,
            settings=settings,
            client_secret=client_secret,
            idp_metadata_xml=idp_metadata_xml,
            jit_provisioning=jit_provisioning,
        )
        return Call("POST", _connections(org), model(SsoConnection), body=body)

    @endpoint
    def list_sso_connections(self, org: str) -> Call[list[SsoConnection]]:
        return Call("GET", _connections(org), models(SsoConnection))

    @endpoint
    def get_sso_connection(self, org: str, connection: str) -> Call[SsoConnection]:
        return Call("GET", _connections(org, connection), model(SsoConnection))

    @endpoint
    def update_sso_connection(
        self,
        org: str,
        connection: str,
        *,
        name: str | None = None,
        settings: dict[str, Any] | None = None,
        client_secret: str | None = None,
        idp_metadata_xml: str | None = None,
        jit_provisioning: bool | None = None,
    ) -> Call[SsoConnection]:
        """Change what is named; a change of protocol settings puts it back in test mode."""
        body = fields(
            name=name,
            settings=settings,
            client_secret=client_secret,
            idp_metadata_xml=idp_metadata_xml,
            jit_provisioning=jit_provisioning,
        )
        return Call("PATCH", _connections(org, connection), model(SsoConnection), body=body)

    @endpoint
    def delete_sso_connection(self, org: str, connection: str) -> Call[None]:
        return Call("DELETE", _connections(org, connection), nothing)

    @endpoint
    def set_sso_mapping(
        self,
        org: str,
        connection: str,
        *,
        rules: list[dict[str, Any]] | None = None,
        default: dict[str, Any] | None = None,
        deny_unmatched: bool = False,
        required_groups: list[str] | None = None,
    ) -> Call[SsoConnection]:
        """Replace the mapping rules (docs/sso.md): `rules` in order, each `{"when": {...},
        "org_role": ..., "teams": [{"team": ..., "role": ...}]}`; what someone no rule matches
        gets (`default`, an org member if not given), or nothing with `deny_unmatched`."""
        body: dict[str, Any] = {
            "rules": rules or [],
            "default": None if deny_unmatched else (default or {"org_role": "member"}),
            "required_groups": required_groups or [],
        }
        return Call(
            "PUT", _connections(org, connection, "/mapping"), model(SsoConnection), body=body
        )

    @endpoint
    def start_sso_test(
        self, org: str, connection: str, *, return_to: str | None = None
    ) -> Call[SsoStarted]:
        """A test sign-in: open `redirect_url` in a browser and sign in at the provider."""
        return Call(
            "POST",
            _connections(org, connection, "/test"),
            model(SsoStarted),
            body=fields(return_to=return_to),
        )

    @endpoint
    def sso_test_result(self, org: str, connection: str) -> Call[SsoTestResult]:
        """The last test sign-in: what arrived and what the mapping rules would do."""
        return Call("GET", _connections(org, connection, "/test"), model(SsoTestResult))

    @endpoint
    def enable_sso_connection(self, org: str, connection: str) -> Call[SsoConnection]:
        return Call("POST", _connections(org, connection, "/enable"), model(SsoConnection))

    @endpoint
    def disable_sso_connection(self, org: str, connection: str) -> Call[SsoConnection]:
        return Call("POST", _connections(org, connection, "/disable"), model(SsoConnection))

    # ---- the policy ----

    @endpoint
    def sso_policy(self, org: str) -> Call[SsoPolicy]:
        return Call("GET", f"{API}/orgs/{segment(org)}/sso/policy", model(SsoPolicy))

    @endpoint
    def set_sso_policy(
        self, org: str, *, enforced: bool, break_glass: list[str] | None = None
    ) -> Call[SsoPolicy]:
        """Require SSO for the verified domains; `break_glass` names owners (user ids) who may
        still sign in with a password."""
        body = fields(enforced=enforced, break_glass=break_glass)
        return Call("PUT", f"{API}/orgs/{segment(org)}/sso/policy", model(SsoPolicy), body=body)

    # ---- domains ----

    @endpoint
    def add_domain(self, org: str, domain: str) -> Call[Domain]:
        """Claim a domain; publish the TXT record the answer names, then `verify_domain`."""
        return Call(
            "POST", f"{API}/orgs/{segment(org)}/domains", model(Domain), body={"domain": domain}
        )

    @endpoint
    def list_domains(self, org: str) -> Call[list[Domain]]:
        return Call("GET", f"{API}/orgs/{segment(org)}/domains", models(Domain))

    @endpoint
    def verify_domain(self, org: str, domain_id: str) -> Call[Domain]:
        """Look up the domain's TXT record now."""
        return Call(
            "POST", f"{API}/orgs/{segment(org)}/domains/{segment(domain_id)}/verify", model(Domain)
        )

    @endpoint
    def remove_domain(self, org: str, domain_id: str) -> Call[None]:
        return Call("DELETE", f"{API}/orgs/{segment(org)}/domains/{segment(domain_id)}", nothing)

    # ---- signing in ----

    @endpoint
    def discover_sso(self, email: str) -> Call[SsoDiscovery]:
        """Where `email` signs in: its verified domain's org and SSO connections, if any."""
        return Call(
            "POST",
            f"{API}/auth/sso/discover",
            model(SsoDiscovery),
            body={"email": email},
            auth=False,
        )

    @endpoint
    def start_sso_sign_in(
        self,
        *,
        connection_id: str | None = None,
        email: str | None = None,
        return_to: str | None = None,
    ) -> Call[SsoStarted]:
        """Start an SSO sign-in; the browser comes back to `return_to` with `sso_code`."""
        body = fields(connection_id=connection_id, email=email, return_to=return_to)
        return Call("POST", f"{API}/auth/sso/start", model(SsoStarted), body=body, auth=False)

    @endpoint
    def start_sso_link(
        self, connection_id: str, *, return_to: str | None = None
    ) -> Call[SsoStarted]:
        """Link the signed-in account to the provider's identity (an existing account whose
        email the provider also vouches for)."""
        body = fields(connection_id=connection_id, return_to=return_to)
        return Call("POST", f"{API}/me/sso/link", model(SsoStarted), body=body)

    @endpoint
    def exchange_sso_code(self, code: str, verifier: str | None = None) -> Call[Tokens]:
        """Trade a finished sign-in's one-time code (and the verifier its start returned) for
        tokens; the client is signed in afterwards."""
        body = fields(code=code, verifier=verifier)
        return Call(
            "POST",
            f"{API}/auth/sso/exchange",
            model(Tokens),
            body=body,
            auth=False,
            session="adopt",
        )
