"""HTTP routes of identity: sign-up, sign-in, tokens, sessions, the caller's profile, API keys.

Each mutating route's `name` is the audit action it records. A refused second-factor code is
recorded as a failure of the same action.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.http.auth import OrgScope, PrincipalDep, org_scope
from tenantry.http.body import JsonBodyRoute
from tenantry.http.state import app_state
from tenantry.http.work import CtxDep, json_body_schema, parse_json_body
from tenantry.identity import mfa, repository, service
from tenantry.identity.schemas import (
    ApiKeyCreatedOut,
    ApiKeyCreateIn,
    ApiKeyOut,
    BackupCodesOut,
    LoginIn,
    MembershipOut,
    MeOut,
    MeUpdateIn,
    MfaCodeIn,
    MfaEnrolmentOut,
    MfaRequiredOut,
    MfaSignInIn,
    MfaStatusOut,
    MfaTokenIn,
    MfaTokensOut,
    PasswordChangeIn,
    RefreshIn,
    SessionOut,
    SignupIn,
    TeamMembershipOut,
    TokensOut,
    UserOut,
)
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Unauthenticated, Unprocessable
from tenantry.kit.pagination import PageDep, PageOut
from tenantry.tenancy import repository as tenancy_repository

router = APIRouter(prefix="/api/v1", route_class=JsonBodyRoute)


def tokens_out(ctx: Ctx, issued: service.IssuedTokens) -> TokensOut:
    return TokensOut(
        access_token=issued.access_token,
        expires_in=int((issued.access_expires_at - ctx.clock.now()).total_seconds()),
        expires_at=issued.access_expires_at,
        refresh_token=issued.refresh_token,
        session_id=issued.session_id,
        user=UserOut.model_validate(issued.user),
    )


@router.post(
    "/auth/signup", name="auth.signup", status_code=201, response_model=TokensOut, tags=["auth"]
)
def signup(body: SignupIn, ctx: CtxDep, request: Request) -> Response:
    state = app_state(request)
    user = service.create_user(
        ctx,
        passwords=state.passwords,
        email=body.email,
        password=body.password,
        username=body.username,
        full_name=body.full_name,
    )
    issued = service.start_session(ctx, tokens=state.tokens, user=user)
    audit.record(
        ctx, None, org_id=None, target_type="user", target_id=user.id, actor=("user", user.id)
    )
    return ctx.done(tokens_out(ctx, issued), status=201)


LOGIN_BODY = TypeAdapter(LoginIn)
PASSWORD_GRANT_FORM = "application/x-www-form-urlencoded"
# What OAuth2's password grant may send besides the credentials (RFC 6749 §4.3.2, §2.3.1);
# a sign-in has no scopes or client authentication, so those are read and ignored.
PASSWORD_GRANT_IGNORED = frozenset({"scope", "client_id", "client_secret"})
GRANT_TO_LOGIN = {"username": "email", "password": "password"}
PASSWORD_GRANT_FIELDS = frozenset({"grant_type", *GRANT_TO_LOGIN, *PASSWORD_GRANT_IGNORED})
PASSWORD_GRANT_SCHEMA = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["password"]},
        "username": {"type": "string", "format": "email", "description": "The account's email"},
        "password": {"type": "string", "format": "password"},
        "scope": {"type": "string", "description": "Ignored"},
        "client_id": {"type": "string", "description": "Ignored"},
        "client_secret": {"type": "string", "description": "Ignored"},
    },
}


def _login_request_body() -> dict[str, Any]:
    extra = json_body_schema(LOGIN_BODY)
    extra["requestBody"]["content"][PASSWORD_GRANT_FORM] = {"schema": PASSWORD_GRANT_SCHEMA}
    return extra


def _refused(field: str, kind: str, message: str, value: Any = None) -> RequestValidationError:
    where = ("body",) if field == "body" else ("body", field)
    return RequestValidationError([{"type": kind, "loc": where, "msg": message, "input": value}])


def password_grant(raw: bytes) -> LoginIn:
    """The credentials of an OAuth2 password grant sent as a form (RFC 6749 §4.3.2):
    `username` (the email), `password`, and `grant_type`, which must be `password` when sent."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestValidationError(
            [{"type": "string_unicode", "loc": ("body",), "msg": "The form is not UTF-8"}]
        ) from None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=len(PASSWORD_GRANT_FIELDS))
    except ValueError:
        raise _refused("body", "too_long", "More fields than a password grant has") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise _refused(name, "value_error", "Sent more than once", value)
        fields[name] = value
    unknown = sorted(set(fields) - PASSWORD_GRANT_FIELDS)
    if unknown:
        raise _refused(unknown[0], "extra_forbidden", "Extra inputs are not permitted")
    if fields.get("grant_type", "password") != "password":
        raise _refused(
            "grant_type", "literal_error", "Input should be 'password'", fields["grant_type"]
        )
    try:
        return LoginIn.model_validate(
            {ours: fields[theirs] for theirs, ours in GRANT_TO_LOGIN.items() if theirs in fields}
        )
    except ValidationError as exc:
        named = {ours: theirs for theirs, ours in GRANT_TO_LOGIN.items()}
        raise RequestValidationError(
            [
                {**e, "loc": ("body", *(named.get(str(p), p) for p in e["loc"]))}
                for e in exc.errors(include_url=False)
            ]
        ) from None


