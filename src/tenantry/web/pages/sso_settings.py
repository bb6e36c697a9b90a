"""An org's enterprise sign-in settings, for its admins: SSO connections (add one from a
preset, what to give the identity provider, a test sign-in and what it showed, the mapping
rules, enabling), the domains the org proves by DNS, and requiring SSO for them.

Each form calls the service the API's route calls, under the same permission, and its route
is named for the audit action it records, as the API's is.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import ValidationError
from starlette.responses import Response

from tenantry.api.sso import connection_out, domain_out, runtime, txt_resolver
from tenantry.authz.catalog import Permission
from tenantry.identity import repository as identity_repository
from tenantry.kit.errors import Problem
from tenantry.sso import connections, domains, policy
from tenantry.sso.mapping import MappingRules
from tenantry.sso.models import Protocol
from tenantry.sso.presets import Preset
from tenantry.sso.schemas import ConnectionCreateIn, DomainIn
from tenantry.tenancy import memberships
from tenantry.web.forms import FORM, FormRefused, FormState, parse, refused, text_fields
from tenantry.web.pages import changed, every, moved, page_router
from tenantry.web.templating import render
from tenantry.web.visit import Visit, org_page

router = page_router()

SsoRead = Annotated[Visit, Depends(org_page(Permission.SSO_READ))]
SsoManage = Annotated[Visit, Depends(org_page(Permission.SSO_MANAGE))]
SsoEnforce = Annotated[Visit, Depends(org_page(Permission.SSO_ENFORCE))]

PROTOCOLS = [("oidc", "OpenID Connect"), ("saml", "SAML 2.0")]
PRESETS = [
    (Preset.GENERIC.value, "Generic (issuer or metadata)"),
    (Preset.OKTA.value, "Okta (domain)"),
    (Preset.ENTRA_ID.value, "Microsoft Entra ID (tenant)"),
    (Preset.GOOGLE_WORKSPACE.value, "Google Workspace"),
    (Preset.AUTH0.value, "Auth0 (domain)"),
]
# The settings the add form offers, by the field that holds each.
SETTING_FIELDS = ("issuer", "domain", "tenant", "client_id", "idp_metadata_url", "hosted_domain")


def _base(visit: Visit) -> str:
    return f"/orgs/{visit.current_org.slug}/sso"


def _page(
    request: Request,
    visit: Visit,
    *,
    form: FormState | None = None,
    domain_form: FormState | None = None,
    notice: str = "",
) -> Response:
    ctx, org = visit.ctx, visit.current_org
    found = connections.list_connections(ctx.session, visit.principal, org)
    owners: list[Any] = []
    if visit.can(Permission.SSO_ENFORCE):  # break-glass owners are chosen among them
        rows = every(
            lambda page: memberships.list_org_members(ctx.session, visit.principal, org, page)
        )
        ids = [m.user_id for m in rows if m.role == "owner"]
        found_users = identity_repository.users_by_ids(ctx.session, ids)
        owners = [found_users[i] for i in ids if i in found_users]
    context = {
        "visit": visit,
        "org": org,
        "connections": [connection_out(ctx, c) for c in found],
        "domains": [domain_out(d) for d in domains.list_domains(ctx.session, visit.principal, org)],
        "policy": policy.read_policy(ctx.session, visit.principal, org),
        "owners": owners,
        "protocols": PROTOCOLS,
        "presets": PRESETS,
        "form": form or FormState(),
        "domain_form": domain_form or FormState(),
        "notice": notice,
    }
    failed = form if form and form.failed else domain_form
    status = failed.status if failed and failed.failed else 200
    return render(request, "sso_settings.html", context, status=status, block="page")


@router.get("/orgs/{org}/sso")
def sso_page(request: Request, visit: SsoRead) -> Response:
    return _page(request, visit)


@router.post("/orgs/{org}/sso/connections", name="sso_connection.created")
def create_connection(request: Request, visit: SsoManage) -> Response:
    ctx, org = visit.ctx, visit.current_org
    values = text_fields(visit.form)
    settings = {k: values[k].strip() for k in SETTING_FIELDS if values.get(k, "").strip()}
    try:
        body = parse(
            ConnectionCreateIn,
            visit.form,
            optional_blank=frozenset({"client_secret", "idp_metadata_xml"}),
            extra={"settings": settings, "jit_provisioning": "jit_provisioning" in values},
        )
        conn = connections.create_connection(
            ctx,
            visit.principal,
            org,
            runtime(request),
            name=body.name,
            protocol=Protocol(body.protocol),
            preset=Preset(body.preset),
            settings=body.settings.model_dump(exclude_none=True),
            client_secret=body.client_secret,
            idp_metadata_xml=body.idp_metadata_xml,
            jit_provisioning=body.jit_provisioning,
        )
    except FormRefused as refusal:
        return _page(request, visit, form=refusal.state)
    except Problem as problem:
        ctx.session.rollback()
        return _page(request, visit, form=refused(problem, visit.form).state)
    ctx.done(None, status=201)
    # Its own page says what to give the identity provider and runs the first test.
    return moved(request, f"{_base(visit)}/{conn.id}")


# ---- one connection ----


def _test_shown(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored test result with its time as a time (it is kept as RFC 3339 text)."""
    if not result:
        return None
    at = result.get("at")
    return {**result, "at": datetime.fromisoformat(at) if isinstance(at, str) else at}


