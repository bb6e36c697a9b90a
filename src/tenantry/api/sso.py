"""HTTP routes of enterprise sign-in: an org's SSO connections, their mapping rules and test
sign-ins, verified domains and the SSO policy; and the public side of SSO sign-in (home-realm
discovery, the trip to the identity provider, its answer, the one-time code's exchange).

Each mutating route's `name` is the audit action it records.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.responses import JSONResponse, RedirectResponse

from tenantry.api.identity import tokens_out
from tenantry.authz.catalog import Permission
from tenantry.http.auth import OrgScope, PrincipalDep, org_scope
from tenantry.http.body import JsonBodyRoute
from tenantry.http.state import app_state
from tenantry.http.work import CtxDep
from tenantry.identity.schemas import TokensOut
from tenantry.kit.context import Ctx, reads_only, writes_on_get
from tenantry.kit.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PaymentRequired,
    Problem,
    Unauthenticated,
)
from tenantry.sso import connections, domains, policy, repository, saml, signin
from tenantry.sso.dns import DnsTxtResolver, TxtResolver
from tenantry.sso.mapping import MappingRules
from tenantry.sso.models import Protocol, SsoConnection, VerifiedDomain
from tenantry.sso.oidc import ProviderDirectory
from tenantry.sso.presets import Preset
from tenantry.sso.schemas import (
    ConnectionCreateIn,
    ConnectionOut,
    ConnectionUpdateIn,
    DiscoveredConnectionOut,
    DiscoveredOrgOut,
    DiscoverIn,
    DiscoverOut,
    DomainIn,
    DomainOut,
    ExchangeIn,
    LinkStartIn,
    PolicyIn,
    PolicyOut,
    ReturnIn,
    ServiceProviderOut,
    SignInStartIn,
    StartedOut,
    TestResultOut,
)
from tenantry.sso.secrets import SecretBox

router = APIRouter(prefix="/api/v1", route_class=JsonBodyRoute)

Read = Annotated[OrgScope, Depends(org_scope(Permission.SSO_READ))]
Manage = Annotated[OrgScope, Depends(org_scope(Permission.SSO_MANAGE))]
Enforce = Annotated[OrgScope, Depends(org_scope(Permission.SSO_ENFORCE))]


# ---- what the app holds for SSO ----


def runtime(request: Request) -> signin.Runtime:
    """The app's providers directory and secret box, made on first use."""
    state = cast(Any, request.app.state)
    found: signin.Runtime | None = getattr(state, "sso_runtime", None)
    if found is None:
        secret = app_state(request).settings.server_secret()
        found = state.sso_runtime = signin.Runtime(ProviderDirectory(), SecretBox(secret))
    return found


def txt_resolver(request: Request) -> TxtResolver:
    """The resolver domain verification asks (`TENANTRY_DNS_NAMESERVERS`); a test may set the
    app's `sso_txt_resolver`."""
    state = cast(Any, request.app.state)
    found: TxtResolver | None = getattr(state, "sso_txt_resolver", None)
    if found is None:
        found = state.sso_txt_resolver = DnsTxtResolver(app_state(request).settings.dns_nameservers)
    return found


def _base_url(ctx: Ctx) -> str:
    return ctx.origin.base_url.rstrip("/")


def connection_out(ctx: Ctx, conn: SsoConnection) -> ConnectionOut:
    base = _base_url(ctx)
    if conn.protocol == Protocol.OIDC:
        sp = ServiceProviderOut(redirect_uri=base + signin.OIDC_CALLBACK_PATH)
    else:
        provider = signin.service_provider(conn, base_url=base, skew=0)
        sp = ServiceProviderOut(
            entity_id=provider.entity_id,
            acs_url=provider.acs_url,
            metadata_url=provider.entity_id,
        )
    last = conn.last_test
    return ConnectionOut(
        id=conn.id,
        org_id=conn.org_id,
        name=conn.name,
        protocol=conn.protocol,
        preset=conn.preset,
        enabled=conn.enabled,
        settings=dict(conn.settings),
        has_client_secret=conn.client_secret_sealed is not None,
        jit_provisioning=conn.jit_provisioning,
        mapping=MappingRules.of(conn.mapping),
        revision=conn.revision,
        tested=conn.tested_revision == conn.revision,
        last_test_ok=bool(last.get("ok")) if last else None,
        service_provider=sp,
        created_at=conn.created_at,
        updated_at=conn.updated_at,
    )


def started_out(started: signin.Started) -> StartedOut:
    return StartedOut(
        attempt_id=started.attempt_id,
        redirect_url=started.redirect_url,
        verifier=started.verifier,
        expires_at=started.expires_at,
    )