async def login_credentials(request: Request) -> LoginIn:
    """A sign-in's email and password: a JSON body, or the form of OAuth2's password grant that
    `/docs`' Authorize (and any OAuth2 client) sends. The body layer (`http.body`) has refused
    every other content type before this runs."""
    raw = await request.body()
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == PASSWORD_GRANT_FORM:
        request.state.password_grant = True
        return password_grant(raw)
    return parse_json_body(LOGIN_BODY, raw)


def mfa_required_out(pending: mfa.MfaPending) -> MfaRequiredOut:
    return MfaRequiredOut(
        mfa_token=pending.token,
        expires_at=pending.expires_at,
        enrolment_required=pending.enrolment_required,
        required_by=pending.required_by,
    )


@router.post(
    "/auth/login",
    name="auth.login",
    response_model=TokensOut | MfaRequiredOut,
    tags=["auth"],
    openapi_extra=_login_request_body(),
)
def login(
    body: Annotated[LoginIn, Depends(login_credentials)], ctx: CtxDep, request: Request
) -> Response:
    """Sign in with an email and password: a JSON body `{"email", "password"}`, or an OAuth2
    password grant form (`username`, `password`, `grant_type=password`). The answer carries
    OAuth2's token response fields (`access_token`, `token_type`, `expires_in`,
    `refresh_token`) with ours. Someone with a second factor gets `mfa_required` and an
    `mfa_token` instead, to finish with `POST /auth/mfa`."""
    state = app_state(request)
    try:
        issued = service.login(
            ctx,
            passwords=state.passwords,
            tokens=state.tokens,
            email=body.email,
            password=body.password,
        )
    except service.LoginRefused:
        ctx.session.rollback()
        ctx.idempotency_record = None
        service.record_failed_login(ctx, email=body.email)
        ctx.keep()
        # An OAuth2 client reads `error` (RFC 6749 §5.2); the status stays ours.
        grant = (
            {"error": "invalid_grant"} if getattr(request.state, "password_grant", False) else None
        )
        raise Unauthenticated(
            "Wrong email or password", code="invalid_credentials", extra=grant
        ) from None
    if isinstance(issued, mfa.MfaPending):
        response = ctx.done(mfa_required_out(issued))
    else:
        response = ctx.done(tokens_out(ctx, issued))
    response.headers["Cache-Control"] = "no-store"  # a token response is never cached (§5.1)
    return response


