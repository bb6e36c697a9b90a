"""The org's data classification levels (docs/governance.md#data-classification): everyone who
may read the org's governance sees each level with its categories and handling requirements;
those who may manage it edit the levels as JSON (seed 001's `data_classification`), read into
the API's `DataClassificationIn`, so a value the API refuses is refused here in its words."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import ValidationError
from starlette.responses import Response

from tenantry.authz.catalog import Permission
from tenantry.governance import classification
from tenantry.governance.schemas import DataClassificationIn
from tenantry.kit.errors import Problem
from tenantry.web.forms import FORM, FormState, refused, text_fields
from tenantry.web.pages import changed, page_router
from tenantry.web.templating import render
from tenantry.web.visit import Visit, org_page

router = page_router()
GovernanceRead = Annotated[Visit, Depends(org_page(Permission.GOVERNANCE_READ))]
LEVELS = "levels"


def _configured_json(levels: dict[str, Any]) -> str:
    """The configured levels as the editor shows them (defaults left out: they always exist)."""
    shown = {
        name: {"categories": level["categories"], "handling_requirements": {
            k: v for k, v in level["handling_requirements"].items() if v not in (None, False)
        }}
        for name, level in levels.items()
        if level["configured"]
    }  # fmt: skip
    return json.dumps({"levels": shown}, indent=2)


def _page(
    request: Request, visit: Visit, *, form: FormState | None = None, notice: str = ""
) -> Response:
    org = visit.current_org
    found = classification.read_levels(visit.ctx.session, visit.principal, org_id=org.id)
    shown = form or FormState({LEVELS: _configured_json(found["levels"])})
    context = {
        "visit": visit,
        "org": org,
        "form": shown,
        "levels": found["levels"],
        "defined_by": found["defined_by"],
        "can_manage": visit.can(Permission.GOVERNANCE_MANAGE.value),
        "notice": notice,
    }
    return render(request, "org/classification.html", context, status=shown.status, block="page")


@router.get("/orgs/{org}/governance/classification")
def classification_page(request: Request, visit: GovernanceRead) -> Response:
    return _page(request, visit)


@router.post("/orgs/{org}/governance/classification", name="governance.classification_updated")
def set_classification(request: Request, visit: GovernanceRead) -> Response:
    values = text_fields(visit.form)
    try:
        body = json.loads(values.get(LEVELS, ""))
    except ValueError as exc:
        state = FormState(values, {LEVELS: f"Not JSON: {exc}"}, 422)
        return _page(request, visit, form=state)
    if isinstance(body, dict) and isinstance(body.get("data_classification"), dict):
        body = body["data_classification"]
    try:
        levels = DataClassificationIn.model_validate(body)
    except ValidationError as exc:
        errors = [
            f"{'.'.join(str(p) for p in e['loc']) or FORM}: {e['msg']}"
            for e in exc.errors(include_url=False)
        ]
        return _page(request, visit, form=FormState(values, {LEVELS: "; ".join(errors)}, 422))
    try:
        classification.set_levels(visit.ctx, visit.principal, org_id=visit.current_org.id,
                                  levels=levels)  # fmt: skip
    except Problem as problem:
        visit.ctx.session.rollback()
        if problem.status == 403:
            raise
        return _page(request, visit, form=refused(problem, values, {}).state)
    visit.ctx.done(None)
    url = f"/orgs/{visit.current_org.slug}/governance/classification"
    return changed(
        request, url, lambda: _page(request, visit, notice="Classification levels saved.")
    )
