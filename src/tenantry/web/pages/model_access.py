"""Model access: the models and providers the org and each team allow or deny, their rate
limits, and what applies to a team's requests once every layer is resolved. People with
`governance:manage` change a layer; the form reads into the API's `ModelAccessIn`, so a value
the API refuses is refused here in its words."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request
from pydantic import ValidationError
from starlette.responses import Response

from tenantry.authz.catalog import Permission
from tenantry.governance import model_access
from tenantry.governance.schemas import ModelAccessIn
from tenantry.kit.errors import NotFound, Problem
from tenantry.tenancy import scope as tenancy
from tenantry.tenancy import teams as tenancy_teams
from tenantry.web.forms import FORM, FormState, refused, text_fields
from tenantry.web.pages import changed, every, page_router
from tenantry.web.templating import render
from tenantry.web.visit import Visit, org_page

router = page_router()
OrgRead = Annotated[Visit, Depends(org_page(Permission.GOVERNANCE_READ))]
LISTS = ("models_allow", "models_deny", "providers_allow", "providers_deny")
LIMITS = model_access.LIMITS


def _form_values(found: dict[str, Any]) -> dict[str, str]:
    values = {
        "models_allow": "\n".join(p for p, ok in found["model_access"].items() if ok),
        "models_deny": "\n".join(p for p, ok in found["model_access"].items() if not ok),
        "providers_allow": "\n".join(p for p, ok in found["providers"].items() if ok),
        "providers_deny": "\n".join(p for p, ok in found["providers"].items() if not ok),
    }
    for name in LIMITS:
        value = found["rate_limits"][name]
        values[name] = "" if value is None else str(value)
    return values


def _lines(raw: str) -> list[str]:
    return [line.strip() for line in raw.replace(",", "\n").splitlines() if line.strip()]


def _read(values: dict[str, str], kept: dict[str, Any] | None) -> dict[str, Any]:
    """The form as the API's body: one pattern a line; a deny of a pattern also allowed wins
    (as it would in admission); blank limits are "no limit"."""
    body: dict[str, Any] = {"model_access": {}, "providers": {}, "rate_limits": {}}
    for kind in ("models", "providers"):
        into = body["model_access" if kind == "models" else "providers"]
        into.update(dict.fromkeys(_lines(values.get(f"{kind}_allow", "")), True))
        into.update(dict.fromkeys(_lines(values.get(f"{kind}_deny", "")), False))
    for name in LIMITS:
        raw = values.get(name, "").strip()
        if raw:
            body["rate_limits"][name] = raw
    if kept is not None:
        body["safety_settings"] = kept  # the page does not edit them: kept as they are
    return body


def _team(visit: Visit, team: str | None) -> str | None:
    """The team of the org whose layer is shown (None: the org's)."""
    if not team:
        return None
    found = tenancy.resolve_team(visit.ctx.session, visit.principal, team)
    if found.org_id != visit.current_org.id:
        raise NotFound("Team not found")
    return found.id


def _page(
    request: Request,
    visit: Visit,
    team_id: str | None,
    *,
    form: FormState | None = None,
    notice: str = "",
) -> Response:
    org, session = visit.current_org, visit.ctx.session
    scope, subject = ("team", team_id) if team_id else ("org", "")
    found = model_access.access_of(
        session, visit.principal, org_id=org.id, scope=scope, subject_id=subject
    )
    view = model_access.effective(session, org_id=org.id, team_id=team_id, api_key_id=None)
    teams = every(lambda page: tenancy_teams.list_teams(session, visit.principal, org, page))
    shown = form or FormState(_form_values(found))
    context = {
        "visit": visit,
        "org": org,
        "team_id": team_id,
        "teams": teams,
        "found": found,
        "effective": view,
        "form": shown,
        "can_manage": visit.can(Permission.GOVERNANCE_MANAGE.value, team_id),
        "notice": notice,
    }
    return render(request, "org/model_access.html", context, status=shown.status, block="page")


@router.get("/orgs/{org}/model-access")
def model_access_page(
    request: Request,
    visit: OrgRead,
    team: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    return _page(request, visit, _team(visit, team))


@router.post("/orgs/{org}/model-access", name="model_access.org_updated")
def set_org_model_access(request: Request, visit: OrgRead) -> Response:
    return _save(request, visit, None)


@router.post("/orgs/{org}/model-access/teams/{team}", name="model_access.team_updated")
def set_team_model_access(request: Request, visit: OrgRead, team: str) -> Response:
    return _save(request, visit, _team(visit, team))


def _save(request: Request, visit: Visit, team_id: str | None) -> Response:
    values = text_fields(visit.form)
    org = visit.current_org
    scope, subject = ("team", team_id) if team_id else ("org", "")
    kept = model_access.access_of(
        visit.ctx.session, visit.principal, org_id=org.id, scope=scope, subject_id=subject
    )["safety_settings"]
    try:
        body = ModelAccessIn.model_validate(_read(values, kept))
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors(include_url=False):
            loc = [str(part) for part in error["loc"]]
            where = loc[-1] if loc[:1] == ["rate_limits"] else FORM
            if loc[:1] in (["model_access"], ["providers"]):
                where = "models_allow" if loc[0] == "model_access" else "providers_allow"
            errors.setdefault(where, error["msg"])
        return _page(request, visit, team_id, form=FormState(values, errors, 422))
    spec = model_access.AccessSpec(
        models=body.model_access,
        providers=body.providers,
        limits=body.rate_limits.model_dump(),
        safety_settings=body.safety_settings,
    )
    try:
        model_access.set_access(
            visit.ctx, visit.principal, org_id=org.id, scope=scope, subject_id=subject, spec=spec
        )
    except Problem as problem:
        visit.ctx.session.rollback()
        if problem.status == 403:
            raise
        return _page(request, visit, team_id, form=refused(problem, values).state)
    visit.ctx.done(None)
    url = f"/orgs/{org.slug}/model-access" + (f"?team={team_id}" if team_id else "")
    return changed(
        request, url, lambda: _page(request, visit, team_id, notice="Model access saved.")
    )
