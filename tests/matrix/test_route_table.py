"""The route table: no route's path is also matched by another route of the same method, so the
order routers are included in (chosen for speed: see `tenantry.app`) decides nothing."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.routing import APIRoute


def _routes(app: FastAPI) -> list[APIRoute]:
    found: list[APIRoute] = []
    for route in app.router.routes:
        included = getattr(route, "original_router", None)
        for inner in included.routes if included is not None else [route]:
            if isinstance(inner, APIRoute):
                found.append(inner)
    return found


def test_no_route_is_reached_by_another_routes_path(app: FastAPI) -> None:
    routes = _routes(app)
    assert len(routes) > 90
    for route in routes:
        path = re.sub(r"\{[^}]+\}", "x1", route.path)
        assert route.path_regex.match(path), route.path
        for other in routes:
            if other is not route and other.methods & route.methods:
                assert not other.path_regex.match(path), (route.path, other.path)
