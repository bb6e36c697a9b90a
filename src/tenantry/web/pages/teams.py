"""Teams: the org's tree of teams, creating one; a team's settings, members and deletion.

Each route's permission is the one the API's route of the same action declares, and each
changing route's `name` is that route's audit action.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import Response

from tenantry.authz.catalog import Permission, TeamRole
from tenantry.identity import repository as identity_repository
from tenantry.kit.errors import Forbidden, NotFound, Problem
from tenantry.tenancy import memberships, teams
from tenantry.tenancy.models import Team
from tenantry.tenancy.schemas import DeleteConfirmIn, TeamCreateIn, TeamMemberIn, TeamUpdateIn
from tenantry.web.forms import FormRefused, FormState, parse, refused
from tenantry.web.pages import changed, every, moved, page_router
from tenantry.web.templating import render
from tenantry.web.visit import Visit, org_page, team_page

router = page_router()

TeamsRead = Annotated[Visit, Depends(org_page(Permission.TEAM_READ))]
TeamsCreate = Annotated[Visit, Depends(org_page(Permission.TEAM_CREATE))]
TeamRead = Annotated[Visit, Depends(team_page(Permission.TEAM_READ))]
TeamUpdate = Annotated[Visit, Depends(team_page(Permission.TEAM_UPDATE))]
TeamDelete = Annotated[Visit, Depends(team_page(Permission.TEAM_DELETE))]
TeamMembersAdd = Annotated[Visit, Depends(team_page(Permission.MEMBER_INVITE))]
TeamMembersUpdate = Annotated[Visit, Depends(team_page(Permission.MEMBER_UPDATE))]
TeamMembersRemove = Annotated[Visit, Depends(team_page(Permission.TEAM_READ))]

TEAM_ROLES = [(r.value, r.value.capitalize()) for r in TeamRole]
# Problems of the team forms that name a field without naming it in their code.
TEAM_FIELDS = {
    "slug_taken": "slug",
    "invalid_parent_team": "parent_team_id",
    "team_cycle": "parent_team_id",
}


@dataclass
class TreeNode:
    team: Team
    children: list[TreeNode] = field(default_factory=list)


def team_tree(rows: list[Team]) -> list[TreeNode]:
    """The org's teams as a forest, by parent; a team whose parent is gone is a root."""
    nodes = {t.id: TreeNode(t) for t in rows}
    roots: list[TreeNode] = []
    for node in nodes.values():
        parent = nodes.get(node.team.parent_team_id or "")
        (parent.children if parent is not None else roots).append(node)
    for node in nodes.values():
        node.children.sort(key=lambda n: n.team.name.lower())
    return sorted(roots, key=lambda n: n.team.name.lower())


def _all_teams(visit: Visit) -> list[Team]:
    org = visit.current_org
    return every(lambda page: teams.list_teams(visit.ctx.session, visit.principal, org, page))


def _teams_page(
    request: Request, visit: Visit, form: FormState | None = None, notice: str = ""
) -> Response:
    rows = _all_teams(visit)
    context = {
        "visit": visit,
        "org": visit.current_org,
        "tree": team_tree(rows),
        "count": len(rows),
        "parents": [("", "None (a top-level team)")] + [(t.id, t.name) for t in rows],
        "form": form or FormState(),
        "notice": notice,
    }
    status = form.status if form else 200
    return render(request, "teams/list.html", context, status=status, block="page")


@router.get("/orgs/{org}/teams")
def teams_page(request: Request, visit: TeamsRead) -> Response:
    return _teams_page(request, visit)


@router.post("/orgs/{org}/teams", name="team.created")
def create_team(request: Request, visit: TeamsCreate) -> Response:
    ctx, org = visit.ctx, visit.current_org
    try:
        body = parse(TeamCreateIn, visit.form, optional_blank=frozenset({"slug", "parent_team_id"}))
        team = teams.create_team(
            ctx,
            visit.principal,
            org,
            name=body.name,
            slug=body.slug,
            description=body.description,
            parent_team_id=body.parent_team_id,
            settings=body.settings,
        )
    except FormRefused as refusal:
        return _teams_page(request, visit, refusal.state)
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        return _teams_page(request, visit, refused(problem, visit.form, TEAM_FIELDS).state)
    ctx.done(None, status=201)
    return changed(
        request,
        f"/orgs/{org.slug}/teams",
        lambda: _teams_page(request, visit, notice=f"Team {team.name} created."),
    )


# ---- one team ----


def _member_rows(visit: Visit) -> list[dict[str, Any]]:
    team = visit.current_team
    found = every(
        lambda page: memberships.list_team_members(visit.ctx.session, visit.principal, team, page)
    )
    users = identity_repository.users_by_ids(visit.ctx.session, [m.user_id for m in found])
    return [{"membership": m, "user": users[m.user_id]} for m in found if m.user_id in users]