def _connection_page(
    request: Request,
    visit: Visit,
    connection: str,
    *,
    mapping_form: FormState | None = None,
    notice: str = "",
    problem: Problem | None = None,
    status: int = 200,
) -> Response:
    ctx, org = visit.ctx, visit.current_org
    conn = connections.get_connection(ctx.session, visit.principal, org, connection)
    shown = connection_out(ctx, conn)
    mapping_text = json.dumps(shown.mapping.model_dump(mode="json", exclude_none=True), indent=2)
    context = {
        "visit": visit,
        "org": org,
        "conn": shown,
        "last_test": _test_shown(conn.last_test),
        "mapping_form": mapping_form or FormState(values={"mapping": mapping_text}),
        "notice": notice,
        "problem": problem,
    }
    if mapping_form and mapping_form.failed:
        status = mapping_form.status
    return render(request, "sso_connection.html", context, status=status, block="page")


@router.get("/orgs/{org}/sso/{connection}")
def connection_page(
    request: Request, connection: str, visit: SsoRead, sso_error: str = ""
) -> Response:
    notice = (
        "" if sso_error else ("Test finished." if "sso_purpose" in request.query_params else "")
    )
    return _connection_page(request, visit, connection, notice=notice)


@router.post("/orgs/{org}/sso/{connection}/test", name="sso_connection.test_started")
def start_test(request: Request, connection: str, visit: SsoManage) -> Response:
    ctx = visit.ctx
    try:
        started = connections.start_test(
            ctx,
            visit.principal,
            visit.current_org,
            runtime(request),
            connection,
            return_to=f"{_base(visit)}/{connection}",
        )
    except Problem as problem:
        if problem.status == 404:
            raise
        ctx.session.rollback()
        return _connection_page(request, visit, connection, problem=problem, status=problem.status)
    ctx.done(None)
    # A page that moves on by itself: the CSP lets forms post only to this site, and browsers
    # hold a redirect after a post to that too.
    return render(
        request,
        "sso/redirect.html",
        {"redirect_url": started.redirect_url},
        headers={"Refresh": f"0;url={started.redirect_url}"},
    )


def _toggle(request: Request, visit: Visit, connection: str, *, enabled: bool) -> Response:
    ctx = visit.ctx
    try:
        conn = connections.set_enabled(
            ctx, visit.principal, visit.current_org, connection, enabled=enabled
        )
    except Problem as problem:
        if problem.status == 404:
            raise
        ctx.session.rollback()
        return _connection_page(request, visit, connection, problem=problem, status=problem.status)
    ctx.done(None)
    said = f"{conn.name} {'enabled' if enabled else 'disabled'}."
    return changed(
        request,
        f"{_base(visit)}/{connection}",
        lambda: _connection_page(request, visit, connection, notice=said),
    )


@router.post("/orgs/{org}/sso/{connection}/enable", name="sso_connection.enabled")
def enable(request: Request, connection: str, visit: SsoManage) -> Response:
    return _toggle(request, visit, connection, enabled=True)


@router.post("/orgs/{org}/sso/{connection}/disable", name="sso_connection.disabled")
def disable(request: Request, connection: str, visit: SsoManage) -> Response:
    return _toggle(request, visit, connection, enabled=False)