# ---- connections ----


@router.post(
    "/orgs/{org}/sso/connections",
    name="sso_connection.created",
    status_code=201,
    response_model=ConnectionOut,
    tags=["sso"],
)
def create_connection(body: ConnectionCreateIn, scope: Manage, request: Request) -> Response:
    ctx = scope.ctx
    conn = connections.create_connection(
        ctx,
        scope.principal,
        scope.org,
        runtime(request),
        name=body.name,
        protocol=Protocol(body.protocol),
        preset=Preset(body.preset),
        settings=body.settings.model_dump(exclude_none=True),
        client_secret=body.client_secret,
        idp_metadata_xml=body.idp_metadata_xml,
        jit_provisioning=body.jit_provisioning,
    )
    return ctx.done(connection_out(ctx, conn), status=201)


@router.get("/orgs/{org}/sso/connections", response_model=list[ConnectionOut], tags=["sso"])
def list_connections(scope: Read) -> list[ConnectionOut]:
    found = connections.list_connections(scope.ctx.session, scope.principal, scope.org)
    return [connection_out(scope.ctx, c) for c in found]


@router.get("/orgs/{org}/sso/connections/{connection}", response_model=ConnectionOut, tags=["sso"])
def get_connection(connection: str, scope: Read) -> ConnectionOut:
    conn = connections.get_connection(scope.ctx.session, scope.principal, scope.org, connection)
    return connection_out(scope.ctx, conn)


@router.patch(
    "/orgs/{org}/sso/connections/{connection}",
    name="sso_connection.updated",
    response_model=ConnectionOut,
    tags=["sso"],
)
def update_connection(
    connection: str, body: ConnectionUpdateIn, scope: Manage, request: Request
) -> Response:
    changes = body.model_dump(exclude_unset=True)
    if body.settings is not None:
        changes["settings"] = body.settings.model_dump(exclude_unset=True)
    conn = connections.update_connection(
        scope.ctx, scope.principal, scope.org, runtime(request), connection, changes=changes
    )
    return scope.ctx.done(connection_out(scope.ctx, conn))


@router.delete(
    "/orgs/{org}/sso/connections/{connection}",
    name="sso_connection.deleted",
    status_code=204,
    tags=["sso"],
)
def delete_connection(connection: str, scope: Manage) -> Response:
    connections.delete_connection(scope.ctx, scope.principal, scope.org, connection)
    return scope.ctx.done(None, status=204)


@router.put(
    "/orgs/{org}/sso/connections/{connection}/mapping",
    name="sso_connection.mapping_changed",
    response_model=ConnectionOut,
    tags=["sso"],
)
def set_mapping(connection: str, body: MappingRules, scope: Manage) -> Response:
    conn = connections.set_mapping(scope.ctx, scope.principal, scope.org, connection, body)
    return scope.ctx.done(connection_out(scope.ctx, conn))


@router.post(
    "/orgs/{org}/sso/connections/{connection}/test",
    name="sso_connection.test_started",
    response_model=StartedOut,
    tags=["sso"],
)
def start_test(connection: str, body: ReturnIn, scope: Manage, request: Request) -> Response:
    started = connections.start_test(
        scope.ctx,
        scope.principal,
        scope.org,
        runtime(request),
        connection,
        return_to=signin.check_return_to(scope.ctx, body.return_to),
    )
    return scope.ctx.done(started_out(started))


@router.get(
    "/orgs/{org}/sso/connections/{connection}/test", response_model=TestResultOut, tags=["sso"]
)
def last_test(connection: str, scope: Read) -> TestResultOut:
    conn = connections.get_connection(scope.ctx.session, scope.principal, scope.org, connection)
    return TestResultOut(
        connection_id=conn.id,
        tested=conn.tested_revision == conn.revision,
        result=conn.last_test,
    )


@router.post(
    "/orgs/{org}/sso/connections/{connection}/enable",
    name="sso_connection.enabled",
    response_model=ConnectionOut,
    tags=["sso"],
)
def enable(connection: str, scope: Manage) -> Response:
    conn = connections.set_enabled(scope.ctx, scope.principal, scope.org, connection, enabled=True)
    return scope.ctx.done(connection_out(scope.ctx, conn))


@router.post(
    "/orgs/{org}/sso/connections/{connection}/disable",
    name="sso_connection.disabled",
    response_model=ConnectionOut,
    tags=["sso"],
)
def disable(connection: str, scope: Manage) -> Response:
    conn = connections.set_enabled(scope.ctx, scope.principal, scope.org, connection, enabled=False)
    return scope.ctx.done(connection_out(scope.ctx, conn))