def _team_page(
    request: Request,
    visit: Visit,
    *,
    forms: dict[str, FormState] | None = None,
    notice: str = "",
    problem: Problem | None = None,
) -> Response:
    team, org = visit.current_team, visit.current_org
    forms = forms or {}
    status = next((f.status for f in forms.values() if f.failed), 200)
    if problem is not None:
        status = problem.status
    others = [t for t in _all_teams(visit) if t.id != team.id]
    context = {
        "visit": visit,
        "org": org,
        "team": team,
        "parent": next((t for t in others if t.id == team.parent_team_id), None),
        "parents": [("", "None (a top-level team)")] + [(t.id, t.name) for t in others],
        "members": _member_rows(visit) if visit.can(Permission.MEMBER_READ, team.id) else None,
        "roles": TEAM_ROLES,
        "edit": forms.get("edit", FormState()),
        "add": forms.get("add", FormState()),
        "delete": forms.get("delete", FormState()),
        "notice": notice,
        "problem": problem,
    }
    return render(request, "teams/team.html", context, status=status, block="page")


def _team_url(visit: Visit) -> str:
    return f"/orgs/{visit.current_org.slug}/teams/{visit.current_team.id}"


@router.get("/orgs/{org}/teams/{team}")
def team_page_view(request: Request, visit: TeamRead) -> Response:
    return _team_page(request, visit)


@router.post("/orgs/{org}/teams/{team}", name="team.updated")
def update_team(request: Request, visit: TeamUpdate) -> Response:
    try:
        body = parse(TeamUpdateIn, visit.form, optional_blank=frozenset({"parent_team_id"}))
        changes = body.model_dump(exclude_unset=True)
        changes.setdefault("parent_team_id", None)  # a blank choice: a top-level team
        teams.update_team(visit.ctx, visit.principal, visit.current_team, changes)
    except FormRefused as refusal:
        return _team_page(request, visit, forms={"edit": refusal.state})
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        state = refused(problem, visit.form, TEAM_FIELDS).state
        return _team_page(request, visit, forms={"edit": state})
    visit.ctx.done(None)
    return changed(
        request, _team_url(visit), lambda: _team_page(request, visit, notice="Team saved.")
    )


@router.post("/orgs/{org}/teams/{team}/members", name="team.member.added")
def add_team_member(request: Request, visit: TeamMembersAdd) -> Response:
    try:
        body = parse(TeamMemberIn, visit.form)
        memberships.add_team_member(
            visit.ctx, visit.principal, visit.current_team, user_ref=body.user, role_name=body.role
        )
    except FormRefused as refusal:
        return _team_page(request, visit, forms={"add": refusal.state})
    except Forbidden:
        raise
    except Problem as problem:  # an unknown person is the field's 404, not the page's
        state = refused(problem, visit.form, {"not_found": "user"}).state
        return _team_page(request, visit, forms={"add": state})
    visit.ctx.done(None, status=201)
    return changed(
        request, _team_url(visit), lambda: _team_page(request, visit, notice="Member added.")
    )


@router.post("/orgs/{org}/teams/{team}/members/{user}", name="team.member.updated")
def update_team_member(request: Request, user: str, visit: TeamMembersUpdate) -> Response:
    role = str(visit.form.get("role") or "")
    try:
        memberships.update_team_member(
            visit.ctx, visit.principal, visit.current_team, user_ref=user, role_name=role
        )
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        return _refused_notice(request, visit, problem)
    visit.ctx.done(None)
    return changed(
        request, _team_url(visit), lambda: _team_page(request, visit, notice="Role changed.")
    )


@router.post("/orgs/{org}/teams/{team}/members/{user}/remove", name="team.member.removed")
def remove_team_member(request: Request, user: str, visit: TeamMembersRemove) -> Response:
    try:
        memberships.remove_team_member(
            visit.ctx, visit.principal, visit.current_team, user_ref=user
        )
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        return _refused_notice(request, visit, problem)
    visit.ctx.done(None)
    return changed(
        request, _team_url(visit), lambda: _team_page(request, visit, notice="Member removed.")
    )


@router.post("/orgs/{org}/teams/{team}/delete", name="team.deleted")
def delete_team(request: Request, visit: TeamDelete) -> Response:
    org = visit.current_org
    try:
        body = parse(DeleteConfirmIn, visit.form)
        teams.delete_team(visit.ctx, visit.principal, visit.current_team, confirm=body.confirm)
    except FormRefused as refusal:
        return _team_page(request, visit, forms={"delete": refusal.state})
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        state = refused(problem, visit.form, {"confirmation_mismatch": "confirm"}).state
        return _team_page(request, visit, forms={"delete": state})
    visit.ctx.done(None, status=204)
    return moved(request, f"/orgs/{org.slug}/teams")


def _refused_notice(request: Request, visit: Visit, problem: Problem) -> Response:
    """A refused row action (the last owner, a role above one's own): the page again, with the
    API's detail at its top and the API's status; nothing was written."""
    visit.ctx.session.rollback()
    return _team_page(request, visit, problem=problem)
