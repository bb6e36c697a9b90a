"""Route-table entries of access (see tests/matrix/routes.py for what an entry says)."""

from __future__ import annotations

from typing import Any

from matrix.routes import PARAMS, SELF, WORLD_EXTRAS, RouteCase, World, WorldExtra
from tenantry.authz.catalog import Permission as P
from tenantry.kit.ids import new_id

# The check and explain questions are POSTs that change nothing: they are not audited.
QUESTION = "a question, not a change: it writes nothing"


def _case(method: str, path: str, rule: Any, **kw: Any) -> RouteCase:
    return RouteCase(method, "/api/v1" + path, rule, **kw)


def _made(world: World, method: str, path: str, body: dict[str, Any]) -> str:
    resp = world.client.request(method, path, headers=world.owner.headers, json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def custom_role(world: World) -> str:
    """A custom role of the world's org: viewer plus experiment:create."""
    return str(
        world.once(
            "custom_role",
            lambda w: _made(
                w,
                "POST",
                f"/api/v1/orgs/{w.org_id}/roles",
                {"name": "reviewer", "permissions": ["experiment:create"], "inherits": ["viewer"]},
            ),
        )
    )


def model_id(world: World) -> str:
    return str(world.once("model_id", lambda w: new_id("mdl")))


def resource_grant(world: World) -> str:
    """The member holds viewer on one model of the default team."""
    return str(
        world.once(
            "resource_grant",
            lambda w: _made(
                w,
                "POST",
                f"/api/v1/teams/{w.team_id}/grants",
                {
                    "subject": {"type": "user", "id": w.member.id},
                    "resource": {"type": "model", "id": model_id(w)},
                    "role": "viewer",
                },
            ),
        )
    )


def grant_template(world: World) -> str:
    return str(
        world.once(
            "grant_template",
            lambda w: _made(
                w,
                "POST",
                f"/api/v1/orgs/{w.org_id}/grant-templates",
                {"name": "oncall", "role": "viewer", "duration_seconds": 3600},
            ),
        )
    )


def _seed(world: World) -> None:
    custom_role(world)
    resource_grant(world)
    grant_template(world)


def _ids(world: World) -> set[str]:
    return {custom_role(world), resource_grant(world), grant_template(world), model_id(world)}


WORLD_EXTRAS.append(WorldExtra(seed=_seed, ids=_ids))
PARAMS.update({"role": custom_role, "grant_id": resource_grant, "template": grant_template})


def _user(world: World, which: str) -> dict[str, str]:
    return {"type": "user", "id": getattr(world, which).id}


CASES: list[RouteCase] = [
    # custom roles
    _case(
        "POST",
        "/orgs/{org}/roles",
        P.ROLE_MANAGE,
        scope="org",
        body=lambda w: {"name": "auditor", "permissions": ["audit:read"], "inherits": ["viewer"]},
    ),
    _case("GET", "/orgs/{org}/roles", P.ROLE_READ, scope="org", queries=("include_builtin=true",)),
    _case("GET", "/orgs/{org}/roles/{role}", P.ROLE_READ, scope="org"),
    _case(
        "PATCH",
        "/orgs/{org}/roles/{role}",
        P.ROLE_MANAGE,
        scope="org",
        body=lambda w: {"description": "Reviews experiments"},
    ),
    _case("DELETE", "/orgs/{org}/roles/{role}", P.ROLE_MANAGE, scope="org"),
    # grants
    _case(
        "POST",
        "/teams/{team}/grants",
        P.GRANT_MANAGE,
        scope="team",
        body=lambda w: {"subject": _user(w, "spare"), "role": "viewer", "reason": "on call"},
    ),
    _case(
        "GET", "/teams/{team}/grants", P.GRANT_READ, scope="team", queries=("include_expired=true",)
    ),
    _case(
        "GET",
        "/orgs/{org}/grants",
        P.GRANT_READ,
        scope="org",
        queries=("include_expired=true", "resource_type=model", "subject_type=user"),
    ),
    _case("DELETE", "/grants/{grant_id}", P.GRANT_MANAGE, scope="team"),
    _case(
        "POST",
        "/teams/{team}/grants/bulk",
        P.GRANT_MANAGE,
        scope="team",
        body=lambda w: {
            "action": "grant",
            "subjects": [_user(w, "member"), _user(w, "spare")],
            "role": "viewer",
        },
        audit=2,
    ),
    # grant templates
    _case(
        "POST",
        "/orgs/{org}/grant-templates",
        P.GRANT_MANAGE,
        scope="org",
        body=lambda w: {"name": "weekend", "role": "viewer", "duration_seconds": 172800},
    ),
    _case("GET", "/orgs/{org}/grant-templates", P.GRANT_READ, scope="org"),
    _case("DELETE", "/orgs/{org}/grant-templates/{template}", P.GRANT_MANAGE, scope="org"),
    _case(
        "POST",
        "/teams/{team}/grant-templates/{template}/apply",
        P.GRANT_MANAGE,
        scope="team",
        body=lambda w: {"subjects": [_user(w, "spare")]},
    ),
    # questions: anyone may ask about themselves (asking about others needs grant:read)
    _case(
        "POST",
        "/orgs/{org}/access/check",
        SELF,
        body=lambda w: {"permission": "team:read", "resource": {"type": "team", "id": w.team_id}},
        audit=QUESTION,
    ),
    _case(
        "POST",
        "/orgs/{org}/access/explain",
        SELF,
        body=lambda w: {"permission": "billing:manage"},
        audit=QUESTION,
    ),
    _case(
        "GET",
        "/orgs/{org}/access/who-can",
        P.GRANT_READ,
        scope="org",
        always="permission=team:update",
        queries=("resource_type=org",),
    ),
    _case(
        "GET",
        "/orgs/{org}/access/what-can",
        P.ORG_READ,
        scope="org",
        always="permission=team:read",
        queries=("resource_type=model",),
    ),
]
