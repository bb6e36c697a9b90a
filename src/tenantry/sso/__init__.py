"""Enterprise sign-in: SSO connections over OIDC and SAML 2.0, JIT provisioning with mapping
rules, verified domains, home-realm discovery and SSO enforcement (docs/sso.md).

Importing the package registers what it decides for identity: a password sign-in (or a password
session's refresh) is refused to the people of a verified domain whose org requires SSO."""

from tenantry.identity.hooks import on_password_sign_in
from tenantry.sso.policy import password_gate

on_password_sign_in(password_gate)
