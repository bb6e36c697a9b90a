"""The invitation page, at the link `tenantry invite` and the API print: who invites you to
what, and accepting or declining it, signing in or up first when needed."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from tenantry.kit.errors import Gone, NotFound, Problem
from tenantry.tenancy import invitations
from tenantry.tenancy import repository as tenancy_repository
from tenantry.tenancy.models import Invitation
from tenantry.web.pages import page_router
from tenantry.web.templating import render
from tenantry.web.visit import MaybeVisitDep, Visit, VisitDep

router = page_router()


def _about(visit: Visit, invitation: Invitation) -> dict[str, Any]:
    session = visit.ctx.session
    org = tenancy_repository.unscoped_orgs_by_ids(session, [invitation.org_id])[invitation.org_id]
    team = (
        tenancy_repository.team_in_org(
            session, org_id=invitation.org_id, team_id=invitation.team_id
        )
        if invitation.team_id
        else None
    )
    return {"invitation": invitation, "org": org, "team": team}


def _page(
    request: Request, token: str, visit: Visit | None, status: int = 200, **context: Any
) -> Response:
    values = {
        "visit": visit,
        "token": token,
        "next": f"/invitations/{token}",
        "invitation": None,
        "problem": None,
        "declined": False,
        **context,
    }
    return render(request, "invitation.html", values, status=status)


@router.get("/invitations/{token}")
def invitation_page(request: Request, token: str, visit: MaybeVisitDep) -> Response:
    if visit is None:
        return _page(request, token, None)
    try:
        found = invitations.invitation_to_answer(visit.ctx, visit.principal, token)
    except (NotFound, Gone) as problem:  # as the API answers accepting it: 404 or 410
        return _page(request, token, visit, problem.status, problem=problem)
    return _page(request, token, visit, **_about(visit, found))


@router.post("/invitations/{token}/accept", name="invitation.accepted")
def accept(request: Request, token: str, visit: VisitDep) -> Response:
    try:
        accepted = invitations.accept_invitation(visit.ctx, visit.principal, token)
    except (NotFound, Gone, Problem) as problem:
        if problem.status == 403:
            raise
        visit.ctx.session.rollback()
        return _page(request, token, visit, problem.status, problem=problem)
    org_id = accepted.org_id
    visit.ctx.done(None)
    org = tenancy_repository.unscoped_orgs_by_ids(visit.ctx.session, [org_id])[org_id]
    return RedirectResponse(f"/orgs/{org.slug}", status_code=303)


@router.post("/invitations/{token}/decline", name="invitation.declined")
def decline(request: Request, token: str, visit: VisitDep) -> Response:
    try:
        declined = invitations.decline_invitation(visit.ctx, visit.principal, token)
    except Problem as problem:
        if problem.status == 403:
            raise
        visit.ctx.session.rollback()
        return _page(request, token, visit, problem.status, problem=problem)
    about = _about(visit, declined)
    visit.ctx.done(None)
    return _page(request, token, visit, declined=True, **about)
