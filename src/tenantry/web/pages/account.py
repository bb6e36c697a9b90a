"""The person's own account: profile, password, signed-in sessions, and their personal data
(an export, and erasure of the account)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import Request
from starlette.responses import Response

from tenantry.audit import service as audit
from tenantry.http.state import app_state
from tenantry.identity import mfa
from tenantry.identity import service as identity
from tenantry.identity.schemas import MeUpdateIn, MfaCodeIn, PasswordChangeIn
from tenantry.kit.clock import as_utc
from tenantry.kit.errors import Forbidden, NotFound, Problem
from tenantry.privacy import service as privacy
from tenantry.privacy.schemas import EraseIn, PersonalDataOut
from tenantry.web.forms import FORM, FormRefused, FormState, parse, refused
from tenantry.web.pages import changed, every, moved, page_router
from tenantry.web.templating import render
from tenantry.web.visit import Visit, VisitDep, clear_session_cookie

router = page_router()
URL = "/account"
T = TypeVar("T")


def _page(
    request: Request,
    visit: Visit,
    *,
    forms: dict[str, FormState] | None = None,
    notice: str = "",
    problem: Problem | None = None,
    backup_codes: list[str] | None = None,
) -> Response:
    forms = forms or {}
    now = visit.ctx.clock.now()
    sessions = every(lambda page: identity.list_sessions(visit.ctx.session, visit.principal, page))
    status = (
        problem.status if problem else next((f.status for f in forms.values() if f.failed), 200)
    )
    context = {
        "visit": visit,
        "sessions": [s for s in sessions if as_utc(s.expires_at) > now],
        "current_session": visit.principal.session_id,
        "profile": forms.get("profile", FormState()),
        "password": forms.get("password", FormState()),
        "erase": forms.get("erase", FormState()),
        "mfa": mfa.status(visit.ctx.session, visit.principal),
        "enrolment": mfa.pending_enrolment(visit.ctx, visit.principal),
        "mfa_confirm": forms.get("mfa_confirm", FormState()),
        "mfa_codes": forms.get("mfa_codes", FormState()),
        "mfa_off": forms.get("mfa_off", FormState()),
        "backup_codes": backup_codes or [],
        "notice": notice,
        "problem": problem,
    }
    return render(request, "account.html", context, status=status, block="page")


@router.get("/account")
def account_page(request: Request, visit: VisitDep) -> Response:
    return _page(request, visit)


@router.post("/account/profile", name="user.updated")
def update_profile(request: Request, visit: VisitDep) -> Response:
    try:
        body = parse(MeUpdateIn, visit.form, optional_blank=frozenset({"username"}))
        identity.update_profile(
            visit.ctx, visit.principal, body.model_dump(exclude_unset=True, exclude_none=True)
        )
    except FormRefused as refusal:
        return _page(request, visit, forms={"profile": refusal.state})
    except Problem as problem:
        visit.ctx.session.rollback()
        return _page(request, visit, forms={"profile": refused(problem, visit.form).state})
    visit.ctx.done(None)
    return changed(request, URL, lambda: _page(request, visit, notice="Profile saved."))


@router.post("/account/password", name="user.password_changed")
def change_password(request: Request, visit: VisitDep) -> Response:
    """As the API's: every other session of the person ends; this one stays signed in."""
    try:
        body = parse(PasswordChangeIn, visit.form)
        identity.change_password(
            visit.ctx,
            visit.principal,
            passwords=app_state(request).passwords,
            current_password=body.current_password,
            new_password=body.new_password,
        )
    except FormRefused as refusal:
        return _page(request, visit, forms={"password": refusal.state})
    except Problem as problem:
        visit.ctx.session.rollback()
        fields = {"invalid_credentials": "current_password", "weak_password": "new_password"}
        state = refused(problem, {}, fields).state
        return _page(request, visit, forms={"password": state})
    visit.ctx.done(None, status=204)
    return changed(
        request,
        URL,
        lambda: _page(request, visit, notice="Password changed; your other sessions ended."),
    )


# ---- two-factor sign-in ----


@router.post("/account/mfa", name="mfa.enrolment_started")
def start_mfa(request: Request, visit: VisitDep) -> Response:
    """A new seed: the page shows its QR code and asks for the first code."""
    try:
        mfa.begin_enrolment(visit.ctx, visit.principal)
    except Problem as problem:
        visit.ctx.session.rollback()
        return _page(request, visit, problem=problem)
    _audit_self(visit)
    visit.ctx.done(None)
    return _page(request, visit)