@router.post("/orgs/{org}/sso/{connection}/mapping", name="sso_connection.mapping_changed")
def set_mapping(request: Request, connection: str, visit: SsoManage) -> Response:
    ctx = visit.ctx
    values = text_fields(visit.form)
    try:
        try:
            rules = MappingRules.model_validate_json(values.get("mapping", ""))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            detail = f"{where}: {first['msg']}" if where else str(first["msg"])
            raise FormRefused(FormState(values, {"mapping": detail}, 422)) from None
        connections.set_mapping(ctx, visit.principal, visit.current_org, connection, rules)
    except FormRefused as refusal:
        return _connection_page(request, visit, connection, mapping_form=refusal.state)
    except Problem as problem:
        if problem.status == 404:
            raise
        ctx.session.rollback()
        state = FormState(values, {"mapping": problem.detail}, problem.status)
        return _connection_page(request, visit, connection, mapping_form=state)
    ctx.done(None)
    return changed(
        request,
        f"{_base(visit)}/{connection}",
        lambda: _connection_page(request, visit, connection, notice="Mapping rules saved."),
    )


@router.post("/orgs/{org}/sso/{connection}/delete", name="sso_connection.deleted")
def delete_connection(request: Request, connection: str, visit: SsoManage) -> Response:
    ctx = visit.ctx
    try:
        connections.delete_connection(ctx, visit.principal, visit.current_org, connection)
    except Problem as problem:
        if problem.status == 404:
            raise
        ctx.session.rollback()
        return _connection_page(request, visit, connection, problem=problem, status=problem.status)
    ctx.done(None, status=204)
    return moved(request, _base(visit))


# ---- domains and the policy ----


@router.post("/orgs/{org}/domains", name="domain.added")
def add_domain(request: Request, visit: SsoManage) -> Response:
    ctx = visit.ctx
    try:
        body = parse(DomainIn, visit.form)
        claim = domains.add_domain(ctx, visit.principal, visit.current_org, name=body.domain)
    except FormRefused as refusal:
        return _page(request, visit, domain_form=refusal.state)
    except Problem as problem:
        ctx.session.rollback()
        return _page(request, visit, domain_form=refused(problem, visit.form).state)
    ctx.done(None, status=201)
    said = f"Publish the TXT record below, then verify {claim.domain}."
    return changed(request, _base(visit), lambda: _page(request, visit, notice=said))


@router.post("/orgs/{org}/domains/{domain_id}/verify", name="domain.verified")
def verify_domain(request: Request, domain_id: str, visit: SsoManage) -> Response:
    ctx = visit.ctx
    try:
        claim = domains.verify_domain(
            ctx,
            visit.principal,
            visit.current_org,
            domain_id=domain_id,
            resolver=txt_resolver(request),
        )
    except domains.DomainNotProven as failed:
        ctx.keep()  # the check and its failure stay on record, as the API's route keeps them
        state = FormState(errors={FORM: failed.problem.detail}, status=failed.problem.status)
        return _page(request, visit, domain_form=state)
    except Problem as problem:
        if problem.status == 404:
            raise
        ctx.session.rollback()
        state = FormState(errors={FORM: problem.detail}, status=problem.status)
        return _page(request, visit, domain_form=state)
    ctx.done(None)
    said = f"{claim.domain} verified."
    return changed(request, _base(visit), lambda: _page(request, visit, notice=said))


@router.post("/orgs/{org}/domains/{domain_id}/remove", name="domain.removed")
def remove_domain(request: Request, domain_id: str, visit: SsoManage) -> Response:
    ctx = visit.ctx
    try:
        domains.remove_domain(ctx, visit.principal, visit.current_org, domain_id=domain_id)
    except Problem as problem:
        if problem.status == 404:
            raise
        ctx.session.rollback()
        state = FormState(errors={FORM: problem.detail}, status=problem.status)
        return _page(request, visit, domain_form=state)
    ctx.done(None, status=204)
    return changed(request, _base(visit), lambda: _page(request, visit, notice="Domain removed."))


@router.post("/orgs/{org}/sso/policy", name="sso_policy.updated")
def set_policy(request: Request, visit: SsoEnforce) -> Response:
    ctx = visit.ctx
    enforced = visit.form.get("enforced") == "on"
    break_glass: list[Any] = list(visit.form.getlist("break_glass"))
    try:
        view = policy.set_policy(
            ctx,
            visit.principal,
            visit.current_org,
            enforced=enforced,
            break_glass_user_ids=[str(v) for v in break_glass],
        )
    except Problem as problem:
        ctx.session.rollback()
        state = FormState(errors={FORM: problem.detail}, status=problem.status)
        return _page(request, visit, domain_form=state)
    ctx.done(None)
    said = (
        "SSO is now required for the verified domains."
        if view.enforced
        else ("SSO is not required: people may also sign in with a password.")
    )
    return changed(request, _base(visit), lambda: _page(request, visit, notice=said))
