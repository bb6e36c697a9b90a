"""The person's own account: profile, password, signed-in sessions, and their personal data
(an export, and erasure of the account)."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from tenantry.http.state import app_state
from tenantry.identity import service as identity
from tenantry.identity.schemas import MeUpdateIn, PasswordChangeIn
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


def _page(
    request: Request,
    visit: Visit,
    *,
    forms: dict[str, FormState] | None = None,
    notice: str = "",
    problem: Problem | None = None,
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
