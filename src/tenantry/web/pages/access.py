"""Access control: custom roles (made of permissions and of the roles they inherit), grants on a
team or one of its resources with an optional expiry, grant templates, and the explain form
("can this person do this on that?", with the engine's answer and what would give it).

Each route authorizes as the API's route of the same action: roles need `role:read` to be seen
and `role:manage` to be changed; grants and templates `grant:read` and `grant:manage` (a grant's
on the team it is made in); anyone in the org may ask about themselves, and about others with
`grant:read`. Each changing route's `name` is the API route's audit action.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from tenantry.access import questions
from tenantry.access import service as management
from tenantry.access.models import CustomRole, Grant
from tenantry.access.repository import GrantFilters, grants_of_org, templates_of_org
from tenantry.access.schemas import (
    CheckIn,
    GrantCreateIn,
    RoleCreateIn,
    RoleUpdateIn,
    TemplateApplyIn,
    TemplateCreateIn,
)
from tenantry.authz.catalog import CATALOG_DESCRIPTIONS, Permission
from tenantry.authz.engine import BUILTIN_ROLES, Explanation
from tenantry.authz.resources import TEAM_OWNED
from tenantry.authz.service import authorize, policy
from tenantry.identity import repository as identity_repository
from tenantry.kit.errors import Forbidden, NotFound, Problem
from tenantry.tenancy import scope as tenancy_scope
from tenantry.tenancy import teams
from tenantry.tenancy.models import Team
from tenantry.web.forms import (
    FORM,
    FormRefused,
    FormState,
    parse,
    query_form,
    refused,
    text_fields,
)
from tenantry.web.pages import changed, every, moved, page_router
from tenantry.web.templating import render
from tenantry.web.visit import Visit, org_page

router = page_router()

OrgMember = Annotated[Visit, Depends(org_page(Permission.ORG_READ))]
RoleRead = Annotated[Visit, Depends(org_page(Permission.ROLE_READ))]
RoleManage = Annotated[Visit, Depends(org_page(Permission.ROLE_MANAGE))]
GrantManage = Annotated[Visit, Depends(org_page(Permission.GRANT_MANAGE))]

SUBJECT_TYPES = [("user", "Person"), ("team", "Team"), ("api_key", "API key")]
RESOURCE_TYPES = [("org", "The organization"), ("team", "A team")] + [
    (t, t.replace("_", " ").capitalize()) for t in TEAM_OWNED
]
GRANT_RESOURCES = [("team", "The whole team")] + [
    (t, t.replace("_", " ").capitalize()) for t in TEAM_OWNED
]
PERMISSIONS = [(p.value, CATALOG_DESCRIPTIONS[p]) for p in Permission]
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SECONDS_PER_DAY = 86_400
# Problems of these forms that name a field without naming it in their code.
ROLE_FIELDS = {"role_exists": "name", "role_cycle": "inherits", "unknown_role": "inherits"}
GRANT_FIELDS = {
    "subject_not_found": "subject_id",
    "outside_key_team": "subject_id",
    "invalid_expiry": "expires_at",
    "unknown_role": "role",
    "unknown_permission": "permissions",
    "resource_required": "resource_id",
    "invalid_resource_id": "resource_id",
    "resource_team_mismatch": "resource_id",
    "unknown_resource_type": "resource_type",
    "not_found": "resource_id",
}
TEMPLATE_FIELDS = {
    "template_exists": "name",
    "unknown_role": "role",
    "invalid_resource_pattern": "resource_id",
    "unknown_resource_type": "resource_type",
}
NESTED = {"subject": "subject_id", "resource": "resource_id"}
EXPLAIN_FIELDS = {
    "subject_not_found": "subject_id",
    "unknown_permission": "permission",
    "resource_team_unknown": "team_id",
}


def _day_start(value: str) -> str | None:
    """A date control's day as the start of that day, UTC (what the API's timestamps take)."""
    value = value.strip()
    return f"{value}T00:00:00Z" if _DAY.match(value) else (value or None)


def _nested_errors(refusal: FormRefused, where: dict[str, str]) -> FormRefused:
    """A nested model's error (`subject.id`) shown beside the form's own field for it."""
    state = refusal.state
    state.errors = {where.get(k, k): v for k, v in state.errors.items()}
    return refusal


# ---- what the page shows ----


def _teams(visit: Visit) -> list[Team]:
    org = visit.current_org
    return every(lambda page: teams.list_teams(visit.ctx.session, visit.principal, org, page))


def _roles(visit: Visit) -> list[dict[str, Any]]:
    session, org = visit.ctx.session, visit.current_org
    snapshot = policy(session, org.id)
    custom: list[CustomRole] = every(lambda page: management.list_roles(visit.ctx, org, page))
    rows: list[dict[str, Any]] = [
        {
            "ref": name,
            "name": name,
            "builtin": True,
            "description": f"Built-in team role {name}",
            "permissions": sorted(p.value for p in perms),
            "inherits": [],
            "effective": sorted(p.value for p in perms),
        }
        for name, perms in BUILTIN_ROLES.items()
    ]
    for role in custom:
        effective = snapshot.role_permissions.get(role.id, frozenset())
        rows.append(
            {
                "ref": role.id,
                "name": role.name,
                "builtin": False,
                "description": role.description,
                "permissions": sorted(role.permissions),
                "inherits": [snapshot.role_names.get(r, r) for r in role.inherits],
                "effective": sorted(p.value for p in effective),
                "role": role,
            }
        )
    return rows


def _subject_names(visit: Visit, grants: list[Grant], team_names: dict[str, str]) -> dict[str, str]:
    users = identity_repository.users_by_ids(
        visit.ctx.session, sorted({g.subject_id for g in grants if g.subject_type == "user"})
    )
    out = {user_id: user.email for user_id, user in users.items()}
    out.update(
        {g.subject_id: team_names[g.subject_id] for g in grants if g.subject_id in team_names}
    )
    return out


def _grants(visit: Visit, *, expired: bool) -> list[Grant]:
    session, org = visit.ctx.session, visit.current_org
    filters = GrantFilters(active_at=None if expired else visit.ctx.clock.now())
    return every(lambda page: grants_of_org(session, org_id=org.id, filters=filters, page=page))


def _page(
    request: Request,
    visit: Visit,
    *,
    forms: dict[str, FormState] | None = None,
    notice: str = "",
    problem: Problem | None = None,
    answer: Explanation | None = None,
    asked: dict[str, str] | None = None,
    status: int = 200,
    block: str = "page",
) -> Response:
    org = visit.current_org
    forms = forms or {}
    failed = next((f.status for f in forms.values() if f.failed), None)
    all_teams = _teams(visit)
    team_names = {t.id: t.name for t in all_teams}
    see_roles = visit.can(Permission.ROLE_READ)
    see_grants = visit.can(Permission.GRANT_READ)
    expired = request.query_params.get("expired") == "1"
    grants = _grants(visit, expired=expired) if see_grants else []
    roles = _roles(visit) if see_roles else []
    manageable = [t for t in all_teams if visit.can(Permission.GRANT_MANAGE, t.id)]
    posted = visit.form
    found_templates = (
        every(lambda page: templates_of_org(visit.ctx.session, org_id=org.id, page=page))
        if see_grants
        else []
    )
    context = {
        "visit": visit,
        "org": org,
        "notice": notice,
        "problem": problem,
        "roles": roles,
        "see_roles": see_roles,
        "see_grants": see_grants,
        "grants": grants,
        "expired": expired,
        "now": visit.ctx.clock.now(),
        "subject_names": _subject_names(visit, grants, team_names),
        "team_names": team_names,
        "role_names": policy(visit.ctx.session, org.id).role_names,
        "templates": found_templates,
        "teams": [(t.id, t.name) for t in all_teams],
        "grant_teams": [(t.id, t.name) for t in manageable],
        "role_choices": [("", "None: the permissions ticked below")]
        + [(r["name"], r["name"]) for r in roles],
        "inherit_choices": [r["name"] for r in roles],
        "permissions": PERMISSIONS,
        "permission_choices": [(p, p) for p, _ in PERMISSIONS],
        "subject_types": SUBJECT_TYPES,
        "resource_types": RESOURCE_TYPES,
        "grant_resources": GRANT_RESOURCES,
        "role_form": forms.get("role", FormState()),
        "grant_form": forms.get("grant", FormState()),
        "template_form": forms.get("template", FormState()),
        "apply_form": forms.get("apply", FormState()),
        "explain_form": forms.get("explain", FormState(asked or {})),
        "template_choices": [(t.id, t.name) for t in found_templates],
        "chosen": set(posted.getlist("permissions")) if failed else set(),
        "chosen_inherits": set(posted.getlist("inherits")) if failed else set(),
        "answer": answer,
    }
    code = problem.status if problem else (failed or status)
    return render(request, "access.html", context, status=code, block=block)


def _url(visit: Visit) -> str:
    return f"/orgs/{visit.current_org.slug}/access"


def _refused_notice(request: Request, visit: Visit, problem: Problem) -> Response:
    visit.ctx.session.rollback()
    return _page(request, visit, problem=problem)


@router.get("/orgs/{org}/access")
def access_page(request: Request, visit: OrgMember) -> Response:
    return _page(request, visit)


# ---- explain ----


def _check_in(form: FormData) -> CheckIn:
    values = text_fields(form)
    subject_id = values.get("subject_id", "").strip()
    resource_type = values.get("resource_type", "org") or "org"
    resource: dict[str, Any] | None = None
    if resource_type != "org":
        resource = {
            "type": resource_type,
            "id": values.get("resource_id", "").strip() or None,
            "team_id": values.get("team_id") or None,
        }
    extra = {
        "subject": {"type": values.get("subject_type", "user"), "id": subject_id}
        if subject_id
        else None,
        "resource": resource,
    }
    try:
        return parse(CheckIn, form, extra=extra)
    except FormRefused as refusal:
        raise _nested_errors(
            refusal, {"subject": "subject_id", "resource": "resource_id"}
        ) from None


@router.get("/orgs/{org}/access/explain")
def explain(request: Request, visit: OrgMember) -> Response:
    """The engine's answer to "may SUBJECT do PERMISSION on RESOURCE?", and for a denial what
    is missing and which role or grant would give it (the API's explain; it writes nothing)."""
    form = query_form(request)
    asked = text_fields(form)
    block = "explain"
    try:
        body = _check_in(form)
        question = questions.question(
            visit.ctx,
            visit.principal,
            visit.current_org,
            subject=body.subject,
            permission=body.permission,
            resource=body.resource,
        )
        answer = questions.explain(visit.ctx, question)
    except FormRefused as refusal:
        return _page(request, visit, forms={"explain": refusal.state}, block=block)
    except Forbidden:
        raise
    except Problem as problem:
        state = refused(problem, form, EXPLAIN_FIELDS).state
        return _page(request, visit, forms={"explain": state}, block=block)
    return _page(request, visit, answer=answer, asked=asked, block=block)


# ---- roles ----


def _role_lists(form: FormData) -> dict[str, list[str]]:
    return {"permissions": form.getlist("permissions"), "inherits": form.getlist("inherits")}  # type: ignore[dict-item]


@router.post("/orgs/{org}/access/roles", name="role.created")
def create_role(request: Request, visit: RoleManage) -> Response:
    ctx = visit.ctx
    try:
        body = parse(RoleCreateIn, visit.form, extra=_role_lists(visit.form))
        role = management.create_role(
            ctx,
            visit.principal,
            visit.current_org,
            name=body.name,
            description=body.description,
            permissions=body.permissions,
            inherits=body.inherits,
        )
    except FormRefused as refusal:
        return _page(request, visit, forms={"role": refusal.state})
    except Forbidden:
        raise
    except Problem as problem:
        ctx.session.rollback()
        return _page(
            request, visit, forms={"role": refused(problem, visit.form, ROLE_FIELDS).state}
        )
    name = role.name
    ctx.done(None, status=201)
    return changed(
        request,
        _url(visit),
        lambda: _page(request, visit, notice=f"Role {name} created.", status=201),
    )


def _role_page(
    request: Request,
    visit: Visit,
    ref: str,
    *,
    form: FormState | None = None,
    notice: str = "",
) -> Response:
    roles = _roles(visit)
    row = next((r for r in roles if r["ref"] == ref or r["name"] == ref.lower()), None)
    if row is None:
        row = next((r for r in roles if not r["builtin"] and r["name"] == ref), None)
    if row is None:
        raise NotFound("Role not found")
    failed = form is not None and form.failed
    context = {
        "visit": visit,
        "org": visit.current_org,
        "row": row,
        "form": form or FormState(),
        "notice": notice,
        "permissions": PERMISSIONS,
        "inherit_choices": [r["name"] for r in roles if r["ref"] != row["ref"]],
        "chosen": set(visit.form.getlist("permissions")) if failed else set(row["permissions"]),
        "chosen_inherits": (
            set(visit.form.getlist("inherits")) if failed else set(row["inherits"])
        ),
        "others": [("", "Nobody holds it: delete it")]
        + [(r["name"], r["name"]) for r in roles if r["ref"] != row["ref"]],
    }
    status = form.status if form and form.failed else 200
    return render(request, "access_role.html", context, status=status, block="page")


@router.get("/orgs/{org}/access/roles/{role}")
def role_page(request: Request, role: str, visit: RoleRead) -> Response:
    return _role_page(request, visit, role)


@router.post("/orgs/{org}/access/roles/{role}", name="role.updated")
def update_role(request: Request, role: str, visit: RoleManage) -> Response:
    ctx = visit.ctx
    try:
        body = parse(RoleUpdateIn, visit.form, extra=_role_lists(visit.form))
        updated = management.update_role(
            ctx, visit.principal, visit.current_org, role, body.model_dump(exclude_unset=True)
        )
    except FormRefused as refusal:
        return _role_page(request, visit, role, form=refusal.state)
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        ctx.session.rollback()
        return _role_page(
            request, visit, role, form=refused(problem, visit.form, ROLE_FIELDS).state
        )
    ref = updated.id
    ctx.done(None)
    return changed(
        request,
        f"{_url(visit)}/roles/{ref}",
        lambda: _role_page(request, visit, ref, notice="Role saved."),
    )


@router.post("/orgs/{org}/access/roles/{role}/delete", name="role.deleted")
def delete_role(request: Request, role: str, visit: RoleManage) -> Response:
    reassign = str(visit.form.get("reassign_to") or "").strip() or None
    try:
        management.delete_role(
            visit.ctx, visit.principal, visit.current_org, role, reassign_to=reassign
        )
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        visit.ctx.session.rollback()
        state = refused(problem, visit.form, {"role_in_use": "reassign_to"}).state
        return _role_page(request, visit, role, form=state)
    visit.ctx.done(None, status=204)
    return moved(request, _url(visit))


# ---- grants ----


def _team_to_manage(visit: Visit, team_id: str) -> Team:
    """The team a grant is made in, found and authorized as the API's `/teams/{team}/…` routes
    do: 404 outside the org (or a private team one may not see), 403 without grant:manage."""
    session, org = visit.ctx.session, visit.current_org
    team = tenancy_scope.resolve_team(session, visit.principal, team_id)
    if team.org_id != org.id:
        raise NotFound("Team not found")
    visit.request.state.audit_team_id = team.id
    authorize(session, visit.principal, Permission.GRANT_MANAGE, org_id=org.id, team_id=team.id)
    return team


@router.post("/orgs/{org}/access/grants", name="grant.created")
def create_grant(request: Request, visit: OrgMember) -> Response:
    ctx, form = visit.ctx, visit.form
    values = text_fields(form)
    team_id = values.get("team_id", "")
    if not team_id:
        state = FormState(values, {"team_id": "Choose the team to grant in"}, 422)
        return _page(request, visit, forms={"grant": state})
    team = _team_to_manage(visit, team_id)
    resource_type = values.get("resource_type") or "team"
    extra: dict[str, Any] = {
        "subject": {"type": values.get("subject_type", "user"), "id": values.get("subject_id", "")},
        "resource": None
        if resource_type == "team"
        else {"type": resource_type, "id": values.get("resource_id", "").strip() or None},
        "role": values.get("role") or None,
        "permissions": form.getlist("permissions") or None,
        "expires_at": _day_start(values.get("expires_at", "")),
    }
    try:
        body = _parsed_grant(form, extra)
        grant = management.create_grant(
            ctx,
            visit.principal,
            team,
            subject=body.subject,
            resource=body.resource,
            role=body.role,
            permissions=body.permissions,
            expires_at=body.expires_at,
            reason=body.reason,
        )
    except FormRefused as refusal:
        return _page(request, visit, forms={"grant": refusal.state})
    except Forbidden:
        raise
    except Problem as problem:
        ctx.session.rollback()
        return _page(request, visit, forms={"grant": refused(problem, form, GRANT_FIELDS).state})
    what = body.role or f"{len(grant.permissions or [])} permissions"
    ctx.done(None, status=201)
    return changed(
        request,
        _url(visit),
        lambda: _page(request, visit, notice=f"Granted {what} in {team.name}.", status=201),
    )


def _parsed_grant(form: FormData, extra: dict[str, Any]) -> GrantCreateIn:
    try:
        return parse(GrantCreateIn, form, extra=extra)
    except FormRefused as refusal:
        raise _nested_errors(
            refusal, {"subject": "subject_id", "resource": "resource_id"}
        ) from None


@router.post("/orgs/{org}/access/grants/{grant_id}/revoke", name="grant.revoked")
def revoke_grant(request: Request, grant_id: str, visit: OrgMember) -> Response:
    org = visit.current_org
    found = management.find_grant(visit.ctx, visit.principal, grant_id)
    if found.org_id != org.id:  # a grant of another of the person's orgs
        raise NotFound("Grant not found")
    try:
        management.revoke_grant(visit.ctx, visit.principal, grant_id)
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        return _refused_notice(request, visit, problem)
    visit.ctx.done(None, status=204)
    return changed(request, _url(visit), lambda: _page(request, visit, notice="Grant revoked."))


# ---- templates ----


@router.post("/orgs/{org}/access/templates", name="grant_template.created")
def create_template(request: Request, visit: GrantManage) -> Response:
    ctx, form = visit.ctx, visit.form
    values = text_fields(form)
    days = values.get("duration_days", "").strip()
    extra: dict[str, Any] = {
        "role": values.get("role") or None,
        "permissions": form.getlist("permissions") or None,
        "resource_id": "*" if values.get("every") in ("on", "true", "1") else None,
        "duration_seconds": int(days) * SECONDS_PER_DAY if days.isdigit() else (days or None),
    }
    try:
        body = parse(
            TemplateCreateIn, form, optional_blank=frozenset({"resource_type"}), extra=extra
        )
        template = management.create_template(
            ctx,
            visit.principal,
            visit.current_org,
            name=body.name,
            description=body.description,
            role=body.role,
            permissions=body.permissions,
            resource_type=body.resource_type,
            resource_id=body.resource_id,
            duration_seconds=body.duration_seconds,
        )
    except FormRefused as refusal:
        state = _nested_errors(refusal, {"duration_seconds": "duration_days"}).state
        return _page(request, visit, forms={"template": state})
    except Forbidden:
        raise
    except Problem as problem:
        ctx.session.rollback()
        state = refused(problem, form, TEMPLATE_FIELDS).state
        return _page(request, visit, forms={"template": state})
    name = template.name
    ctx.done(None, status=201)
    return changed(
        request,
        _url(visit),
        lambda: _page(request, visit, notice=f"Template {name} created.", status=201),
    )


@router.post("/orgs/{org}/access/templates/{template}/delete", name="grant_template.deleted")
def delete_template(request: Request, template: str, visit: GrantManage) -> Response:
    try:
        management.delete_template(visit.ctx, visit.principal, visit.current_org, template)
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        return _refused_notice(request, visit, problem)
    visit.ctx.done(None, status=204)
    return changed(request, _url(visit), lambda: _page(request, visit, notice="Template deleted."))


def _subjects(raw: str) -> list[dict[str, str]]:
    """People named in a pasted list (emails or user ids), each once."""
    seen: list[str] = []
    for part in re.split(r"[,;\s]+", raw):
        if part and part.lower() not in (s.lower() for s in seen):
            seen.append(part)
    return [{"type": "user", "id": s} for s in seen]


@router.post("/orgs/{org}/access/templates/apply", name="grant_template.applied")
def apply_template(request: Request, visit: OrgMember) -> Response:
    """One grant per person, as the chosen template says, in the chosen team; all or none."""
    ctx, form = visit.ctx, visit.form
    values = text_fields(form)
    template = values.get("template", "")
    team_id = values.get("team_id", "")
    if not team_id:
        state = FormState(values, {"team_id": "Choose the team to grant in"}, 422)
        return _page(request, visit, forms={"apply": state})
    team = _team_to_manage(visit, team_id)
    extra = {
        "subjects": _subjects(values.get("subjects", "")),
        "resource_id": values.get("resource_id", "").strip() or None,
    }
    try:
        body = parse(TemplateApplyIn, form, extra=extra)
        made = management.apply_template(
            ctx,
            visit.principal,
            team,
            template,
            subjects=body.subjects,
            resource_id=body.resource_id,
            reason=body.reason,
        )
    except FormRefused as refusal:
        return _page(request, visit, forms={"apply": refusal.state})
    except Forbidden:
        raise
    except Problem as problem:
        ctx.session.rollback()
        fields = {"subject_not_found": "subjects", "not_found": FORM, **TEMPLATE_FIELDS}
        return _page(request, visit, forms={"apply": refused(problem, form, fields).state})
    count = len(made)
    ctx.done(None, status=201)
    notice = f"{count} grant{'' if count == 1 else 's'} made in {team.name}."
    return changed(request, _url(visit), lambda: _page(request, visit, notice=notice, status=201))