@router.post("/auth/mfa", name="auth.mfa", response_model=MfaTokensOut, tags=["auth"])
def sign_in_mfa(body: MfaSignInIn, ctx: CtxDep, request: Request) -> Response:
    """The second step of a sign-in: the `mfa_token` of `POST /auth/login` and a code of the
    authenticator app (or an unused backup code). Wrong codes are throttled per person as
    wrong passwords are (429 with `Retry-After`)."""
    try:
        issued, codes = service.complete_mfa_sign_in(
            ctx, tokens=app_state(request).tokens, mfa_token=body.mfa_token, code=body.code
        )
    except mfa.MfaRefused as refused:
        ctx.session.rollback()
        ctx.idempotency_record = None
        failures = mfa.record_failure(ctx, user_id=refused.user_id)
        audit.record(
            ctx,
            None,
            org_id=None,
            target_type="user",
            target_id=refused.user_id,
            actor=("user", refused.user_id),
            result="failure",
            summary={"reason": "bad_mfa_code", "failures": failures},
        )
        ctx.keep()
        raise Unauthenticated("That code is not right", code="invalid_mfa_code") from None
    out = tokens_out(ctx, issued)
    response = ctx.done(MfaTokensOut(**out.model_dump(), backup_codes=codes))
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post(
    "/auth/mfa/enrolment",
    name="auth.mfa_enrolment_started",
    response_model=MfaEnrolmentOut,
    tags=["auth"],
)
def sign_in_enrolment(body: MfaTokenIn, ctx: CtxDep) -> Response:
    """For a sign-in held because an org requires MFA (`enrolment_required`): a TOTP seed to
    enrol; its first code, sent to `POST /auth/mfa` with the same token, finishes both."""
    found = mfa.enrol_with_token(ctx, token=body.mfa_token)
    audit.record(
        ctx,
        None,
        org_id=None,
        target_type="user",
        target_id=found.user_id,
        actor=("user", found.user_id),
    )
    response = ctx.done(_enrolment_out(found.enrolment))
    response.headers["Cache-Control"] = "no-store"
    return response


def _enrolment_out(enrolment: mfa.Enrolment) -> MfaEnrolmentOut:
    return MfaEnrolmentOut(
        secret=enrolment.secret,
        provisioning_uri=enrolment.provisioning_uri,
        qr_svg=enrolment.qr_svg,
    )


@router.post("/auth/refresh", name="auth.refresh", response_model=TokensOut, tags=["auth"])
def refresh(body: RefreshIn, ctx: CtxDep, request: Request) -> Response:
    try:
        issued = service.refresh(
            ctx, tokens=app_state(request).tokens, refresh_token=body.refresh_token
        )
    except Unauthenticated:
        if ctx.state.get("session_idle") is not None:
            ctx.keep()  # the idle session stays ended
            raise
        reused = ctx.state.get("refresh_reuse")
        if reused is not None:
            # Keep the family's revocation and record it, even though the caller gets 401.
            audit.record(
                ctx,
                None,
                org_id=None,
                target_type="session",
                target_id=reused.id,
                actor=("user", reused.user_id),
                result="failure",
                summary={"reason": "refresh_token_reuse"},
            )
            ctx.keep()
        raise
    return ctx.done(tokens_out(ctx, issued))


@router.post("/auth/logout", name="auth.logout", status_code=204, tags=["auth"])
def logout(ctx: CtxDep, principal: PrincipalDep) -> Response:
    service.logout(ctx, principal)
    return ctx.done(None, status=204)


