"""The dashboard's pages, one module per part of it. Every route is a `PageRoute`, so the
page headers, the HTML error pages and the sign-in redirect apply to it (`web.routes`)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute


class PageRoute(APIRoute):
    """A route of the dashboard (HTML for people), told apart from the API's routes."""


def page_router() -> APIRouter:
    return APIRouter(route_class=PageRoute, include_in_schema=False)
