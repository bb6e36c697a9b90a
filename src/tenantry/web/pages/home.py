"""The start page: `/` opens the person's organization (or says how to get one); `/dashboard`,
the address earlier documentation gave, leads there."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from tenantry.web.pages import page_router
from tenantry.web.templating import render
from tenantry.web.visit import VisitDep

router = page_router()


@router.get("/")
def home(request: Request, visit: VisitDep) -> Response:
    if visit.memberships:
        _, org = visit.memberships[0]
        return RedirectResponse(f"/orgs/{org.slug}", status_code=303)
    return render(request, "home/no_org.html", {"visit": visit})


@router.get("/dashboard")
def dashboard() -> Response:
    return RedirectResponse("/", status_code=308)
