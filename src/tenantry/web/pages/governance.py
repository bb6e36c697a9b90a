"""An org's governance: its policies and its teams' (listed, shown with their rules in words and
every version's changes, made and changed with a condition builder, activated, disabled, and
dry-run over the recorded calls), the approvals inbox (what the person may decide, everything
with filters, their own requests) and the violations.

Every page reads and writes through the services the API's routes call (`governance.policies`,
`dryrun`, `approvals`, `violations`), under the same permissions; each changing route's `name`
is the audit action of the API's route of the same change. The condition builder posts its
rows as plain form fields (`field`, `operator`, `value`, repeated), so it works without
script; `static/governance.js` only adds and removes rows in place.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from tenantry.authz.catalog import Permission
from tenantry.authz.service import authorize
from tenantry.governance import approvals, dryrun, policies, violations
from tenantry.governance.conditions import (
    FIELDS,
    NUMBER,
    OPERATORS,
    WEEKDAYS,
    field_type,
)
from tenantry.governance.models import ApprovalRequest, ApprovalStatus, Policy, PolicyType
from tenantry.governance.schemas import DecisionIn, DryRunIn
from tenantry.identity import repository as identity_repository
from tenantry.kit.errors import Forbidden, NotFound, Problem, Unprocessable
from tenantry.kit.money import plain
from tenantry.tenancy import teams
from tenantry.tenancy.models import Team
from tenantry.web.forms import FormRefused, parse
from tenantry.web.pages import changed, every, moved, page_router
from tenantry.web.templating import render
from tenantry.web.visit import Visit, org_page

router = page_router()

OrgMember = Annotated[Visit, Depends(org_page(None))]
GovernanceRead = Annotated[Visit, Depends(org_page(Permission.GOVERNANCE_READ))]
# A page lists at most this many approvals or violations; the API's lists take `limit`.
ROWS = 500
# Blank rows the builder offers without script (one more for each "Add a condition").
BLANK_ROWS = 1
MAX_ROWS = 100

TYPES = [(t.value, t.value.replace("_", " ").capitalize()) for t in PolicyType]
STATUSES = [("draft", "Draft"), ("active", "Active")]
COMBINE = [("all", "All of the conditions"), ("any", "Any of the conditions")]
OPERATOR_WORDS = {
    "equals": "equals",
    "not_equals": "does not equal",
    "greater_than": "is greater than",
    "less_than": "is less than",
    "in": "is one of",
    "not_in": "is none of",
    "contains": "contains",
    "matches": "matches the pattern",
}
APPROVAL_STATUSES = [("", "Any status")] + [(s.value, s.value.capitalize()) for s in ApprovalStatus]
OUTCOMES = [("deny", "Would deny"), ("require_approval", "Would need approval"), ("log", "Logged")]
# A problem's place in the rules (`rules.conditions[2]…`): the builder row to mark.
_ROW_AT = re.compile(r"^rules\.conditions\[(\d+)\]")


def _base(visit: Visit) -> str:
    return f"/orgs/{visit.current_org.slug}/governance"


def _teams(visit: Visit) -> list[Team]:
    org = visit.current_org
    rows = every(lambda page: teams.list_teams(visit.ctx.session, visit.principal, org, page))
    return sorted(rows, key=lambda t: t.name.lower())


def _team_names(visit: Visit) -> dict[str, str]:
    return {"": "Whole organization", **{t.id: t.name for t in _teams(visit)}}


def _emails(visit: Visit, ids: set[str | None]) -> dict[str, str]:
    found = identity_repository.users_by_ids(visit.ctx.session, sorted(i for i in ids if i))
    return {user_id: user.email for user_id, user in found.items()}


def _policy(visit: Visit, policy_id: str) -> Policy:
    """The policy, read as the API's `GET /policies/{id}` reads it, and only through its own
    org's pages (404 through another org's, as if it did not exist)."""
    found = policies.read_policy(visit.ctx.session, visit.principal, policy_id)
    if found.org_id != visit.current_org.id:
        raise NotFound("Policy not found")
    return found


def _may_manage(visit: Visit, team_id: str) -> bool:
    return visit.can(Permission.GOVERNANCE_MANAGE, team_id or None)


# ---- rules in words ----


def _value_words(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_value_words(v) for v in value)
    return str(value)


def condition_words(node: Any) -> str:
    """A condition tree as a sentence a person reads: `daily_cost_per_user is greater than
    100`, combinators as `all of (…)`, `any of (…)`, `not (…)`."""
    if isinstance(node, list):
        return " and ".join(condition_words(n) for n in node) if node else "always"
    for key in ("all", "any"):
        if key in node:
            return f"{key} of (" + "; ".join(condition_words(n) for n in node[key]) + ")"
    if "not" in node:
        return f"not ({condition_words(node['not'])})"
    words = OPERATOR_WORDS.get(node["operator"], node["operator"])
    return f"{node['field']} {words} {_value_words(node['value'])}"


def action_words(action: dict[str, Any]) -> str:
    kind, parameters = action["type"], action.get("parameters") or {}
    if kind == "require_approval":
        roles = [f"role {r}" for r in parameters.get("roles", [])]
        who = [*parameters.get("approvers", []), *roles]
        who += [
            f"{role} up to {amount}"
            for role, amount in parameters.get("approval_hierarchy", {}).items()
        ]
        hours = parameters.get("timeout_hours", 24)
        return f"Require approval by {', '.join(who) or 'nobody'} (expires after {hours} h)"
    if kind == "notify" and parameters.get("recipients"):
        return f"Notify {', '.join(parameters['recipients'])}"
    extra = f" {json.dumps(parameters, sort_keys=True)}" if parameters else ""
    return {"deny": "Deny", "log": "Log", "allow": "Allow", "notify": "Notify"}[kind] + extra


def exception_words(exceptions: dict[str, Any]) -> list[str]:
    out = []
    for key, label in (("roles", "Roles"), ("users", "Members"), ("api_keys", "API keys")):
        if exceptions.get(key):
            out.append(f"{label}: {', '.join(exceptions[key])}")
    for window in exceptions.get("time_windows") or []:
        days = ", ".join(window.get("days") or []) or "every day"
        out.append(f"Time window: {days}, {window['start']} to {window['end']}")
    return out


def _shown(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return "—" if value in (None, "") else str(value)


def version_changes(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each version with what it changed from the one before (the first: what it was made
    with), newest first."""
    out = []
    before: dict[str, Any] = {}
    for v in versions:
        keys = ("name", "description", "type", "status", "rules", "exceptions")
        diff = [
            {"key": k, "from": _shown(before.get(k)) if before else "", "to": _shown(v.get(k))}
            for k in keys
            if before.get(k) != v.get(k) and (before or v.get(k) not in (None, "", {}))
        ]
        out.append({**v, "diff": diff})
        before = v
    return list(reversed(out))


