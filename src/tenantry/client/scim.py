"""SDK calls of SCIM provisioning (mixed into `tenantry.client.api.Api`): an org's SCIM tokens,
which directories (Okta, Entra ID) present at `/scim/v2`, and the org's provisioning rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tenantry.client._calls import (
    API,
    Call,
    endpoint,
    json_object,
    model,
    page_query,
    paged,
    segment,
)
from tenantry.client.models import Page, Result


class ScimToken(Result):
    id: str
    org_id: str
    name: str
    display_prefix: str
    created_by: str | None = None
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class ScimTokenCreated(ScimToken):
    secret: str
    base_url: str


def _tokens(org: str) -> str:
    return f"{API}/orgs/{segment(org)}/scim/tokens"


class ScimCalls:
    @endpoint
    def create_scim_token(self, org: str, name: str) -> Call[ScimTokenCreated]:
        """A token for the org's directory; its `secret` is shown only in this answer."""
        return Call("POST", _tokens(org), model(ScimTokenCreated), body={"name": name})

    @endpoint
    def list_scim_tokens(
        self, org: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[ScimToken]]:
        return Call("GET", _tokens(org), model(Page[ScimToken]), params=page_query(limit, cursor))

    iter_scim_tokens = paged(list_scim_tokens)

    @endpoint
    def revoke_scim_token(self, org: str, token_id: str) -> Call[ScimToken]:
        return Call("DELETE", f"{_tokens(org)}/{segment(token_id)}", model(ScimToken))

    @endpoint
    def scim_mapping(self, org: str) -> Call[dict[str, Any]]:
        return Call("GET", f"{API}/orgs/{segment(org)}/scim/mapping", json_object)

    @endpoint
    def set_scim_mapping(
        self,
        org: str,
        *,
        rules: list[dict[str, Any]] | None = None,
        default: dict[str, Any] | None = None,
        deny_unmatched: bool = False,
        required_groups: list[str] | None = None,
    ) -> Call[dict[str, Any]]:
        """Replace the rules that place provisioned people (docs/sso.md, as SSO's): `rules` in
        order, each `{"when": {"group": <a SCIM group's displayName>}, "org_role": ...,
        "teams": [{"team": ..., "role": ...}]}`; what someone no rule matches gets (`default`,
        an org member if not given), or nothing with `deny_unmatched`."""
        body: dict[str, Any] = {
            "rules": rules or [],
            "default": None if deny_unmatched else (default or {"org_role": "member"}),
            "required_groups": required_groups or [],
        }
        return Call("PUT", f"{API}/orgs/{segment(org)}/scim/mapping", json_object, body=body)
