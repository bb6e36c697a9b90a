"""Typed dependencies that put authentication and authorization in every endpoint's signature:

    scope: Annotated[OrgScope, Depends(org_scope(Permission.TEAM_CREATE))]

resolves `{org}` (id or slug), answers 404 outside the principal's tenants and 403 with the
missing permission inside them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize, bind_clock
from tenantry.http.state import app_state
from tenantry.http.work import (
    CtxDep,
    in_one_turn,
    request_fingerprint,
    unit_of_work_entered,
    write_turn,
)
from tenantry.identity import service as identity
from tenantry.kit.context import Ctx, authenticating
from tenantry.kit.errors import Unauthenticated
from tenantry.tenancy import scope as tenancy
from tenantry.tenancy.models import Organization, Team
from tenantry.tenancy.security import check_ip
from tenantry.throttling.limiter import throttle_request


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Unauthenticated("Send `Authorization: Bearer <access token or API key>`")
    return credential.strip()


def authenticate_request(request: Request, ctx: Ctx, credential: str | None = None) -> Principal:
    """Who sent the request (401 if nobody valid), with the org's rate limits applied. The
    credential is the bearer token unless the caller read it from elsewhere (the MLflow face
    also takes it as a Basic password)."""
    credential = credential or _bearer(request)
    state = app_state(request)
    bind_clock(ctx.session, ctx.clock)  # grant expiry is judged by the app's clock
    touch = identity.TouchApiKey(ctx, None if ctx.write else partial(state.db.session, write=True))
    principal = identity.authenticate(ctx, tokens=state.tokens, credential=credential, touch=touch)
    if principal.key_org_id is not None:  # a suspended org's keys open nothing at all
        tenancy.check_active(ctx.session, principal.key_org_id)
        check_ip(ctx.session, principal.key_org_id, ctx.origin.ip)
    request.state.principal = principal
    throttle_request(request, ctx, principal)  # an API key's org is known now
    if ctx.replay is not None:
        raise ctx.replay
    return principal


@authenticating
def current_principal(request: Request, ctx: CtxDep) -> Principal:
    return authenticate_request(request, ctx)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


@authenticating
async def bearer_credential(request: Request) -> str:
    """Declares (and checks the form of) the bearer credential of an endpoint that
    authenticates in its own unit of work, through `authenticated`."""
    return _bearer(request)


BearerDep = Annotated[str, Depends(bearer_credential)]
_T = TypeVar("_T")


async def authenticated(request: Request, work: Callable[[Ctx, Principal], _T]) -> _T:
    """Authenticate and run `work` in one unit of work and one worker thread
    (`kit.http.in_one_turn`): the hot endpoints' `PrincipalDep`. Declare `BearerDep` in the
    endpoint's signature, so the route is known to authenticate (an Idempotency-Key replay waits
    for the credential to be verified)."""
    return await in_one_turn(request, lambda ctx: work(ctx, authenticate_request(request, ctx)))


@dataclass
class OrgScope:
    ctx: Ctx
    principal: Principal
    org: Organization


@dataclass
class TeamScope:
    ctx: Ctx
    principal: Principal
    team: Team


# The scope dependencies open the request's unit of work themselves, and authenticate, resolve
# and authorize in the same worker thread (`unit_of_work_entered`). A route that declares a
# scope therefore does not also declare `CtxDep` or `PrincipalDep`: it has `scope.ctx` and
# `scope.principal`.
FingerprintDep = Annotated[str, Depends(request_fingerprint)]
TurnDep = Annotated[None, Depends(write_turn)]


def org_scope(permission: Permission) -> Callable[..., AsyncIterator[OrgScope]]:
    def enter(request: Request, ctx: Ctx, org: str) -> OrgScope:
        principal = authenticate_request(request, ctx)
        found = tenancy.resolve_org(ctx.session, principal, org)
        request.state.audit_org_id = found.id
        check_ip(ctx.session, found.id, ctx.origin.ip)
        throttle_request(request, ctx, principal, org_id=found.id)
        authorize(ctx.session, principal, permission, org_id=found.id)
        return OrgScope(ctx=ctx, principal=principal, org=found)

    @authenticating
    async def dependency(
        org: str, request: Request, fingerprint: FingerprintDep, _turn: TurnDep
    ) -> AsyncIterator[OrgScope]:
        async with unit_of_work_entered(
            request, fingerprint, lambda ctx: enter(request, ctx, org)
        ) as scope:
            yield scope

    return dependency


def team_scope(permission: Permission | None) -> Callable[..., AsyncIterator[TeamScope]]:
    """The team of the path, with `permission` on it checked; None leaves the check to the
    service, on a resource of the team (a registered model a grant may open by itself)."""

    def enter(request: Request, ctx: Ctx, team: str) -> TeamScope:
        principal = authenticate_request(request, ctx)
        found = tenancy.resolve_team(ctx.session, principal, team)
        request.state.audit_org_id, request.state.audit_team_id = found.org_id, found.id
        check_ip(ctx.session, found.org_id, ctx.origin.ip)
        throttle_request(request, ctx, principal, org_id=found.org_id, team_id=found.id)
        if permission is not None:
            authorize(ctx.session, principal, permission, org_id=found.org_id, team_id=found.id)
        return TeamScope(ctx=ctx, principal=principal, team=found)

    @authenticating
    async def dependency(
        team: str, request: Request, fingerprint: FingerprintDep, _turn: TurnDep
    ) -> AsyncIterator[TeamScope]:
        async with unit_of_work_entered(
            request, fingerprint, lambda ctx: enter(request, ctx, team)
        ) as scope:
            yield scope

    return dependency