# ---- the condition builder's form ----


@dataclass
class Row:
    field: str = ""
    operator: str = ""
    value: str = ""
    error: str = ""


@dataclass
class Draft:
    """The policy form as shown: from a policy, or as it was posted."""

    name: str = ""
    description: str = ""
    type: str = PolicyType.COST_CONTROL.value
    status: str = "draft"
    scope: str = ""
    combine: str = "all"
    rows: list[Row] = field(default_factory=list)
    # Conditions the builder cannot show (nested, `not`, tags): kept as they are.
    kept_conditions: list[Any] | None = None
    deny: bool = False
    approval: bool = False
    approvers: str = ""
    approver_roles: str = ""
    timeout_hours: str = "24"
    log: bool = False
    notify: bool = False
    recipients: str = ""
    except_roles: str = ""
    except_users: str = ""
    except_api_keys: str = ""
    window_days: list[str] = field(default_factory=list)
    window_start: str = ""
    window_end: str = ""
    error: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def padded(self) -> list[Row]:
        return [*self.rows, *(Row() for _ in range(BLANK_ROWS))][:MAX_ROWS]


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _flat(conditions: list[Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """(`all`/`any`, simple conditions) when the builder can show the conditions."""
    combine, items = "all", conditions
    if len(conditions) == 1 and isinstance(conditions[0], dict):
        only = conditions[0]
        for key in ("all", "any"):
            if set(only) == {key}:
                combine, items = key, only[key]
    simple = all(
        isinstance(c, dict) and set(c) == {"field", "operator", "value"} and c["field"] in FIELDS
        for c in items
    )
    return (combine, items) if simple else None


def draft_of(row: Policy) -> Draft:
    rules, ex = row.rules, row.exceptions or {}
    draft = Draft(
        name=row.name,
        description=row.description,
        type=row.type,
        status=row.status,
        scope=row.team_id,
    )
    flat = _flat(list(rules.get("conditions", [])))
    if flat is None:
        draft.kept_conditions = list(rules.get("conditions", []))
    else:
        draft.combine = flat[0]
        draft.rows = [Row(c["field"], c["operator"], _text(c["value"])) for c in flat[1]]
    for action in rules.get("actions", []):
        parameters = action.get("parameters") or {}
        if action["type"] == "deny":
            draft.deny = True
        elif action["type"] == "require_approval":
            draft.approval = True
            draft.approvers = ", ".join(parameters.get("approvers", []))
            draft.approver_roles = ", ".join(parameters.get("roles", []))
            draft.timeout_hours = str(parameters.get("timeout_hours", 24))
        elif action["type"] == "log":
            draft.log = True
        elif action["type"] == "notify":
            draft.notify = True
            draft.recipients = ", ".join(parameters.get("recipients", []))
    draft.except_roles = ", ".join(ex.get("roles", []))
    draft.except_users = ", ".join(ex.get("users", []))
    draft.except_api_keys = ", ".join(ex.get("api_keys", []))
    windows = ex.get("time_windows") or []
    if windows:
        draft.window_days = list(windows[0].get("days") or [])
        draft.window_start, draft.window_end = windows[0]["start"], windows[0]["end"]
    return draft


def _one(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _many(form: FormData, name: str) -> list[str]:
    return [v if isinstance(v, str) else "" for v in form.getlist(name)]


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def draft_from(form: FormData, *, kept: list[Any] | None = None) -> Draft:
    """The posted form as a draft; blank rows dropped, a removed row left out."""
    fields, operators, values = _many(form, "field"), _many(form, "operator"), _many(form, "value")
    removed = _one(form, "remove_row")
    rows = [
        Row(f.strip(), o.strip(), v.strip())
        for i, (f, o, v) in enumerate(zip(fields, operators, values, strict=False))
        if str(i) != removed and (f.strip() or v.strip())
    ][:MAX_ROWS]
    return Draft(
        name=_one(form, "name"),
        description=_one(form, "description"),
        type=_one(form, "type") or PolicyType.CUSTOM.value,
        status=_one(form, "status") or "draft",
        scope=_one(form, "scope"),
        combine="any" if _one(form, "combine") == "any" else "all",
        rows=rows,
        kept_conditions=kept,
        deny="deny" in form,
        approval="require_approval" in form,
        approvers=_one(form, "approvers"),
        approver_roles=_one(form, "approver_roles"),
        timeout_hours=_one(form, "timeout_hours") or "24",
        log="log" in form,
        notify="notify" in form,
        recipients=_one(form, "recipients"),
        except_roles=_one(form, "except_roles"),
        except_users=_one(form, "except_users"),
        except_api_keys=_one(form, "except_api_keys"),
        window_days=[d for d in _many(form, "window_days") if d in WEEKDAYS],
        window_start=_one(form, "window_start"),
        window_end=_one(form, "window_end"),
    )


def _typed(kind: str | None, text: str) -> Any:
    """A value as the API takes it: a number field's value as a JSON number (text that is no
    number is kept as text, which the policy's checks then refuse in their own words)."""
    if kind != NUMBER:
        return text
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    if not number.is_finite():
        return text
    return int(number) if number == number.to_integral_value() else float(number)


def _condition(row: Row) -> dict[str, Any]:
    kind = field_type(row.field)
    if row.operator in ("in", "not_in"):
        value: Any = [_typed(kind, v) for v in _names(row.value)]
    else:
        value = _typed(kind, row.value)
    return {"field": row.field, "operator": row.operator, "value": value}


def rules_of(draft: Draft) -> dict[str, Any]:
    """The rules the draft describes, as the API's body would hold them."""
    if draft.kept_conditions is not None:
        conditions = draft.kept_conditions
    else:
        listed = [_condition(r) for r in draft.rows]
        conditions = [{"any": listed}] if draft.combine == "any" and listed else listed
    actions: list[dict[str, Any]] = []
    if draft.deny:
        actions.append({"type": "deny"})
    if draft.approval:
        hours = _typed(NUMBER, draft.timeout_hours)
        parameters: dict[str, Any] = {
            "approvers": _names(draft.approvers),
            "roles": _names(draft.approver_roles),
            "timeout_hours": hours,
        }
        actions.append({"type": "require_approval", "parameters": parameters})
    if draft.log:
        actions.append({"type": "log"})
    if draft.notify:
        recipients = _names(draft.recipients)
        actions.append(
            {"type": "notify", "parameters": {"recipients": recipients} if recipients else {}}
        )
    return {"conditions": conditions, "actions": actions}


def exceptions_of(draft: Draft) -> dict[str, Any]:
    out: dict[str, Any] = {
        "roles": _names(draft.except_roles),
        "users": _names(draft.except_users),
        "api_keys": _names(draft.except_api_keys),
        "time_windows": [],
    }
    if draft.window_days or draft.window_start or draft.window_end:
        window = {
            "days": draft.window_days,
            "start": draft.window_start or "00:00",
            "end": draft.window_end or "24:00",
        }
        out["time_windows"] = [window]
    return out


def _refusal(draft: Draft, problem: Problem) -> Draft:
    """The service's refusal on the form: beside the builder row it names, else above."""
    at = _ROW_AT.match(problem.detail)
    if at is not None and draft.kept_conditions is None:
        index = int(at.group(1))
        # Conditions combined by `any` are one item whose rows are `any[i]`.
        inner = re.search(r"\.any\[(\d+)\]", problem.detail)
        if draft.combine == "any" and inner is not None:
            index = int(inner.group(1))
        if index < len(draft.rows):
            draft.rows[index].error = problem.detail
            return draft
    if problem.code == "invalid_name" or problem.code == "policy_exists":
        draft.errors["name"] = problem.detail
        return draft
    draft.error = problem.detail
    return draft


def _builder_context(visit: Visit, draft: Draft) -> dict[str, Any]:
    return {
        "draft": draft,
        "fields": [(name, f"{name} ({kind})") for name, kind in FIELDS.items()],
        "field_types": FIELDS,
        "operators": [(op, OPERATOR_WORDS[op]) for op in OPERATORS],
        "operator_types": {op: sorted(kinds) for op, kinds in OPERATORS.items()},
        "types": TYPES,
        "statuses": STATUSES,
        "combine": COMBINE,
        "weekdays": WEEKDAYS,
    }


# ---- policies ----


@router.get("/orgs/{org}/governance/policies")
def policies_page(
    request: Request,
    visit: GovernanceRead,
    scope: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Every policy of the org and of its teams, as `GET /orgs/{org}/policies` lists them;
    `scope` keeps the org-wide ones ("org") or one team's."""
    rows = policies.org_policies(visit.ctx.session, visit.principal, visit.current_org.id)
    names = _team_names(visit)
    if scope == "org":
        rows = [r for r in rows if not r.team_id]
    elif scope:
        rows = [r for r in rows if r.team_id == scope]
    context = {
        "visit": visit,
        "org": visit.current_org,
        "base": _base(visit),
        "policies": rows,
        "team_names": names,
        "scope": scope or "",
        "scopes": [("", "Every scope"), ("org", "Whole organization")]
        + [(k, v) for k, v in names.items() if k],
        "may_create": visit.can(Permission.GOVERNANCE_MANAGE)
        or any(_may_manage(visit, t) for t in names if t),
    }
    return render(request, "governance/policies.html", context)


def _manageable_scopes(visit: Visit) -> list[tuple[str, str]]:
    return [(k, v) for k, v in _team_names(visit).items() if _may_manage(visit, k)]


def _form_page(
    request: Request, visit: Visit, draft: Draft, *, policy: Policy | None, status: int = 200
) -> Response:
    context = {
        "visit": visit,
        "org": visit.current_org,
        "base": _base(visit),
        "policy": policy,
        "scopes": _manageable_scopes(visit),
        **_builder_context(visit, draft),
    }
    return render(request, "governance/policy_form.html", context, status=status, block="page")


@router.get("/orgs/{org}/governance/new-policy")
def new_policy_page(request: Request, visit: OrgMember) -> Response:
    """The builder for a new policy, for those who may make one somewhere in the org (the org,
    or a team they manage governance of)."""
    if not _manageable_scopes(visit):
        # The org's own refusal, with the permission it lacks.
        authorize(
            visit.ctx.session, visit.principal, Permission.GOVERNANCE_MANAGE,
            org_id=visit.current_org.id,
        )  # fmt: skip
    return _form_page(request, visit, Draft(), policy=None)


def _wants_rows(form: FormData) -> bool:
    """The builder's own buttons (add or remove a row without script): show the form again."""
    return "add_row" in form or "remove_row" in form


@router.post("/orgs/{org}/governance/policies", name="policy.created")
def create_policy(request: Request, visit: OrgMember) -> Response:
    """Make the policy as `POST /orgs/{org}/policies` (the whole org) or `POST
    /teams/{team}/governance/policies` (a team) does: the service authorizes on the scope."""
    ctx, org = visit.ctx, visit.current_org
    draft = draft_from(visit.form)
    if _wants_rows(visit.form):
        if "add_row" in visit.form:
            draft.rows.append(Row())
        return _form_page(request, visit, draft, policy=None)
    team_id = None
    if draft.scope:
        team_id = next((t.id for t in _teams(visit) if t.id == draft.scope), None)
        if team_id is None:
            raise NotFound("Team not found")
    spec = policies.PolicySpec(
        name=draft.name,
        description=draft.description,
        type=draft.type,
        status=draft.status,
        rules=rules_of(draft),
        exceptions=exceptions_of(draft),
    )
    try:
        row = policies.create_policy(
            ctx, visit.principal, org_id=org.id, team_id=team_id, spec=spec
        )
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        ctx.session.rollback()
        return _form_page(request, visit, _refusal(draft, problem), policy=None, status=422)
    ctx.done(None, status=201)
    return moved(request, f"{_base(visit)}/policies/{row.id}")


def _policy_page(
    request: Request,
    visit: Visit,
    policy_id: str,
    *,
    notice: str = "",
    report: dict[str, Any] | None = None,
    days: int = 30,
    problem: Problem | None = None,
    status: int = 200,
) -> Response:
    row = _policy(visit, policy_id)
    session = visit.ctx.session
    versions = policies.policy_versions(session, row)
    people: set[str | None] = {v["changed_by"] for v in versions}
    if report is not None:
        people |= set(report["by_member"])
    context = {
        "visit": visit,
        "org": visit.current_org,
        "base": _base(visit),
        "policy": row,
        "scope_name": _team_names(visit).get(row.team_id, row.team_id),
        "conditions": condition_words(row.rules.get("conditions", [])),
        "actions": [action_words(a) for a in row.rules.get("actions", [])],
        "exceptions": exception_words(row.exceptions or {}),
        "versions": version_changes(versions),
        "emails": _emails(visit, people),
        "may_manage": _may_manage(visit, row.team_id),
        "report": report,
        "outcomes": OUTCOMES,
        "days": days,
        "notice": notice,
        "problem": problem,
    }
    return render(request, "governance/policy.html", context, status=status, block="page")


@router.get("/orgs/{org}/governance/policies/{policy_id}")
def policy_page(request: Request, policy_id: str, visit: OrgMember) -> Response:
    """One policy, as `GET /policies/{id}` shows it (the team's governance readers)."""
    return _policy_page(request, visit, policy_id)


@router.get("/orgs/{org}/governance/policies/{policy_id}/edit")
def edit_policy_page(request: Request, policy_id: str, visit: OrgMember) -> Response:
    row = _policy(visit, policy_id)
    authorize(
        visit.ctx.session, visit.principal, Permission.GOVERNANCE_MANAGE,
        org_id=row.org_id, team_id=row.team_id or None,
    )  # fmt: skip
    return _form_page(request, visit, draft_of(row), policy=row)


@router.post("/orgs/{org}/governance/policies/{policy_id}", name="policy.updated")
def update_policy(request: Request, policy_id: str, visit: OrgMember) -> Response:
    """Change the policy as `PATCH /policies/{id}` does: a new version holding the diff."""
    ctx = visit.ctx
    row = _policy(visit, policy_id)
    kept = draft_of(row).kept_conditions
    draft = draft_from(visit.form, kept=kept)
    draft.scope, draft.status = row.team_id, row.status
    if _wants_rows(visit.form):
        if "add_row" in visit.form:
            draft.rows.append(Row())
        return _form_page(request, visit, draft, policy=row)
    spec = policies.PolicySpec(
        name=draft.name,
        description=draft.description,
        type=draft.type,
        rules=rules_of(draft),
        exceptions=exceptions_of(draft),
    )
    try:
        policies.update_policy(ctx, visit.principal, row.id, spec)
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        ctx.session.rollback()
        return _form_page(request, visit, _refusal(draft, problem), policy=row, status=422)
    ctx.done(None)
    return moved(request, f"{_base(visit)}/policies/{row.id}")


@router.post("/orgs/{org}/governance/policies/{policy_id}/status", name="policy.updated")
def set_policy_status(request: Request, policy_id: str, visit: OrgMember) -> Response:
    """Activate or disable, as `PATCH /policies/{id}` with `{"status": …}`."""
    ctx = visit.ctx
    row = _policy(visit, policy_id)
    wanted = _one(visit.form, "status")
    spec = policies.PolicySpec(status=wanted)
    try:
        policies.update_policy(ctx, visit.principal, row.id, spec)
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        ctx.session.rollback()
        return _policy_page(request, visit, policy_id, problem=problem, status=problem.status)
    ctx.done(None)
    words = {"active": "activated", "disabled": "disabled", "draft": "set back to draft"}
    return changed(
        request,
        f"{_base(visit)}/policies/{row.id}",
        lambda: _policy_page(request, visit, policy_id, notice=f"Policy {words[wanted]}."),
    )


@router.post("/orgs/{org}/governance/policies/{policy_id}/dry-run", name="policy.dry_run")
def dry_run_policy(request: Request, policy_id: str, visit: OrgMember) -> Response:
    """The policy replayed over the recorded calls of the last `days`, by the service of
    `POST /policies/{id}/dry-run`. Writes nothing."""
    row = _policy(visit, policy_id)
    try:
        body = parse(DryRunIn, visit.form, optional_blank=frozenset({"days"}))
    except FormRefused as refusal:
        detail = refusal.state.errors.get("days", "days is 1 to 366")
        problem = Unprocessable(f"days: {detail}", code="invalid_days")
        return _policy_page(request, visit, policy_id, problem=problem, status=422)
    report = dryrun.dry_run(visit.ctx, visit.principal, row.id, days=body.days)
    return _policy_page(request, visit, policy_id, report=report, days=body.days)


# ---- approvals ----


def _approval_rows(visit: Visit, rows: list[ApprovalRequest]) -> list[dict[str, Any]]:
    now = visit.ctx.clock.now()
    emails = _emails(visit, {r.user_id for r in rows} | {r.decided_by for r in rows})
    names = {p.id: p.name for p in _visible_policies(visit, rows)}
    team_names = _team_names(visit)
    return [
        {
            **approvals.approval_out(r, now),
            "requester": emails.get(r.user_id or "", r.api_key_id or "—"),
            "decider": emails.get(r.decided_by or "", ""),
            "team_name": team_names.get(r.team_id, r.team_id),
            "policies": [(p, names.get(p, p)) for p in r.policy_ids],
            "cost": plain(r.estimated_cost) if r.estimated_cost is not None else None,
        }
        for r in rows
    ]


def _visible_policies(visit: Visit, rows: list[ApprovalRequest]) -> list[Policy]:
    """The policies named by the requests that the person may read (names, else ids)."""
    found = []
    for policy_id in sorted({p for r in rows for p in r.policy_ids}):
        try:
            row = policies.find_policy(visit.ctx.session, visit.principal, policy_id)
        except NotFound:
            continue
        if row.org_id == visit.current_org.id and visit.can(
            Permission.GOVERNANCE_READ, row.team_id or None
        ):
            found.append(row)
    return found


def _approvals_page(
    request: Request,
    visit: Visit,
    *,
    status: str = "",
    notice: str = "",
    problem: Problem | None = None,
    code: int = 200,
) -> Response:
    ctx, org = visit.ctx, visit.current_org
    waiting = approvals.awaiting_decision(ctx, visit.principal, org_id=org.id, limit=ROWS)
    mine = approvals.requests_of(ctx, visit.principal, org_id=org.id, limit=ROWS)
    may_read = visit.can(Permission.GOVERNANCE_READ)
    every_one = (
        approvals.list_approvals(
            ctx, visit.principal, org_id=org.id, status=status or None, limit=ROWS
        )
        if may_read
        else []
    )
    context = {
        "visit": visit,
        "org": org,
        "base": _base(visit),
        "waiting": _approval_rows(visit, waiting),
        "mine": _approval_rows(visit, mine),
        "all": _approval_rows(visit, every_one),
        "may_read": may_read,
        "status": status,
        "statuses": APPROVAL_STATUSES,
        "notice": notice,
        "problem": problem,
    }
    return render(request, "governance/approvals.html", context, status=code, block="page")


@router.get("/orgs/{org}/governance/approvals")
def approvals_page(
    request: Request,
    visit: OrgMember,
    status: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    """The inbox: what the person may decide and their own requests (any member: the API
    shows a request to its requester and its approvers); every request of the org, with a
    status filter, for those who may list them (`GET /orgs/{org}/approvals`)."""
    return _approvals_page(request, visit, status=status)


def _decide(request: Request, visit: Visit, approval_id: str, *, approve: bool) -> Response:
    ctx = visit.ctx
    found = approvals.find_approval(ctx, visit.principal, approval_id)
    if found.org_id != visit.current_org.id:
        raise NotFound("Approval request not found")
    body = parse(DecisionIn, visit.form, optional_blank=frozenset({"reason"}))
    try:
        approvals.decide(ctx, visit.principal, found.id, approve=approve, reason=body.reason)
    except (Forbidden, NotFound):
        raise
    except Problem as problem:
        ctx.session.rollback()  # an expiry found on the way was kept already
        return _approvals_page(request, visit, problem=problem, code=problem.status)
    ctx.done(None)
    word = "approved" if approve else "denied"
    return changed(
        request,
        f"{_base(visit)}/approvals",
        lambda: _approvals_page(request, visit, notice=f"Request {word}."),
    )


@router.post("/orgs/{org}/governance/approvals/{approval_id}/approve", name="approval.approved")
def approve(request: Request, approval_id: str, visit: OrgMember) -> Response:
    """As `POST /approvals/{id}/approve`: only an approver the policy names."""
    return _decide(request, visit, approval_id, approve=True)


@router.post("/orgs/{org}/governance/approvals/{approval_id}/deny", name="approval.denied")
def deny(request: Request, approval_id: str, visit: OrgMember) -> Response:
    return _decide(request, visit, approval_id, approve=False)


# ---- violations ----


def _moment(text: str, *, code: str) -> datetime | None:
    """A filter's time (`2026-12-07` or `2026-12-07T10:00`, UTC when no zone is given)."""
    if not text:
        return None
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise Unprocessable("A time filter is a date, or a date and time", code=code) from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


@router.get("/orgs/{org}/governance/violations")
def violations_page(
    request: Request,
    visit: GovernanceRead,
    policy: Annotated[str, Query(max_length=64)] = "",
    member: Annotated[str, Query(max_length=254)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """As `GET /orgs/{org}/violations`: by policy, member (id or email) and time."""
    session, org = visit.ctx.session, visit.current_org
    known = policies.org_policies(session, visit.principal, org.id)
    rows = violations.list_violations(
        session,
        visit.principal,
        org_id=org.id,
        policy_id=policy or None,
        member=member or None,
        since=_moment(since, code="invalid_since"),
        until=_moment(until, code="invalid_until"),
        limit=ROWS,
    )
    context = {
        "visit": visit,
        "org": org,
        "base": _base(visit),
        "violations": [violations.violation_out(v) for v in rows],
        "policy_names": {p.id: p.name for p in known},
        "policy_choices": [("", "Every policy")] + [(p.id, p.name) for p in known],
        "team_names": _team_names(visit),
        "emails": _emails(visit, {v.user_id for v in rows}),
        "filters": {"policy": policy, "member": member, "since": since, "until": until},
    }
    return render(request, "governance/violations.html", context, block="results")