# ---- policy ----


def policy_out(view: policy.PolicyView) -> PolicyOut:
    return PolicyOut(
        enforced=view.enforced,
        break_glass=view.break_glass_user_ids,
        verified_domains=view.verified_domains,
    )


@router.get("/orgs/{org}/sso/policy", response_model=PolicyOut, tags=["sso"])
def read_policy(scope: Read) -> PolicyOut:
    return policy_out(policy.read_policy(scope.ctx.session, scope.principal, scope.org))


@router.put(
    "/orgs/{org}/sso/policy", name="sso_policy.updated", response_model=PolicyOut, tags=["sso"]
)
def set_policy(body: PolicyIn, scope: Enforce) -> Response:
    view = policy.set_policy(
        scope.ctx,
        scope.principal,
        scope.org,
        enforced=body.enforced,
        break_glass_user_ids=body.break_glass,
    )
    return scope.ctx.done(policy_out(view))


# ---- domains ----


def domain_out(claim: VerifiedDomain) -> DomainOut:
    return DomainOut(
        id=claim.id,
        domain=claim.domain,
        status=claim.status,
        record_name=domains.record_name(claim),
        record_value=domains.record_value(claim),
        created_at=claim.created_at,
        verified_at=claim.verified_at,
        last_checked_at=claim.last_checked_at,
    )


@router.post(
    "/orgs/{org}/domains",
    name="domain.added",
    status_code=201,
    response_model=DomainOut,
    tags=["sso"],
)
def add_domain(body: DomainIn, scope: Manage) -> Response:
    claim = domains.add_domain(scope.ctx, scope.principal, scope.org, name=body.domain)
    return scope.ctx.done(domain_out(claim), status=201)


@router.get("/orgs/{org}/domains", response_model=list[DomainOut], tags=["sso"])
def list_domains(scope: Read) -> list[DomainOut]:
    return [
        domain_out(d) for d in domains.list_domains(scope.ctx.session, scope.principal, scope.org)
    ]


@router.post(
    "/orgs/{org}/domains/{domain_id}/verify",
    name="domain.verified",
    response_model=DomainOut,
    tags=["sso"],
)
def verify_domain(domain_id: str, scope: Manage, request: Request) -> Response:
    ctx = scope.ctx
    try:
        claim = domains.verify_domain(
            ctx, scope.principal, scope.org, domain_id=domain_id, resolver=txt_resolver(request)
        )
    except domains.DomainNotProven as failed:
        ctx.keep()  # the check and its failure stay on record
        raise failed.problem from None
    return ctx.done(domain_out(claim))


@router.delete(
    "/orgs/{org}/domains/{domain_id}", name="domain.removed", status_code=204, tags=["sso"]
)
def remove_domain(domain_id: str, scope: Manage) -> Response:
    domains.remove_domain(scope.ctx, scope.principal, scope.org, domain_id=domain_id)
    return scope.ctx.done(None, status=204)


# ---- signing in ----


@router.post("/auth/sso/discover", name="sso.discover", response_model=DiscoverOut, tags=["auth"])
@reads_only
def discover(body: DiscoverIn, ctx: CtxDep) -> DiscoverOut:
    found = policy.discover(ctx.session, email=body.email)
    return DiscoverOut(
        domain=found.domain,
        sso=bool(found.connections),
        enforced=found.enforced and bool(found.connections),
        org=DiscoveredOrgOut(slug=found.org.slug, name=found.org.name) if found.org else None,
        connections=[
            DiscoveredConnectionOut(id=c.id, name=c.name, protocol=c.protocol)
            for c in found.connections
        ],
    )


@router.post("/auth/sso/start", name="sso.started", response_model=StartedOut, tags=["auth"])
def start_sign_in(body: SignInStartIn, ctx: CtxDep, request: Request) -> Response:
    started = signin.begin_sign_in(
        ctx,
        runtime(request),
        connection_id=body.connection_id,
        email=body.email,
        return_to=body.return_to,
    )
    return ctx.done(started_out(started))


@router.post("/me/sso/link", name="sso.link_started", response_model=StartedOut, tags=["me"])
def start_link(
    body: LinkStartIn, ctx: CtxDep, principal: PrincipalDep, request: Request
) -> Response:
    started = signin.begin_link(
        ctx,
        runtime(request),
        principal,
        connection_id=body.connection_id,
        return_to=body.return_to,
    )
    return ctx.done(started_out(started))