@router.get("/me", response_model=MeOut, tags=["me"])
def me(ctx: CtxDep, principal: PrincipalDep) -> MeOut:
    user = repository.user_by_id(ctx.session, principal.user_id)
    assert user is not None
    orgs = tenancy_repository.memberships_of_user(ctx.session, user_id=user.id)
    teams = tenancy_repository.team_memberships_of_user(ctx.session, user_id=user.id)
    if principal.kind == "api_key":
        orgs = [(m, o) for m, o in orgs if o.id == principal.key_org_id]
        teams = [
            (m, t)
            for m, t in teams
            if t.org_id == principal.key_org_id and principal.key_team_id in (None, t.id)
        ]
    return MeOut(
        user=UserOut.model_validate(user),
        principal_type=principal.kind,
        api_key_id=principal.api_key_id,
        organizations=[
            MembershipOut(org_id=o.id, org_slug=o.slug, org_name=o.name, role=m.role)
            for m, o in orgs
        ],
        teams=[
            TeamMembershipOut(team_id=t.id, org_id=t.org_id, team_name=t.name, role=m.role)
            for m, t in teams
        ],
    )


@router.patch("/me", name="user.updated", response_model=UserOut, tags=["me"])
def update_me(body: MeUpdateIn, ctx: CtxDep, principal: PrincipalDep) -> Response:
    user = service.update_profile(
        ctx, principal, body.model_dump(exclude_unset=True, exclude_none=True)
    )
    return ctx.done(UserOut.model_validate(user))


@router.post("/me/password", name="user.password_changed", status_code=204, tags=["me"])
def change_password(
    body: PasswordChangeIn, ctx: CtxDep, principal: PrincipalDep, request: Request
) -> Response:
    service.change_password(
        ctx,
        principal,
        passwords=app_state(request).passwords,
        current_password=body.current_password,
        new_password=body.new_password,
    )
    return ctx.done(None, status=204)


@router.get("/me/mfa", response_model=MfaStatusOut, tags=["me"])
def mfa_status(ctx: CtxDep, principal: PrincipalDep) -> MfaStatusOut:
    return MfaStatusOut.model_validate(mfa.status(ctx.session, principal))


@router.post("/me/mfa", name="mfa.enrolment_started", response_model=MfaEnrolmentOut, tags=["me"])
def start_mfa(ctx: CtxDep, principal: PrincipalDep) -> Response:
    """A new TOTP seed (its URI and QR code); two-factor sign-in starts once
    `POST /me/mfa/confirm` gets its first code."""
    enrolment = mfa.begin_enrolment(ctx, principal)
    _audit_self(ctx, principal)
    response = ctx.done(_enrolment_out(enrolment))
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/me/mfa/confirm", name="mfa.enabled", response_model=BackupCodesOut, tags=["me"])
def confirm_mfa(body: MfaCodeIn, ctx: CtxDep, principal: PrincipalDep) -> Response:
    """Turns two-factor sign-in on with the first code; answers the ten backup codes, once."""
    codes = mfa.confirm_enrolment(ctx, principal, code=body.code)
    _audit_self(ctx, principal)
    response = ctx.done(BackupCodesOut(backup_codes=codes))
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/me/mfa/disable", name="mfa.disabled", status_code=204, tags=["me"])
def disable_mfa(body: MfaCodeIn, ctx: CtxDep, principal: PrincipalDep) -> Response:
    """Turns two-factor sign-in off; a current code (or a backup code) proves it is you."""
    _with_code(ctx, principal, lambda: mfa.disable(ctx, principal, code=body.code))
    _audit_self(ctx, principal)
    return ctx.done(None, status=204)


@router.post(
    "/me/mfa/backup-codes",
    name="mfa.backup_codes_regenerated",
    response_model=BackupCodesOut,
    tags=["me"],
)
def regenerate_backup_codes(body: MfaCodeIn, ctx: CtxDep, principal: PrincipalDep) -> Response:
    """Ten new backup codes (the old ones stop working); a current code proves it is you."""
    codes = _with_code(
        ctx, principal, lambda: mfa.regenerate_backup_codes(ctx, principal, code=body.code)
    )
    _audit_self(ctx, principal)
    response = ctx.done(BackupCodesOut(backup_codes=codes))
    response.headers["Cache-Control"] = "no-store"
    return response


