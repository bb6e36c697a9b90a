"""SCIM 2.0 provisioning: an org's directory (Okta, Entra ID) creates, updates and suspends its
people and groups at `/scim/v2`, with a bearer token the org's admins create. Groups place people
in teams through the same mapping rules as SSO sign-in (`sso.mapping`, `sso.provisioning`)."""

# Registers the refusal of a person the directory suspended (`tenancy.hooks.on_person_joining`).
from tenantry.scim import placement as placement
