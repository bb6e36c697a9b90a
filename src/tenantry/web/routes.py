"""The dashboard mounted on the app: its pages, its assets under /static/, the headers every
page carries, the sign-in redirect and the HTML error pages."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from tenantry.config import Settings
from tenantry.kit.errors import Problem
from tenantry.web.guard import PageHeaders
from tenantry.web.pages import (
    PageRoute,
    access,
    account,
    api_keys,
    audit,
    auth,
    billing,
    compliance,
    governance,
    governance_classification,
    home,
    invitations,
    members,
    ml,
    model_access,
    operator,
    overview,
    security,
    spend,
    sso,
    sso_settings,
    teams,
    usage,
    webhooks,
)
from tenantry.web.session import SESSION_COOKIE, WebKeys
from tenantry.web.templating import is_htmx, render
from tenantry.web.visit import SignInNeeded, WebState, clear_session_cookie

STATIC_PREFIX = "/static/"
PAGE_ROUTERS = (
    auth.router,
    sso.router,
    home.router,
    overview.router,
    teams.router,
    members.router,
    invitations.router,
    api_keys.router,
    account.router,
    access.router,
    usage.router,
    spend.router,
    ml.router,
    billing.router,
    audit.router,
    compliance.router,
    sso_settings.router,
    webhooks.router,
    security.router,
    governance_classification.router,
    governance.router,
    model_access.router,
    operator.router,
)


def is_page_scope(scope: Scope) -> bool:
    return isinstance(scope.get("route"), PageRoute)


def is_page(request: Request) -> bool:
    return is_page_scope(request.scope)


def problem_page(request: Request, problem: Problem) -> Response:
    """A refusal on a page, as a page: the API's status and `detail`, in words and HTML."""
    visit = None
    ctx = getattr(request.state, "ctx", None)
    # The page's layout (navigation) only when the person is known; their unit of work is gone
    # by now, so the error page shows no organization data.
    context = {"problem": problem, "visit": visit, "signed_in": ctx is not None}
    headers = {k: v for k, v in problem.headers.items() if k.lower() == "retry-after"}
    if is_htmx(request):
        # A refused part-update replaces nothing but tells the page where to show the error.
        headers["HX-Retarget"] = "#flash"
        headers["HX-Reswap"] = "innerHTML"
        return render(request, "error.html", context, status=problem.status, block="message")
    return render(request, "error.html", context, status=problem.status, headers=headers)


def _sign_in_redirect(request: Request, exc: Exception) -> Response:
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = f"/sign-in?next={quote(back, safe='/')}" if request.method == "GET" else "/sign-in"
    response: Response
    if is_htmx(request):
        response = Response(status_code=204, headers={"HX-Redirect": target})
    else:
        response = RedirectResponse(target, status_code=303)
    # Only a cookie that was sent and is no good is cleared: a request that came without one
    # (a cross-site post, where SameSite keeps it back) must not sign the person out.
    if SESSION_COOKIE in request.cookies:
        clear_session_cookie(request, response)
    return response


def install(app: FastAPI, settings: Settings) -> None:
    app.state.web = WebState(
        keys=WebKeys(settings.server_secret()), secure_cookies=settings.web_secure_cookies
    )
    for router in PAGE_ROUTERS:
        app.include_router(router)
    static = Path(str(files("tenantry.web") / "static"))
    app.mount(STATIC_PREFIX.rstrip("/"), StaticFiles(directory=static), name="static")
    app.add_exception_handler(SignInNeeded, _sign_in_redirect)
    app.add_middleware(PageHeaders, is_page=is_page_scope, static_prefix=STATIC_PREFIX)