_R = TypeVar("_R")


def _with_code(ctx: Ctx, principal: Principal, work: Callable[[], _R]) -> _R:
    """`work`, with a wrong code counted toward the person's lockout (and refused, 422)."""
    try:
        return work()
    except mfa.MfaRefused as refused:
        ctx.session.rollback()
        ctx.idempotency_record = None
        failures = mfa.record_failure(ctx, user_id=refused.user_id)
        audit.record(
            ctx,
            principal,
            org_id=None,
            target_type="user",
            target_id=principal.user_id,
            result="failure",
            summary={"reason": "bad_mfa_code", "failures": failures},
        )
        ctx.keep()
        raise Unprocessable("That code is not right", code="invalid_mfa_code") from None


def _audit_self(ctx: Ctx, principal: Principal) -> None:
    audit.record(ctx, principal, org_id=None, target_type="user", target_id=principal.user_id)


@router.get("/me/sessions", response_model=PageOut[SessionOut], tags=["me"])
def list_sessions(ctx: CtxDep, principal: PrincipalDep, page: PageDep) -> PageOut[SessionOut]:
    found = service.list_sessions(ctx.session, principal, page)
    items = [
        SessionOut.model_validate(s).model_copy(update={"current": s.id == principal.session_id})
        for s in found.items
    ]
    return PageOut(items=items, next_cursor=found.next_cursor)


@router.delete("/me/sessions/{session_id}", name="session.revoked", status_code=204, tags=["me"])
def revoke_session(session_id: str, ctx: CtxDep, principal: PrincipalDep) -> Response:
    service.revoke_session(ctx, principal, session_id)
    return ctx.done(None, status=204)


@router.post(
    "/orgs/{org}/api-keys",
    name="api_key.created",
    status_code=201,
    response_model=ApiKeyCreatedOut,
    tags=["api keys"],
)
def create_api_key(
    body: ApiKeyCreateIn, scope: Annotated[OrgScope, Depends(org_scope(Permission.ORG_READ))]
) -> Response:
    ctx = scope.ctx
    issued = service.create_api_key(
        ctx,
        scope.principal,
        org_id=scope.org.id,
        name=body.name,
        team_id=_team_in(scope, body.team_id),
        permissions=body.permissions,
        expires_at=body.expires_at,
    )
    out = ApiKeyCreatedOut.model_validate(
        {**ApiKeyOut.model_validate(issued.key).model_dump(), "secret": issued.secret}
    )
    return ctx.done(out, status=201)


def _team_in(scope: OrgScope, team_id: str | None) -> str | None:
    from tenantry.kit.errors import NotFound

    if team_id is None:
        return None
    if (
        tenancy_repository.team_in_org(scope.ctx.session, org_id=scope.org.id, team_id=team_id)
        is None
    ):
        raise NotFound("Team not found")
    return team_id


@router.get("/orgs/{org}/api-keys", response_model=PageOut[ApiKeyOut], tags=["api keys"])
def list_api_keys(
    scope: Annotated[OrgScope, Depends(org_scope(Permission.APIKEY_READ))], page: PageDep
) -> PageOut[ApiKeyOut]:
    found = service.list_api_keys(
        scope.ctx.session, scope.principal, org_id=scope.org.id, page=page
    )
    return PageOut(
        items=[ApiKeyOut.model_validate(k) for k in found.items], next_cursor=found.next_cursor
    )


@router.delete(
    "/api-keys/{key_id}", name="api_key.revoked", response_model=ApiKeyOut, tags=["api keys"]
)
def revoke_api_key(key_id: str, ctx: CtxDep, principal: PrincipalDep) -> Response:
    key = service.revoke_api_key(ctx, principal, key_id)
    return ctx.done(ApiKeyOut.model_validate(key))
