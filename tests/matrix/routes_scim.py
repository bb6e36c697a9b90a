"""Route-table entries of SCIM provisioning's routes on Tenantry's API (see tests/matrix/routes.py
for what an entry says): an org's SCIM tokens and provisioning rules. The SCIM service itself
(`/scim/v2`) is a Starlette mount with SCIM's own error shape, outside the API's route table
and its OpenAPI document; tests/scim hold it to account (scim2-tester, isolation, credentials).
"""

from __future__ import annotations

from typing import Any

from matrix.routes import PARAMS, WORLD_EXTRAS, RouteCase, World, WorldExtra
from tenantry.authz.catalog import Permission as P


def _issue(world: World) -> dict[str, Any]:
    resp = world.client.post(
        f"/api/v1/orgs/{world.org_id}/scim/tokens",
        headers=world.owner.headers,
        json={"name": "Directory"},
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def token(world: World) -> str:
    """A SCIM token of the world's org, made by its owner."""
    return str(world.once("scim_token", _issue)["id"])


def _map(world: World) -> str:
    resp = world.client.put(
        f"/api/v1/orgs/{world.org_id}/scim/mapping",
        headers=world.owner.headers,
        json={"rules": [{"when": {"group": "ML"}, "teams": [{"team": world.team_id}]}]},
    )
    assert resp.status_code == 200, resp.text
    return world.team_id


def mapping(world: World) -> str:
    """The org's SCIM rules, naming its default team (so reading them shows the org's own)."""
    return str(world.once("scim_mapping", _map))


def _seed(world: World) -> None:
    token(world)
    mapping(world)


PARAMS["token_id"] = token
WORLD_EXTRAS.append(WorldExtra(seed=_seed, ids=lambda w: {token(w), mapping(w)}))


def _case(method: str, path: str, rule: P, **kw: Any) -> RouteCase:
    return RouteCase(method, "/api/v1" + path, rule, **kw)


CASES: list[RouteCase] = [
    _case(
        "POST",
        "/orgs/{org}/scim/tokens",
        P.SSO_MANAGE,
        scope="org",
        body=lambda w: {"name": "Okta"},
    ),
    _case("GET", "/orgs/{org}/scim/tokens", P.SSO_READ, scope="org"),
    _case("DELETE", "/orgs/{org}/scim/tokens/{token_id}", P.SSO_MANAGE, scope="org"),
    _case("GET", "/orgs/{org}/scim/mapping", P.SSO_READ, scope="org"),
    _case(
        "PUT",
        "/orgs/{org}/scim/mapping",
        P.SSO_MANAGE,
        scope="org",
        body=lambda w: {"rules": [{"when": {"group": "ML"}, "org_role": "member"}]},
    ),
]
