"""An organization's members: their roles, removing them, inviting people (one address or a
pasted list), the invitations still pending, and transferring ownership."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response

from tenantry.api.tenancy import invitation_url
from tenantry.authz.catalog import OrgRole, Permission, TeamRole
from tenantry.identity import repository as identity_repository
from tenantry.kit.errors import Forbidden, NotFound, Problem
from tenantry.kit.schemas import Email
from tenantry.tenancy import invitations, memberships, orgs, teams
from tenantry.tenancy.schemas import TransferIn
from tenantry.web.forms import FORM, FormRefused, FormState, parse, refused, text_fields
from tenantry.web.pages import changed, every, page_router
from tenantry.web.templating import render
from tenantry.web.visit import Visit, org_page

router = page_router()

MembersRead = Annotated[Visit, Depends(org_page(Permission.MEMBER_READ))]
MembersUpdate = Annotated[Visit, Depends(org_page(Permission.MEMBER_UPDATE))]
OrgRead = Annotated[Visit, Depends(org_page(Permission.ORG_READ))]
OrgTransfer = Annotated[Visit, Depends(org_page(Permission.ORG_TRANSFER))]

ORG_ROLES = [(r.value, r.value.capitalize()) for r in OrgRole]
INVITE_ROLES = [
    *((r.value, f"{r.value.capitalize()} of the organization") for r in OrgRole),
    *((r.value, f"{r.value.capitalize()} of the team") for r in TeamRole),
]
# How many addresses one pasted list may hold.
MAX_INVITES = 100
_EMAIL = TypeAdapter(Email)


def _members(visit: Visit) -> list[dict[str, Any]]:
    org = visit.current_org
    rows = every(
        lambda page: memberships.list_org_members(visit.ctx.session, visit.principal, org, page)
    )
    users = identity_repository.users_by_ids(visit.ctx.session, [m.user_id for m in rows])
    return [{"membership": m, "user": users[m.user_id]} for m in rows if m.user_id in users]


def _pending(visit: Visit) -> list[Any] | None:
    if not visit.can(Permission.MEMBER_INVITE):
        return None
    org, now = visit.current_org, visit.ctx.clock.now()
    return every(
        lambda page: invitations.list_invitations(
            visit.ctx.session, visit.principal, org, status="pending", page=page, now=now
        )
    )


def _page(
    request: Request,
    visit: Visit,
    *,
    forms: dict[str, FormState] | None = None,
    notice: str = "",
    problem: Problem | None = None,
    links: list[dict[str, str]] | None = None,
) -> Response:
    org = visit.current_org
    forms = forms or {}
    status = (
        problem.status if problem else next((f.status for f in forms.values() if f.failed), 200)
    )
    all_teams = every(lambda page: teams.list_teams(visit.ctx.session, visit.principal, org, page))
    members = _members(visit)
    context = {
        "visit": visit,
        "org": org,
        "members": members,
        "others": [r for r in members if r["user"].id != visit.user.id],
        "candidates": [
            (r["user"].id, r["user"].email) for r in members if r["user"].id != visit.user.id
        ],
        "pending": _pending(visit),
        "team_names": {t.id: t.name for t in all_teams},
        "targets": [("", f"The organization ({org.name})")] + [(t.id, t.name) for t in all_teams],
        "roles": ORG_ROLES,
        "invite_roles": INVITE_ROLES,
        "invite": forms.get("invite", FormState()),
        "transfer": forms.get("transfer", FormState()),
        "notice": notice,
        "problem": problem,
        "links": links or [],
    }
    return render(request, "members.html", context, status=status, block="page")


def _url(visit: Visit) -> str:
    return f"/orgs/{visit.current_org.slug}/members"


def _refused(request: Request, visit: Visit, problem: Problem) -> Response:
    visit.ctx.session.rollback()
    return _page(request, visit, problem=problem)


@router.get("/orgs/{org}/members")
def members_page(request: Request, visit: MembersRead) -> Response:
    return _page(request, visit)


@router.post("/orgs/{org}/members/{user}", name="organization.member.updated")
def update_member(request: Request, user: str, visit: MembersUpdate) -> Response:
    try:
        memberships.update_org_member(
            visit.ctx,
            visit.principal,
            visit.current_org,
            user_ref=user,
            role_name=str(visit.form.get("role") or ""),
        )
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        return _refused(request, visit, problem)
    visit.ctx.done(None)
    return changed(request, _url(visit), lambda: _page(request, visit, notice="Role changed."))


@router.post("/orgs/{org}/members/{user}/remove", name="organization.member.removed")
def remove_member(request: Request, user: str, visit: OrgRead) -> Response:
    leaving = user == visit.user.id
    try:
        memberships.remove_org_member(visit.ctx, visit.principal, visit.current_org, user_ref=user)
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        return _refused(request, visit, problem)
    visit.ctx.done(None)
    if leaving:  # nothing of this org is theirs to see any more
        return changed(request, "/", lambda: Response(headers={"HX-Redirect": "/"}))
    return changed(request, _url(visit), lambda: _page(request, visit, notice="Member removed."))


def _addresses(raw: str) -> list[str]:
    """The addresses of a pasted list: separated by commas, semicolons, spaces or lines;
    `Name <address>` keeps the address; each once, in the order given."""
    found: list[str] = []
    for part in re.split(r"[,;\s]+", re.sub(r"[^<>,;\s]*<([^>]*)>", r"\1", raw)):
        if part and part.lower() not in (f.lower() for f in found):
            found.append(part)
    return found


@router.post("/orgs/{org}/invitations", name="invitation.created")
def invite(request: Request, visit: OrgRead) -> Response:
    """One invitation per address, all in one transaction: if any address is refused, none is
    sent and each refusal is shown."""
    ctx, org = visit.ctx, visit.current_org
    values = text_fields(visit.form)
    addresses = _addresses(values.get("emails", ""))
    team_id = values.get("team_id") or None
    role = values.get("role", "")
    errors: list[str] = []
    status = 422
    if not addresses:
        errors.append("Enter at least one email address")
    elif len(addresses) > MAX_INVITES:
        errors.append(f"At most {MAX_INVITES} addresses at a time")
    links: list[dict[str, str]] = []
    for address in addresses if not errors else []:
        try:
            email = _EMAIL.validate_python(address)
        except ValidationError:
            errors.append(f"{address}: not an email address")
            continue
        try:
            issued = invitations.create_invitation(
                ctx,
                visit.principal,
                org,
                email=email,
                role_name=role,
                team_id=team_id,
                one_of_many=len(addresses) > 1,
            )
        except Forbidden:
            raise
        except Problem as problem:
            if problem.code == "invalid_role" or (problem.status == 404 and team_id):
                field = "role" if problem.code == "invalid_role" else "team_id"
                ctx.session.rollback()
                state = refused(problem, visit.form, {problem.code: field}).state
                return _page(request, visit, forms={"invite": state})
            errors.append(f"{address}: {problem.detail}")
            status = problem.status
            continue
        links.append({"email": issued.invitation.email, "url": invitation_url(ctx, issued.token)})
    if errors:
        ctx.session.rollback()
        state = FormState(values, {"emails": "; ".join(errors)}, status)
        return _page(request, visit, forms={"invite": state})
    ctx.done(None, status=201)
    # The links carry the invitations' tokens: shown in this answer only (a page with a
    # secret is never redirected to, or kept by htmx's history).
    sent = f"{len(links)} invitation{'' if len(links) == 1 else 's'} created."
    return _page(request, visit, notice=sent, links=links)


@router.post("/orgs/{org}/invitations/{invitation_id}/revoke", name="invitation.revoked")
def revoke_invitation(request: Request, invitation_id: str, visit: OrgRead) -> Response:
    try:
        revoked = invitations.revoke_invitation(visit.ctx, visit.principal, invitation_id)
        if revoked.org_id != visit.current_org.id:  # another of the person's orgs
            raise NotFound("Invitation not found")
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        return _refused(request, visit, problem)
    visit.ctx.done(None)
    return changed(
        request, _url(visit), lambda: _page(request, visit, notice="Invitation revoked.")
    )


@router.post("/orgs/{org}/transfer-ownership", name="organization.ownership_transferred")
def transfer(request: Request, visit: OrgTransfer) -> Response:
    try:
        body = parse(TransferIn, visit.form)
        orgs.transfer_ownership(
            visit.ctx, visit.principal, visit.current_org, new_owner_ref=body.new_owner
        )
    except FormRefused as refusal:
        return _page(request, visit, forms={"transfer": refusal.state})
    except Forbidden:
        raise
    except Problem as problem:
        visit.ctx.session.rollback()
        state = refused(problem, visit.form, {"not_found": "new_owner", "already_owner": FORM})
        return _page(request, visit, forms={"transfer": state.state})
    visit.ctx.done(None)
    return changed(
        request, _url(visit), lambda: _page(request, visit, notice="Ownership transferred.")
    )
