"""Signing in through SSO: the email-first page (home-realm discovery sends people of a verified
domain to their org's identity provider, everyone else to the password form) and the page the
provider's answer lands on, which turns its one-time code into the browser's session.

The verifier that binds the one-time code to this browser is kept in a cookie of its own from
the start of the sign-in to its end: a code carried to another browser opens nothing.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from tenantry.api.sso import runtime
from tenantry.http.state import app_state
from tenantry.kit.context import writes_on_get
from tenantry.kit.errors import Problem
from tenantry.sso import policy, signin
from tenantry.sso.schemas import DiscoverIn
from tenantry.web.forms import FORM, FormRefused, FormState, parse, refused
from tenantry.web.pages import page_router
from tenantry.web.pages.auth import safe_next
from tenantry.web.templating import render
from tenantry.web.visit import AnonymousDep, keep_anonymous_csrf, set_session_cookie, web_state

router = page_router()

VERIFIER_COOKIE = "tenantry_sso"
DONE_PATH = signin.DEFAULT_RETURN

# What a refusal's code means to the person in front of the browser.
REFUSALS = {
    "sso_access_denied": "Your organization's identity provider gives you no access here. "
    "Ask your administrator.",
    "sso_link_required": "An account with your email already exists. Sign in with your "
    "password, then link your identity provider from your account.",
    "sso_no_account": "You have no account here yet, and this sign-in creates none. Ask your "
    "administrator for an invitation.",
    "sso_wrong_domain": "This account is not one of your organization's.",
    "sso_email_unverified": "Your identity provider says your email is not verified.",
    "sso_expired": "The sign-in took too long. Please try again.",
    "quota_exceeded": "Your organization's plan has no room for another member. Ask your "
    "administrator.",
}
TRY_AGAIN = "The sign-in through your identity provider did not succeed. Please try again."


def _page(
    request: Request, csrf: str, state: FormState, next_path: str, *, notice: str | None = None
) -> Response:
    response = render(
        request,
        "sso/sign_in.html",
        {"form": state, "csrf": csrf, "next": next_path, "notice": notice},
        status=state.status,
    )
    return keep_anonymous_csrf(request, response, csrf)


@router.get("/sign-in/sso")
def sso_page(request: Request, anon: AnonymousDep, next: str = "/", email: str = "") -> Response:
    return _page(request, anon.csrf, FormState(values={"email": email}), safe_next(next))


@router.post("/sign-in/sso", name="sso.started")
def start(request: Request, anon: AnonymousDep, next: str = "/") -> Response:
    """Email first: a verified domain's person goes to their identity provider; anyone else
    to the password form."""
    ctx = anon.ctx
    target = safe_next(next)
    try:
        body = parse(DiscoverIn, anon.form)
    except FormRefused as refusal:
        return _page(request, anon.csrf, refusal.state, target)
    found = policy.discover(ctx.session, email=body.email)
    if not found.connections:
        return RedirectResponse(f"/sign-in?{urlencode({'next': target})}", status_code=303)
    try:
        started = signin.begin_sign_in(
            ctx,
            runtime(request),
            connection_id=None,
            email=body.email,
            return_to=f"{DONE_PATH}?next={quote(target, safe='/')}",
        )
    except Problem as problem:  # the provider could not be reached to start
        return _page(request, anon.csrf, refused(problem, anon.form).state, target)
    ctx.done(None)
    # A page that moves on by itself rather than a redirect: the form's page allows posting
    # only to this site (CSP `form-action 'self'`), which browsers hold redirects to as well.
    response = render(
        request,
        "sso/redirect.html",
        {"redirect_url": started.redirect_url},
        headers={"Refresh": f"0;url={started.redirect_url}"},
    )
    response.set_cookie(
        VERIFIER_COOKIE,
        started.verifier,
        max_age=ctx.settings.sso_attempt_ttl_seconds,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path=DONE_PATH,
    )
    return response


def _secure(request: Request) -> bool:
    configured = web_state(request).secure_cookies
    return configured if configured is not None else request.url.scheme == "https"


@router.get(DONE_PATH, name="auth.sso_exchange")
@writes_on_get
def done(
    request: Request,
    anon: AnonymousDep,
    next: str = "/",
    sso_code: str | None = None,
    sso_error: str | None = None,
) -> Response:
    """Where the provider's answer lands: its one-time code becomes this browser's session."""
    ctx = anon.ctx
    target = safe_next(next)
    if sso_code is None:
        message = REFUSALS.get(sso_error or "", TRY_AGAIN)
        failed = FormState(errors={FORM: message}, status=401 if sso_error else 400)
        return _page(request, anon.csrf, failed, target)
    try:
        issued = signin.exchange(
            ctx,
            tokens=app_state(request).tokens,
            code=sso_code,
            verifier=request.cookies.get(VERIFIER_COOKIE, ""),
        )
    except signin.SsoRefused as refusal:
        failed = FormState(errors={FORM: REFUSALS.get(refusal.code, TRY_AGAIN)}, status=401)
        return _page(request, anon.csrf, failed, target)
    ctx.done(None)
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(VERIFIER_COOKIE, path=DONE_PATH)
    return set_session_cookie(
        request,
        response,
        user_id=issued.user.id,
        session_id=issued.session_id,
        max_age=ctx.settings.refresh_token_ttl_seconds,
    )
