"""Route-table entries of throttling (see tests/matrix/routes.py for what an entry says)."""

from __future__ import annotations

from typing import Any

from matrix.routes import PARAMS, WORLD_EXTRAS, RouteCase, World, WorldExtra
from tenantry.authz.catalog import Permission as P


def _acquire(world: World) -> dict[str, Any]:
    resp = world.client.post(
        f"/api/v1/teams/{world.team_id}/runs/leases",
        headers=world.owner.headers,
        json={"run_id": "seeded-run", "ttl_seconds": 600},
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def lease(world: World) -> dict[str, Any]:
    """A lease of the world's default team, held by its owner."""
    found: dict[str, Any] = world.once("run_lease", _acquire)
    return found


PARAMS["lease_id"] = lambda w: str(lease(w)["id"])
WORLD_EXTRAS.append(WorldExtra(seed=lease, ids=lambda w: {str(lease(w)["id"])}))


def _case(method: str, path: str, rule: P, **kw: Any) -> RouteCase:
    return RouteCase(method, "/api/v1" + path, rule, **kw)


CASES: list[RouteCase] = [
    _case("GET", "/orgs/{org}/rate-limits", P.USAGE_READ, scope="org"),
    _case(
        "PUT",
        "/orgs/{org}/rate-limits",
        P.ORG_UPDATE,
        scope="org",
        body=lambda w: {"org_burst": 50, "key_per_minute": 120},
    ),
    _case(
        "POST",
        "/teams/{team}/runs/leases",
        P.USAGE_WRITE,
        scope="team",
        body=lambda w: {"ttl_seconds": 120},
    ),
    _case("GET", "/teams/{team}/runs/leases", P.USAGE_READ, scope="team"),
    _case(
        "POST",
        "/teams/{team}/runs/leases/{lease_id}/heartbeat",
        P.USAGE_WRITE,
        scope="team",
        body=lambda w: {"ttl_seconds": 900},
        audit="a run heartbeats every few seconds; the lease's heartbeat_at is the record",
    ),
    _case("DELETE", "/teams/{team}/runs/leases/{lease_id}", P.USAGE_WRITE, scope="team"),
]