@router.post("/account/mfa/confirm", name="mfa.enabled")
def confirm_mfa(request: Request, visit: VisitDep) -> Response:
    """The first code turns two-factor sign-in on; the backup codes are shown this once."""
    try:
        body = parse(MfaCodeIn, visit.form)
        codes = mfa.confirm_enrolment(visit.ctx, visit.principal, code=body.code)
    except FormRefused as refusal:
        return _page(request, visit, forms={"mfa_confirm": refusal.state})
    except Problem as problem:
        visit.ctx.session.rollback()
        state = refused(problem, {}, {"invalid_mfa_code": "code"}).state
        return _page(request, visit, forms={"mfa_confirm": state})
    _audit_self(visit)
    visit.ctx.done(None)
    return _page(request, visit, notice="Two-factor sign-in is on.", backup_codes=codes)


def _with_code(request: Request, visit: Visit, form: str, work: Callable[[str], T]) -> T | Response:
    """`work` with the form's code; a wrong one is counted toward the lockout (as the API's)."""
    try:
        body = parse(MfaCodeIn, visit.form)
        return work(body.code)
    except FormRefused as refusal:
        return _page(request, visit, forms={form: refusal.state})
    except mfa.MfaRefused as wrong:
        visit.ctx.session.rollback()
        failures = mfa.record_failure(visit.ctx, user_id=wrong.user_id)
        audit.record(
            visit.ctx,
            visit.principal,
            org_id=None,
            target_type="user",
            target_id=visit.user.id,
            result="failure",
            summary={"reason": "bad_mfa_code", "failures": failures},
        )
        visit.ctx.keep()
        state = FormState({}, {"code": "That code is not right"}, 422)
        return _page(request, visit, forms={form: state})
    except Problem as problem:
        visit.ctx.session.rollback()
        return _page(request, visit, forms={form: refused(problem, {}, {}).state})


@router.post("/account/mfa/disable", name="mfa.disabled")
def disable_mfa(request: Request, visit: VisitDep) -> Response:
    result = _with_code(
        request, visit, "mfa_off", lambda code: mfa.disable(visit.ctx, visit.principal, code=code)
    )
    if isinstance(result, Response):
        return result
    _audit_self(visit)
    visit.ctx.done(None, status=204)
    return changed(request, URL, lambda: _page(request, visit, notice="Two-factor sign-in is off."))


@router.post("/account/mfa/backup-codes", name="mfa.backup_codes_regenerated")
def regenerate_backup_codes(request: Request, visit: VisitDep) -> Response:
    result = _with_code(
        request,
        visit,
        "mfa_codes",
        lambda code: mfa.regenerate_backup_codes(visit.ctx, visit.principal, code=code),
    )
    if isinstance(result, Response):
        return result
    _audit_self(visit)
    visit.ctx.done(None)
    return _page(request, visit, notice="New backup codes made.", backup_codes=result)


def _audit_self(visit: Visit) -> None:
    audit.record(
        visit.ctx, visit.principal, org_id=None, target_type="user", target_id=visit.user.id
    )


@router.post("/account/sessions/{session_id}/revoke", name="session.revoked")
def revoke_session(request: Request, session_id: str, visit: VisitDep) -> Response:
    try:
        identity.revoke_session(visit.ctx, visit.principal, session_id)
    except NotFound:
        raise
    visit.ctx.done(None, status=204)
    if session_id == visit.principal.session_id:  # this browser's own: signed out
        return clear_session_cookie(request, moved(request, "/sign-in"))
    return changed(request, URL, lambda: _page(request, visit, notice="Session ended."))


@router.get("/account/export")
def export(visit: VisitDep) -> Response:
    """Everything Tenantry holds about the person, as the API's export, downloaded."""
    data = privacy.export_own(visit.ctx.session, visit.principal, now=visit.ctx.clock.now())
    body = PersonalDataOut.of(data).model_dump_json(indent=2)
    return Response(
        body,
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="tenantry-personal-data.json"'},
    )


@router.post("/account/erase", name="user.erased")
def erase(request: Request, visit: VisitDep) -> Response:
    try:
        body = parse(EraseIn, visit.form)
        privacy.erase_account(
            visit.ctx, visit.principal, user_id=visit.user.id, confirm=body.confirm
        )
    except FormRefused as refusal:
        return _page(request, visit, forms={"erase": refusal.state})
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        visit.ctx.session.rollback()
        fields = {"confirmation_mismatch": "confirm", "last_owner": FORM}
        return _page(request, visit, forms={"erase": refused(problem, visit.form, fields).state})
    visit.ctx.done(None, status=204)
    return clear_session_cookie(request, moved(request, "/erased"))


@router.get("/erased")
def erased(request: Request) -> Response:
    return render(request, "erased.html", {})
