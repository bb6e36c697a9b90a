"""Signing in, signing up and signing out.

Each changing route's `name` is the audit action the API's route of the same change records, so
the trail reads the same whichever face was used.
"""

from __future__ import annotations

import logging

from fastapi import Request
from pydantic import Field
from starlette.responses import RedirectResponse, Response

from tenantry.audit import service as audit
from tenantry.http.state import app_state
from tenantry.identity import mfa
from tenantry.identity import service as identity
from tenantry.identity.schemas import LoginIn, MfaCode, SignupIn
from tenantry.kit.errors import Gone, NotFound, Problem
from tenantry.kit.mail import Mailer, MailNotSent
from tenantry.kit.schemas import Email, Input, Password
from tenantry.web.forms import FORM, FormRefused, FormState, parse, refused, text_fields
from tenantry.web.pages import page_router
from tenantry.web.templating import render
from tenantry.web.visit import (
    AnonymousDep,
    VisitDep,
    clear_session_cookie,
    keep_anonymous_csrf,
    set_session_cookie,
    web_state,
)

router = page_router()
log = logging.getLogger("tenantry.web")


class ForgotIn(Input):
    email: Email


class ResetIn(Input):
    new_password: Password


def safe_next(target: str | None, default: str = "/") -> str:
    """Where to go after signing in: a path on this site only (no `//host`, no scheme)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    return target


def _signed_in_response(
    request: Request, issued: identity.IssuedTokens, target: str, *, ttl: int
) -> Response:
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(
        request, response, user_id=issued.user.id, session_id=issued.session_id, max_age=ttl
    )
    return response


def _form_page(
    request: Request,
    template: str,
    anon_csrf: str,
    state: FormState,
    next_path: str,
    notice: str = "",
) -> Response:
    smtp = bool(app_state(request).settings.smtp_host)
    context = {
        "form": state,
        "csrf": anon_csrf,
        "next": next_path,
        "can_reset_password": smtp,
        "notice": notice,
    }
    response = render(request, template, context, status=state.status)
    return keep_anonymous_csrf(request, response, anon_csrf)


@router.get("/sign-in")
def sign_in_page(
    request: Request, anon: AnonymousDep, next: str = "/", reset: str = ""
) -> Response:
    notice = "Your password is changed; sign in with it." if reset else ""
    return _form_page(
        request, "auth/sign_in.html", anon.csrf, FormState(), safe_next(next), notice=notice
    )


@router.post("/sign-in", name="auth.login")
def sign_in(request: Request, anon: AnonymousDep, next: str = "/") -> Response:
    state = app_state(request)
    ctx = anon.ctx
    target = safe_next(next)
    try:
        body = parse(LoginIn, anon.form)
        issued = identity.login(
            ctx,
            passwords=state.passwords,
            tokens=state.tokens,
            email=body.email,
            password=body.password,
        )
    except FormRefused as refusal:
        return _form_page(request, "auth/sign_in.html", anon.csrf, refusal.state, target)
    except identity.LoginRefused:
        # As the API's sign-in: the failure is counted (and audited) though nothing else is kept.
        ctx.session.rollback()
        identity.record_failed_login(ctx, email=body.email)
        ctx.keep()
        failed = FormState({"email": body.email}, {FORM: "Wrong email or password"}, 401)
        return _form_page(request, "auth/sign_in.html", anon.csrf, failed, target)
    except Problem as problem:  # throttled: too many failures
        shown = refused(problem, anon.form).state
        return _form_page(request, "auth/sign_in.html", anon.csrf, shown, target)
    if isinstance(issued, mfa.MfaPending):
        enrolment = (
            mfa.enrol_with_token(ctx, token=issued.token) if issued.enrolment_required else None
        )
        ctx.done(None)
        return _mfa_page(request, anon.csrf, issued.token, target, enrolment=enrolment)
    ctx.done(None)
    return _signed_in_response(request, issued, target, ttl=ctx.settings.refresh_token_ttl_seconds)


class MfaStepIn(Input):
    mfa_token: str = Field(min_length=1, max_length=200)
    code: MfaCode


def _mfa_page(
    request: Request,
    anon_csrf: str,
    token: str,
    next_path: str,
    *,
    enrolment: mfa.TokenEnrolment | None = None,
    state: FormState | None = None,
) -> Response:
    """The second step of a sign-in: the MFA token travels in the form (it is good for five
    minutes and once), with the QR code to enrol first when an org's policy requires it."""
    state = state or FormState()
    context = {
        "form": state,
        "csrf": anon_csrf,
        "next": next_path,
        "mfa_token": token,
        "enrolment": enrolment.enrolment if enrolment else None,
    }
    response = render(request, "auth/mfa.html", context, status=state.status)
    return keep_anonymous_csrf(request, response, anon_csrf)


