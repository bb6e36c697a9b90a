"""A page request's unit of work, person and scope (`Visit`), as the API's `OrgScope` is.

    visit: Annotated[Visit, Depends(org_page(Permission.TEAM_READ))]

opens the request's unit of work, checks the form's origin and CSRF token (on a POST), reads
the session cookie, checks its login session, resolves `{org}` (404 outside the person's orgs,
as the API answers) and authorizes the permission (403 with the missing permission).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Annotated, cast

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize, bind_clock, can
from tenantry.http.auth import TurnDep
from tenantry.http.work import unit_of_work_entered
from tenantry.identity import repository as identity_repository
from tenantry.identity import service as identity
from tenantry.identity.models import User
from tenantry.kit.context import MUTATING_METHODS, Ctx
from tenantry.kit.errors import NotFound, Unauthenticated
from tenantry.operator import service as operators
from tenantry.tenancy import repository as tenancy_repository
from tenantry.tenancy import scope as tenancy
from tenantry.tenancy.models import Organization, OrgMembership, Team
from tenantry.tenancy.security import check_ip
from tenantry.web.guard import check_same_origin, refuse_bad_token
from tenantry.web.session import (
    ANONYMOUS_CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    CookieSession,
    WebKeys,
    anonymous_csrf_matches,
    new_anonymous_csrf,
)

# One password-reset mail per address per this many seconds (per process): the form cannot
# be used to flood someone's mailbox.
RESET_MAIL_INTERVAL = timedelta(minutes=5)


@dataclass
class WebState:
    keys: WebKeys
    # Set: cookies are `Secure` always; None: when the request came over HTTPS.
    secure_cookies: bool | None = None
    reset_mailed: dict[str, datetime] = field(default_factory=dict)
    _reset_lock: threading.Lock = field(default_factory=threading.Lock)

    def may_mail_reset(self, address: str, now: datetime) -> bool:
        with self._reset_lock:
            last = self.reset_mailed.get(address)
            if last is not None and now - last < RESET_MAIL_INTERVAL:
                return False
            if len(self.reset_mailed) > 10_000:  # forget the old ones
                self.reset_mailed = {
                    k: v for k, v in self.reset_mailed.items() if now - v < RESET_MAIL_INTERVAL
                }
            self.reset_mailed[address] = now
            return True


def web_state(request: Request) -> WebState:
    return cast(WebState, request.app.state.web)


class SignInNeeded(Exception):
    """No valid session: the person is sent to the sign-in page, and back here afterwards."""


@dataclass
class Visit:
    """A signed-in person's page request."""

    request: Request
    ctx: Ctx
    principal: Principal
    user: User
    csrf: str
    memberships: list[tuple[OrgMembership, Organization]]
    form: FormData = field(default_factory=FormData)
    org: Organization | None = None
    team: Team | None = None

    @property
    def current_org(self) -> Organization:
        assert self.org is not None, "an org page's visit has its org"
        return self.org

    @property
    def current_team(self) -> Team:
        assert self.team is not None, "a team page's visit has its team"
        return self.team

    @cached_property
    def is_operator(self) -> bool:
        """Whether to show the operator console's link: the deployment's operators only."""
        return operators.is_operator(self.ctx.session, self.principal)

    @property
    def org_role(self) -> str | None:
        if self.org is None:
            return None
        return next((m.role for m, o in self.memberships if o.id == self.org.id), None)

    def can(self, permission: str, team_id: str | None = None) -> bool:
        """Whether to show a control: the same decision the service will make on submit."""
        if self.org is None:
            return False
        return can(
            self.ctx.session,
            self.principal,
            Permission(permission),
            org_id=self.org.id,
            team_id=team_id,
        )


async def _checked_form(request: Request, session: CookieSession) -> FormData:
    form = await request.form()
    check_same_origin(request)
    sent = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not web_state(request).keys.csrf_matches(session.session_id, sent):  # type: ignore[arg-type]
        raise refuse_bad_token()
    return form


def _enter(
    request: Request,
    ctx: Ctx,
    cookie: CookieSession,
    form: FormData,
    org_ref: str | None,
    permission: Permission | None,
    team_ref: str | None = None,
) -> Visit:
    bind_clock(ctx.session, ctx.clock)  # grant expiry is judged by the app's clock
    try:
        principal = identity.authenticate_session(
            ctx, user_id=cookie.user_id, session_id=cookie.session_id
        )
    except Unauthenticated:
        raise SignInNeeded() from None
    request.state.principal = principal
    user = identity_repository.user_by_id(ctx.session, principal.user_id)
    assert user is not None  # the login session's person is active
    visit = Visit(
        request=request,
        ctx=ctx,
        principal=principal,
        user=user,
        csrf=web_state(request).keys.csrf_token(cookie.session_id),
        memberships=tenancy_repository.memberships_of_user(ctx.session, user_id=user.id),
        form=form,
    )
    if org_ref is not None:
        org = tenancy.resolve_org(ctx.session, principal, org_ref)
        request.state.audit_org_id = org.id
        check_ip(ctx.session, org.id, ctx.origin.ip)  # the org's allowlist holds here too
        team = None
        if team_ref is not None:
            team = tenancy.resolve_team(ctx.session, principal, team_ref)
            if team.org_id != org.id:  # a team is only ever reached through its own org
                raise NotFound("Team not found")
            request.state.audit_team_id = team.id
        if permission is not None:
            authorize(
                ctx.session, principal, permission, org_id=org.id, team_id=team.id if team else None
            )
        visit.org, visit.team = org, team
    return visit


