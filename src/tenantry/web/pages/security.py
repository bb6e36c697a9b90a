"""The org's security policy: every member sees the rules they are held to; admins change
them (password rules, MFA for members, session timeouts, the IP allowlist). The form reads
into the API's `SecurityPolicyIn`, so a value the API refuses is refused here in its words."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import ValidationError
from starlette.responses import Response

from tenantry.authz.catalog import Permission
from tenantry.kit.errors import Problem
from tenantry.sso import repository as sso_repository
from tenantry.tenancy import security
from tenantry.tenancy.schemas import SecurityPolicyIn
from tenantry.web.forms import FORM, FormState, refused, text_fields
from tenantry.web.pages import changed, page_router
from tenantry.web.templating import render
from tenantry.web.visit import Visit, org_page

router = page_router()
OrgRead = Annotated[Visit, Depends(org_page(Permission.ORG_READ))]

NUMBERS = {
    "password": (
        "min_length",
        "min_complexity",
        "history",
        "max_age_days",
        "lockout_attempts",
        "lockout_minutes",
    ),
    "mfa": ("grace_days",),
    "sessions": ("idle_timeout_minutes", "absolute_timeout_minutes"),
}
CHECKS = {
    "password": ("require_uppercase", "require_lowercase", "require_digit", "require_symbol"),
    "mfa": ("required",),
}


def _form_values(rules: SecurityPolicyIn) -> dict[str, str]:
    values: dict[str, str] = {}
    dumped = rules.model_dump()
    for section, names in NUMBERS.items():
        for name in names:
            value = dumped[section][name]
            values[f"{section}_{name}"] = "" if value is None else str(value)
    for section, names in CHECKS.items():
        for name in names:
            values[f"{section}_{name}"] = "on" if dumped[section][name] else ""
    values["ip_allowlist"] = "\n".join(rules.ip_allowlist)
    return values


def _read(values: dict[str, str]) -> dict[str, Any]:
    """The form as the API's body: blank numbers are "no rule", unticked boxes false."""
    body: dict[str, Any] = {"password": {}, "mfa": {}, "sessions": {}}
    for section, names in NUMBERS.items():
        for name in names:
            raw = values.get(f"{section}_{name}", "").strip()
            if raw:
                body[section][name] = raw
    for section, names in CHECKS.items():
        for name in names:
            body[section][name] = values.get(f"{section}_{name}") == "on"
    lines = values.get("ip_allowlist", "").replace(",", "\n").splitlines()
    body["ip_allowlist"] = [line.strip() for line in lines if line.strip()]
    return body


def _page(
    request: Request, visit: Visit, *, form: FormState | None = None, notice: str = ""
) -> Response:
    org = visit.current_org
    view = security.read_policy(visit.ctx.session, visit.principal, org)
    sso = sso_repository.policy_of(visit.ctx.session, org_id=org.id)
    shown = form or FormState(_form_values(view.rules))
    context = {
        "visit": visit,
        "org": org,
        "form": shown,
        "view": view,
        "sso_enforced": bool(sso and sso.enforced),
        "can_manage": visit.can(Permission.SECURITY_MANAGE.value),
        "notice": notice,
    }
    return render(request, "org/security.html", context, status=shown.status, block="page")


@router.get("/orgs/{org}/security")
def security_page(request: Request, visit: OrgRead) -> Response:
    return _page(request, visit)


@router.post("/orgs/{org}/security", name="organization.security_policy_updated")
def set_security_policy(request: Request, visit: OrgRead) -> Response:
    values = text_fields(visit.form)
    try:
        rules = SecurityPolicyIn.model_validate(_read(values))
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors(include_url=False):
            where = "_".join(str(part) for part in error["loc"][:2]) or FORM
            if where.startswith("ip_allowlist"):
                where = "ip_allowlist"
            errors.setdefault(where, error["msg"])
        return _page(request, visit, form=FormState(values, errors, 422))
    try:
        security.set_policy(visit.ctx, visit.principal, visit.current_org, rules)
    except Problem as problem:
        visit.ctx.session.rollback()
        if problem.status == 403:
            raise
        shown = refused(problem, values, {"ip_allowlist_excludes_you": "ip_allowlist"}).state
        return _page(request, visit, form=shown)
    visit.ctx.done(None)
    url = f"/orgs/{visit.current_org.slug}/security"
    return changed(request, url, lambda: _page(request, visit, notice="Security policy saved."))
