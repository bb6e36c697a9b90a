"""API keys: the org's keys with their last use, making one (a team, a subset of one's own
permissions, an expiry) whose secret is shown once, and revoking one."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import Response

from tenantry.authz.catalog import CATALOG_DESCRIPTIONS, Permission
from tenantry.identity import service as identity
from tenantry.identity.schemas import ApiKeyCreateIn
from tenantry.kit.clock import as_utc
from tenantry.kit.errors import Forbidden, NotFound, Problem
from tenantry.tenancy import repository as tenancy_repository
from tenantry.tenancy import teams
from tenantry.web.forms import FormRefused, FormState, parse, refused, text_fields
from tenantry.web.pages import changed, every, page_router
from tenantry.web.templating import render
from tenantry.web.visit import Visit, org_page

router = page_router()

KeysRead = Annotated[Visit, Depends(org_page(Permission.APIKEY_READ))]
# As the API's routes: any member may ask; the service decides (apikey:create on the org, or
# on the key's team).
OrgRead = Annotated[Visit, Depends(org_page(Permission.ORG_READ))]
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _page(
    request: Request,
    visit: Visit,
    *,
    form: FormState | None = None,
    notice: str = "",
    created: Any = None,
    secret: str = "",
) -> Response:
    org, session = visit.current_org, visit.ctx.session
    all_teams = every(lambda page: teams.list_teams(session, visit.principal, org, page))
    keys = every(
        lambda page: identity.list_api_keys(session, visit.principal, org_id=org.id, page=page)
    )
    keys.sort(key=lambda k: (k.revoked_at is not None, k.id), reverse=False)
    context = {
        "visit": visit,
        "org": org,
        "keys": keys,
        "expired_ids": {
            k.id for k in keys if k.expires_at and as_utc(k.expires_at) <= visit.ctx.clock.now()
        },
        "team_names": {t.id: t.name for t in all_teams},
        "targets": [("", "The whole organization")] + [(t.id, t.name) for t in all_teams],
        # Only permissions one holds can be given to a key; the others are not offered.
        "permissions": [
            (p.value, CATALOG_DESCRIPTIONS[p]) for p in Permission if visit.can(p.value)
        ],
        "form": form or FormState(),
        "chosen": set(visit.form.getlist("permissions")) if form and form.failed else set(),
        "notice": notice,
        "created": created,
        "secret": secret,
    }
    status = form.status if form else (201 if created else 200)
    return render(request, "api_keys.html", context, status=status, block="page")


@router.get("/orgs/{org}/api-keys")
def keys_page(request: Request, visit: KeysRead) -> Response:
    return _page(request, visit)


@router.post("/orgs/{org}/api-keys", name="api_key.created")
def create_key(request: Request, visit: OrgRead) -> Response:
    ctx, org = visit.ctx, visit.current_org
    values = text_fields(visit.form)
    expires = values.get("expires_at", "").strip()
    extra: dict[str, Any] = {
        "team_id": values.get("team_id") or None,
        "permissions": list(visit.form.getlist("permissions")) or None,
        # A day (the date control's value) is the start of that day, UTC.
        "expires_at": f"{expires}T00:00:00Z" if _DAY.match(expires) else (expires or None),
    }
    try:
        body = parse(ApiKeyCreateIn, visit.form, extra=extra)
        if body.team_id and not tenancy_repository.team_in_org(
            ctx.session, org_id=org.id, team_id=body.team_id
        ):
            raise NotFound("Team not found")
        issued = identity.create_api_key(
            ctx,
            visit.principal,
            org_id=org.id,
            name=body.name,
            team_id=body.team_id,
            permissions=body.permissions,
            expires_at=body.expires_at,
        )
    except FormRefused as refusal:
        return _page(request, visit, form=refusal.state)
    except Forbidden:
        raise
    except Problem as problem:
        ctx.session.rollback()
        fields = {"invalid_expiry": "expires_at", "not_found": "team_id"}
        return _page(request, visit, form=refused(problem, visit.form, fields).state)
    key = issued.key
    ctx.done(None, status=201)
    # The secret is in this answer only: never redirected to, stored, or shown again.
    return _page(
        request, visit, notice=f"API key {key.name} created.", created=key, secret=issued.secret
    )


@router.post("/orgs/{org}/api-keys/{key_id}/revoke", name="api_key.revoked")
def revoke_key(request: Request, key_id: str, visit: OrgRead) -> Response:
    try:
        key = identity.revoke_api_key(visit.ctx, visit.principal, key_id)
    except (Forbidden, NotFound):
        raise
    except Problem as problem:  # none is known today; shown as the API would answer it
        visit.ctx.session.rollback()
        return _page(
            request, visit, form=FormState(errors={"_form": problem.detail}, status=problem.status)
        )
    if key.org_id != visit.current_org.id:  # a key of another of the person's orgs
        raise NotFound("API key not found")
    name = key.name
    visit.ctx.done(None)
    return changed(
        request,
        f"/orgs/{visit.current_org.slug}/api-keys",
        lambda: _page(request, visit, notice=f"API key {name} revoked."),
    )