async def _visit(
    request: Request,
    org_ref: str | None,
    permission: Permission | None,
    team_ref: str | None = None,
) -> AsyncIterator[Visit]:
    cookie = web_state(request).keys.read_session_cookie(request.cookies.get(SESSION_COOKIE))
    if cookie is None:
        raise SignInNeeded()
    form = FormData()
    if request.method in MUTATING_METHODS:
        form = await _checked_form(request, cookie)
    async with unit_of_work_entered(
        request, "", lambda ctx: _enter(request, ctx, cookie, form, org_ref, permission, team_ref)
    ) as visit:
        yield visit


async def signed_in(request: Request, _turn: TurnDep) -> AsyncIterator[Visit]:
    async for visit in _visit(request, None, None):
        yield visit


VisitDep = Annotated[Visit, Depends(signed_in)]


async def maybe_signed_in(request: Request, _turn: TurnDep) -> AsyncIterator[Visit | None]:
    """The visit of a page that anyone may open (an invitation): None when nobody, or nobody
    whose session is still live, is signed in."""
    cookie = web_state(request).keys.read_session_cookie(request.cookies.get(SESSION_COOKIE))
    if cookie is None or request.method in MUTATING_METHODS:
        yield None
        return

    def enter(ctx: Ctx) -> Visit | None:
        try:
            return _enter(request, ctx, cookie, FormData(), None, None)
        except SignInNeeded:
            return None

    async with unit_of_work_entered(request, "", enter) as visit:
        yield visit


MaybeVisitDep = Annotated[Visit | None, Depends(maybe_signed_in)]


def org_page(permission: Permission | None = None) -> Callable[..., AsyncIterator[Visit]]:
    """A page of `{org}`, seen by those who hold `permission` in it (any member when None)."""

    async def dependency(org: str, request: Request, _turn: TurnDep) -> AsyncIterator[Visit]:
        async for visit in _visit(request, org, permission):
            yield visit

    return dependency


def team_page(permission: Permission | None) -> Callable[..., AsyncIterator[Visit]]:
    """A page of `{team}` in `{org}`, seen by those who hold `permission` on the team (None:
    the page authorizes on the resource it shows, which a grant may open alone)."""

    async def dependency(
        org: str, team: str, request: Request, _turn: TurnDep
    ) -> AsyncIterator[Visit]:
        async for visit in _visit(request, org, permission, team):
            yield visit

    return dependency


# ---- pages for people not signed in (sign in, sign up, the forgotten password) ----


@dataclass
class Anonymous:
    ctx: Ctx
    form: FormData
    csrf: str


async def anonymous(request: Request, _turn: TurnDep) -> AsyncIterator[Anonymous]:
    """The unit of work of a page seen before signing in. Its forms carry a random token that
    must match the `tenantry_csrf` cookie set when the form was shown, and an own origin."""
    cookie = request.cookies.get(ANONYMOUS_CSRF_COOKIE)
    form = FormData()
    if request.method in MUTATING_METHODS:
        form = await request.form()
        check_same_origin(request)
        if not anonymous_csrf_matches(cookie, form.get(CSRF_FIELD)):  # type: ignore[arg-type]
            raise refuse_bad_token()
    token = cookie or new_anonymous_csrf()

    def enter(ctx: Ctx) -> Anonymous:
        bind_clock(ctx.session, ctx.clock)
        return Anonymous(ctx=ctx, form=form, csrf=token)

    async with unit_of_work_entered(request, "", enter) as entered:
        yield entered


AnonymousDep = Annotated[Anonymous, Depends(anonymous)]


def _secure(request: Request) -> bool:
    configured = web_state(request).secure_cookies
    return configured if configured is not None else request.url.scheme == "https"


def keep_anonymous_csrf(request: Request, response: Response, token: str) -> Response:
    if request.cookies.get(ANONYMOUS_CSRF_COOKIE) != token:
        response.set_cookie(
            ANONYMOUS_CSRF_COOKIE,
            token,
            httponly=True,
            samesite="lax",
            secure=_secure(request),
            path="/",
        )
    return response


def set_session_cookie(
    request: Request, response: Response, *, user_id: str, session_id: str, max_age: int
) -> Response:
    value = web_state(request).keys.session_cookie(user_id=user_id, session_id=session_id)
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    return response


def clear_session_cookie(request: Request, response: Response) -> Response:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=_secure(request)
    )
    return response