@router.post("/sign-in/mfa", name="auth.mfa")
def sign_in_mfa(request: Request, anon: AnonymousDep, next: str = "/") -> Response:
    state = app_state(request)
    ctx = anon.ctx
    target = safe_next(next)
    token = text_fields(anon.form).get("mfa_token", "")
    try:
        body = parse(MfaStepIn, anon.form)
        issued, codes = identity.complete_mfa_sign_in(
            ctx, tokens=state.tokens, mfa_token=body.mfa_token, code=body.code
        )
    except FormRefused as refusal:
        return _mfa_page(request, anon.csrf, token, target, state=refusal.state)
    except mfa.MfaRefused as wrong:
        ctx.session.rollback()
        failures = mfa.record_failure(ctx, user_id=wrong.user_id)
        audit.record(
            ctx,
            None,
            org_id=None,
            target_type="user",
            target_id=wrong.user_id,
            actor=("user", wrong.user_id),
            result="failure",
            summary={"reason": "bad_mfa_code", "failures": failures},
        )
        ctx.keep()
        failed = FormState({}, {"code": "That code is not right"}, 401)
        return _mfa_page(request, anon.csrf, token, target, state=failed)
    except Problem as problem:  # throttled, or the token expired
        ctx.session.rollback()
        if problem.code == "invalid_mfa_token":
            shown = FormState({"email": ""}, {FORM: problem.detail}, problem.status)
            return _form_page(request, "auth/sign_in.html", anon.csrf, shown, target)
        shown = refused(problem, {}, {"mfa_throttled": FORM}).state
        return _mfa_page(request, anon.csrf, token, target, state=shown)
    ctx.done(None)
    ttl = ctx.settings.refresh_token_ttl_seconds
    if codes:  # an enrolment this sign-in finished: its backup codes, shown once
        response = render(request, "auth/backup_codes.html", {"codes": codes, "next": target})
        set_session_cookie(
            request, response, user_id=issued.user.id, session_id=issued.session_id, max_age=ttl
        )
        return response
    return _signed_in_response(request, issued, target, ttl=ttl)


@router.get("/sign-up")
def sign_up_page(
    request: Request, anon: AnonymousDep, next: str = "/", email: str = ""
) -> Response:
    state = FormState(values={"email": email})
    return _form_page(request, "auth/sign_up.html", anon.csrf, state, safe_next(next))


@router.post("/sign-up", name="auth.signup")
def sign_up(request: Request, anon: AnonymousDep, next: str = "/") -> Response:
    state = app_state(request)
    ctx = anon.ctx
    target = safe_next(next)
    try:
        body = parse(SignupIn, anon.form, optional_blank=frozenset({"username"}))
        user = identity.create_user(
            ctx,
            passwords=state.passwords,
            email=body.email,
            password=body.password,
            username=body.username,
            full_name=body.full_name,
        )
        issued = identity.start_session(ctx, tokens=state.tokens, user=user)
    except FormRefused as refusal:
        return _form_page(request, "auth/sign_up.html", anon.csrf, refusal.state, target)
    except Problem as problem:
        fields = {"email_taken": "email", "weak_password": "password"}
        shown = refused(problem, anon.form, fields).state
        return _form_page(request, "auth/sign_up.html", anon.csrf, shown, target)
    audit.record(
        ctx, None, org_id=None, target_type="user", target_id=user.id, actor=("user", user.id)
    )
    ctx.done(None, status=201)
    return _signed_in_response(request, issued, target, ttl=ctx.settings.refresh_token_ttl_seconds)


