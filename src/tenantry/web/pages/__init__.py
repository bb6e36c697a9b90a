"""The dashboard's pages, one module per part of it. Every route is a `PageRoute`, so the
page headers, the HTML error pages and the sign-in redirect apply to it (`web.routes`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from starlette.responses import RedirectResponse, Response

from tenantry.kit.pagination import MAX_LIMIT, Page, PageRequest
from tenantry.web.templating import is_htmx


class PageRoute(APIRoute):
    """A route of the dashboard (HTML for people), told apart from the API's routes."""


def page_router() -> APIRouter:
    return APIRouter(route_class=PageRoute, include_in_schema=False)


T = TypeVar("T")
# A page lists at most this many rows of one kind (teams, members, keys); past that it says so
# and points at the API's paged lists.
PAGE_ROWS = 1000


def every(fetch: Callable[[PageRequest], Page[T]], *, cap: int = PAGE_ROWS) -> list[T]:
    """All rows of a paged service call, up to `cap`."""
    rows: list[T] = []
    cursor: str | None = None
    while len(rows) < cap:
        found = fetch(PageRequest(limit=MAX_LIMIT, cursor=cursor))
        rows.extend(found.items)
        cursor = found.next_cursor
        if cursor is None:
            break
    return rows[:cap]


def changed(request: Request, location: str, rerender: Callable[[], Response]) -> Response:
    """The answer to a form that changed something: htmx gets the page's part again (`rerender`,
    which shows what changed); a plain form post is sent back to the page (303), so reloading
    it does not post again."""
    if is_htmx(request):
        return rerender()
    return RedirectResponse(location, status_code=303)


def moved(request: Request, location: str) -> Response:
    """The answer to a form after which its page is gone (a deleted team): the browser is sent
    to `location`, by htmx's `HX-Redirect` or a plain 303."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)