def _problem(refused: signin.SsoRefused) -> Problem:
    if refused.status == 402:
        return PaymentRequired(refused.detail, code=refused.code)
    if refused.status == 403:
        return Forbidden(refused.detail, code=refused.code)
    if refused.status == 409:
        return Conflict(refused.detail, code=refused.code)
    return Unauthenticated(refused.detail, code=refused.code)


def _refused(ctx: Ctx, refused: signin.SsoRefused) -> Response:
    ctx.session.rollback()
    ctx.idempotency_record = None
    signin.record_refusal(ctx, refused)
    ctx.keep()
    if refused.return_to:
        target = signin.finished_redirect(
            refused.return_to, {"sso_error": refused.code, "sso_purpose": refused.purpose or ""}
        )
        return RedirectResponse(target, status_code=303)
    raise _problem(refused)


def _finished(ctx: Ctx, done: signin.Finished) -> Response:
    ctx.done(None)
    if done.code is not None:
        target = done.return_to or signin.DEFAULT_RETURN
        return RedirectResponse(
            signin.finished_redirect(target, {"sso_code": done.code}), status_code=303
        )
    if done.return_to:
        params = (
            {"sso_test": "ok", "connection": done.connection_id}
            if done.test is not None
            else {"sso_linked": done.connection_id}
        )
        return RedirectResponse(signin.finished_redirect(done.return_to, params), status_code=303)
    if done.test is not None:
        return JSONResponse(
            {"connection_id": done.connection_id, "tested": True, "result": done.test}
        )
    return JSONResponse({"connection_id": done.connection_id, "linked": True})


@router.get("/auth/sso/oidc/callback", name="sso.oidc_response", status_code=303, tags=["auth"])
@writes_on_get
def oidc_callback(
    ctx: CtxDep,
    request: Request,
    state: Annotated[str, Query(min_length=1, max_length=500)],
    code: Annotated[str | None, Query(max_length=4000)] = None,
    error: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """Where the OpenID provider sends the person back: the sign-in (or test, or link) ends
    here, and the browser goes on to where it started with a one-time code."""
    try:
        done = signin.finish_oidc(ctx, runtime(request), state=state, code=code, error=error)
    except signin.SsoRefused as refused:
        return _refused(ctx, refused)
    return _finished(ctx, done)


async def _saml_form(request: Request) -> tuple[str, str | None]:
    form = await request.form(max_files=0, max_fields=4)
    response = form.get("SAMLResponse")
    relay = form.get("RelayState")
    if not isinstance(response, str) or not response:
        raise Unauthenticated("Send the SAMLResponse form field", code="sso_invalid_response")
    return response, relay if isinstance(relay, str) else None


@router.post(
    "/auth/sso/saml/{connection}/acs", name="sso.saml_response", status_code=303, tags=["auth"]
)
def saml_acs(
    connection: str,
    ctx: CtxDep,
    form: Annotated[tuple[str, str | None], Depends(_saml_form)],
) -> Response:
    """The assertion consumer service: the IdP posts the person's signed response here."""
    try:
        done = signin.finish_saml(
            ctx, connection_id=connection, saml_response=form[0], base_url=_base_url(ctx)
        )
    except signin.SsoRefused as refused:
        return _refused(ctx, refused)
    return _finished(ctx, done)


@router.get(
    "/auth/sso/saml/{connection}/metadata",
    tags=["auth"],
    response_class=Response,
    responses={
        200: {
            "description": "The SP metadata (XML)",
            "content": {"application/samlmetadata+xml": {"schema": {"type": "string"}}},
        }
    },
)
def saml_metadata(connection: str, ctx: CtxDep) -> Response:
    """The SP metadata of a SAML connection, for its IdP (public, like every SP's)."""
    conn = repository.unscoped_connection(ctx.session, connection)
    if conn is None or conn.protocol != Protocol.SAML:
        raise NotFound("SAML connection not found")
    sp = signin.service_provider(conn, base_url=_base_url(ctx), skew=0)
    return Response(saml.sp_metadata(sp), media_type="application/samlmetadata+xml")


@router.post(
    "/auth/sso/exchange", name="auth.sso_exchange", response_model=TokensOut, tags=["auth"]
)
def exchange(body: ExchangeIn, ctx: CtxDep, request: Request) -> Response:
    try:
        issued = signin.exchange(
            ctx, tokens=app_state(request).tokens, code=body.code, verifier=body.verifier
        )
    except signin.SsoRefused as refused:
        raise _problem(refused) from None
    return ctx.done(tokens_out(ctx, issued))