@router.post("/sign-out", name="auth.logout")
def sign_out(request: Request, visit: VisitDep) -> Response:
    identity.logout(visit.ctx, visit.principal)
    visit.ctx.done(None)
    response = RedirectResponse("/sign-in", status_code=303)
    return clear_session_cookie(request, response)


# ---- a forgotten password (only when SMTP is configured) ----

RESET_MAIL = """Someone asked to reset the password of your Tenantry account ({email}).

To choose a new password, open this link within {minutes} minutes:

{link}

If it was not you, ignore this message: your password stays as it is.
"""


def _mailer(request: Request) -> Mailer:
    mailer = Mailer.from_settings(app_state(request).settings)
    if mailer is None:
        raise NotFound("Password reset by email is not configured on this server")
    return mailer


@router.get("/forgot-password")
def forgot_password_page(request: Request, anon: AnonymousDep) -> Response:
    _mailer(request)
    return _form_page(request, "auth/forgot.html", anon.csrf, FormState(), "/")


@router.post("/forgot-password")
def forgot_password(request: Request, anon: AnonymousDep) -> Response:
    """Mails a reset link when the address has an account; answers the same either way, so
    the form tells nobody which addresses have accounts."""
    mailer = _mailer(request)
    ctx = anon.ctx
    try:
        body = parse(ForgotIn, anon.form)
    except FormRefused as refusal:
        return _form_page(request, "auth/forgot.html", anon.csrf, refusal.state, "/")
    address = body.email.strip().lower()
    if web_state(request).may_mail_reset(address, ctx.clock.now()):
        found = identity.password_reset_token(
            ctx, email=address, secret=ctx.settings.server_secret()
        )
        if found is not None:
            user, token = found
            link = f"{ctx.origin.base_url.rstrip('/')}/reset-password/{token}"
            text = RESET_MAIL.format(
                email=user.email,
                minutes=ctx.settings.password_reset_ttl_seconds // 60,
                link=link,
            )
            try:
                mailer.send(to=user.email, subject="Reset your Tenantry password", text=text)
            except MailNotSent as exc:
                log.warning("password reset mail not sent: %s", exc)
    sent = FormState({"email": body.email})
    response = render(request, "auth/forgot.html", {"form": sent, "csrf": anon.csrf, "sent": True})
    return keep_anonymous_csrf(request, response, anon.csrf)


@router.get("/reset-password/{token}")
def reset_password_page(request: Request, token: str, anon: AnonymousDep) -> Response:
    _mailer(request)
    identity.user_of_reset_token(anon.ctx, token, secret=anon.ctx.settings.server_secret())
    context = {"form": FormState(), "csrf": anon.csrf, "token": token}
    return keep_anonymous_csrf(request, render(request, "auth/reset.html", context), anon.csrf)


@router.post("/reset-password/{token}", name="user.password_reset")
def reset_password(request: Request, token: str, anon: AnonymousDep) -> Response:
    _mailer(request)
    ctx = anon.ctx
    try:
        body = parse(ResetIn, anon.form)
        identity.reset_password(
            ctx,
            passwords=app_state(request).passwords,
            token=token,
            new_password=body.new_password,
            secret=ctx.settings.server_secret(),
        )
    except FormRefused as refusal:
        context = {"form": refusal.state, "csrf": anon.csrf, "token": token}
        return render(request, "auth/reset.html", context, status=422)
    except Gone:
        raise
    except Problem as problem:
        shown = refused(problem, {}, {"weak_password": "new_password"}).state
        context = {"form": shown, "csrf": anon.csrf, "token": token}
        return render(request, "auth/reset.html", context, status=problem.status)
    ctx.done(None)
    return RedirectResponse("/sign-in?reset=1", status_code=303)
