"""HTTP routes of governance: policies of an org and of its teams (seed 001's
`/teams/{team}/governance` routes as written, and plain ones), dry runs, explain, approval
requests and violations.

Every change of a policy or of the configuration writes one audit event (holding the diff), as
does every decision on an approval request. Dry runs and explain write nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.governance import (
    approvals,
    classification,
    dryrun,
    evaluation,
    model_access,
    policies,
    violations,
)
from tenantry.governance.models import Policy
from tenantry.governance.schemas import (
    ApprovalOut,
    ApprovalsOut,
    ClassificationOut,
    ConfigOut,
    DataClassificationIn,
    DecisionIn,
    DryRunIn,
    DryRunOut,
    EffectiveModelAccessOut,
    ExplainIn,
    ExplainOut,
    GovernanceConfigIn,
    GovernanceOut,
    ModelAccessIn,
    ModelAccessOut,
    PoliciesOut,
    PolicyActionIn,
    PolicyIn,
    PolicyOut,
    PolicyPatchIn,
    ViolationsOut,
)
from tenantry.http.auth import OrgScope, PrincipalDep, TeamScope, org_scope, team_scope
from tenantry.http.body import JsonBodyRoute
from tenantry.http.work import CtxDep
from tenantry.identity import repository as identity_repository
from tenantry.kit.context import Ctx, reads_only
from tenantry.kit.errors import NotFound, Unprocessable
from tenantry.tenancy import repository as tenancy_repository
from tenantry.tenancy import scope as tenancy

router = APIRouter(prefix="/api/v1", route_class=JsonBodyRoute)

TeamRead = Annotated[TeamScope, Depends(team_scope(Permission.GOVERNANCE_READ))]
TeamManage = Annotated[TeamScope, Depends(team_scope(Permission.GOVERNANCE_MANAGE))]
OrgRead = Annotated[OrgScope, Depends(org_scope(Permission.GOVERNANCE_READ))]
OrgManage = Annotated[OrgScope, Depends(org_scope(Permission.GOVERNANCE_MANAGE))]
LimitQ = Annotated[int, Query(ge=1, le=500)]


def _policy_out(row: Policy, versions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "org_id": row.org_id,
        "team_id": row.team_id or None,
        "name": row.name,
        "description": row.description,
        "type": row.type,
        "status": row.status,
        "rules": row.rules,
        "exceptions": row.exceptions,
        "version": row.version,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "versions": versions,
    }


def _spec(body: PolicyIn | PolicyPatchIn) -> policies.PolicySpec:
    return policies.PolicySpec(
        name=body.name,
        description=body.description,
        type=body.type,
        status=body.status,
        rules=body.rules,
        exceptions=body.exceptions,
    )


# ---- seed 001: a team's governance ----


@router.get("/teams/{team}/governance", response_model=GovernanceOut, tags=["governance"])
def team_governance(
    scope: TeamRead,
    include: Annotated[str | None, Query(description="`audit`: the latest violations")] = None,
) -> dict[str, Any]:
    """The policies that apply to the team (the org's, its own and those of the teams above
    it), its configuration and pending approvals; `?include=audit` adds the latest violations."""
    ctx, team = scope.ctx, scope.team
    if include not in (None, "audit"):
        raise Unprocessable("include is `audit`", code="invalid_include")
    rows = policies.team_policies(ctx.session, scope.principal, team.id)
    pending = approvals.pending_of_team(
        ctx.session, org_id=team.org_id, team_id=team.id, now=ctx.clock.now()
    )
    out: dict[str, Any] = {
        "team_id": team.id,
        "policies": [_policy_out(r) for r in rows],
        "config": policies.config_of(ctx.session, org_id=team.org_id, team_id=team.id),
        "approvals_pending": pending,
    }
    if include == "audit":
        chain = tenancy_repository.team_ancestors(ctx.session, org_id=team.org_id, team_id=team.id)
        found = violations.list_violations(
            ctx.session, scope.principal, org_id=team.org_id, team_ids=[team.id]
        )
        out["audit"] = {
            "violations": [violations.violation_out(v) for v in found],
            "inherited_from": chain[1:],
        }
    return out


@router.post(
    "/teams/{team}/governance/policies",
    name="policy.created",
    status_code=201,
    response_model=PolicyOut,
    tags=["governance"],
)
def team_policy_action(body: PolicyActionIn, scope: TeamManage) -> Response:
    """Seed 001's body: `create_policy` makes a policy of the team (and the teams under it);
    `update_policy` with `policy_id` changes one (a new version)."""
    ctx, team = scope.ctx, scope.team
    if body.action == "create_policy":
        row = policies.create_policy(
            ctx, scope.principal, org_id=team.org_id, team_id=team.id, spec=_spec(body.policy)
        )
        return ctx.done(PolicyOut.model_validate(_policy_out(row)), status=201)
    if body.policy_id is None:
        raise Unprocessable("update_policy names its policy_id", code="policy_id_required")
    row = policies.update_policy(ctx, scope.principal, body.policy_id, _spec(body.policy))
    return ctx.done(PolicyOut.model_validate(_policy_out(row)), status=201)


@router.put(
    "/teams/{team}/governance/config",
    name="governance.config_updated",
    response_model=ConfigOut,
    tags=["governance"],
)
def set_team_config(body: GovernanceConfigIn, scope: TeamManage) -> Response:
    """Seed 001's configuration of a team, kept as sent; `timezone` (IANA) sets the time zone
    the policies' time conditions and time-window exceptions read."""
    ctx, team = scope.ctx, scope.team
    out = policies.set_config(
        ctx, scope.principal, org_id=team.org_id, team_id=team.id,
        timezone=body.timezone, settings=body.settings(),
    )  # fmt: skip
    return ctx.done(ConfigOut.model_validate(out))


@router.put(
    "/orgs/{org}/governance/config",
    name="governance.config_updated",
    response_model=ConfigOut,
    tags=["governance"],
)
def set_org_config(body: GovernanceConfigIn, scope: OrgManage) -> Response:
    """The org's governance configuration: its time zone is every team's without one."""
    ctx = scope.ctx
    out = policies.set_config(
        ctx, scope.principal, org_id=scope.org.id, team_id="",
        timezone=body.timezone, settings=body.settings(),
    )  # fmt: skip
    return ctx.done(ConfigOut.model_validate(out))


# ---- data classification ----


@router.get(
    "/orgs/{org}/governance/classification",
    response_model=ClassificationOut,
    tags=["governance"],
)
def org_classification(scope: OrgRead) -> dict[str, Any]:
    """The org's data classification levels, each with its categories and handling
    requirements; the default levels (public, internal, confidential, restricted) when the org
    set none."""
    return classification.read_levels(scope.ctx.session, scope.principal, org_id=scope.org.id)


@router.put(
    "/orgs/{org}/governance/classification",
    name="governance.classification_updated",
    response_model=ClassificationOut,
    tags=["governance"],
)
def set_org_classification(body: DataClassificationIn, scope: OrgManage) -> Response:
    """Replace the org's levels (seed 001's `data_classification`: `{"levels": {name:
    {categories, handling_requirements}}}`); the org's other governance settings stay. An
    unknown requirement or a value of the wrong type is refused (422) and nothing is saved."""
    ctx = scope.ctx
    out = classification.set_levels(ctx, scope.principal, org_id=scope.org.id, levels=body)
    return ctx.done(ClassificationOut.model_validate(out))


# ---- policies ----


@router.get("/orgs/{org}/policies", response_model=PoliciesOut, tags=["governance"])
def org_policies(scope: OrgRead) -> dict[str, Any]:
    """Every policy of the org and of its teams."""
    rows = policies.org_policies(scope.ctx.session, scope.principal, scope.org.id)
    return {"policies": [_policy_out(r) for r in rows]}


@router.post(
    "/orgs/{org}/policies",
    name="policy.created",
    status_code=201,
    response_model=PolicyOut,
    tags=["governance"],
)
def create_org_policy(body: PolicyIn, scope: OrgManage) -> Response:
    """A policy of the whole org (draft unless `status` says otherwise)."""
    row = policies.create_policy(
        scope.ctx, scope.principal, org_id=scope.org.id, team_id=None, spec=_spec(body)
    )
    return scope.ctx.done(PolicyOut.model_validate(_policy_out(row)), status=201)


@router.get("/policies/{policy_id}", response_model=PolicyOut, tags=["governance"])
def show_policy(policy_id: str, ctx: CtxDep, principal: PrincipalDep) -> dict[str, Any]:
    """A policy with every version it had."""
    row = policies.read_policy(ctx.session, principal, policy_id)
    return _policy_out(row, policies.policy_versions(ctx.session, row))


@router.patch(
    "/policies/{policy_id}", name="policy.updated", response_model=PolicyOut, tags=["governance"]
)
def update_policy(
    policy_id: str, body: PolicyPatchIn, ctx: CtxDep, principal: PrincipalDep
) -> Response:
    """Change a policy (`{"status": "active"}` activates it): a new version; the audit event
    holds the diff."""
    row = policies.update_policy(ctx, principal, policy_id, _spec(body))
    return ctx.done(PolicyOut.model_validate(_policy_out(row)))


@router.post(
    "/policies/{policy_id}/dry-run",
    name="policy.dry_run",
    response_model=DryRunOut,
    tags=["governance"],
)
def dry_run_policy(
    policy_id: str, body: DryRunIn, ctx: CtxDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Replay the policy (or `rules`/`exceptions` it would get) over the org's recorded LLM
    calls of the last `days`: what it would have denied, sent for approval or logged, by
    member, model and day, with the cost. Writes nothing."""
    return dryrun.dry_run(
        ctx, principal, policy_id, days=body.days, rules=body.rules, exceptions=body.exceptions
    )


@router.post(
    "/orgs/{org}/governance/explain",
    name="governance.explained",
    response_model=ExplainOut,
    tags=["governance"],
)
@reads_only
def explain(
    body: ExplainIn, ctx: CtxDep, principal: PrincipalDep, org: str, request: Request
) -> dict[str, Any]:
    """What the policies would decide for this request by the caller now, and why ("why was I
    refused?"): every policy that matched with the values it saw, the exceptions that applied,
    and what the request's data classification level asks (`classification`; an unknown level
    is a 422, as in admission). Anyone who may name the team may ask about their own request.
    Writes nothing."""
    found = tenancy.resolve_org(ctx.session, principal, org)
    team = tenancy.resolve_team_ref(ctx.session, principal, body.team)
    if team.org_id != found.id:
        raise Unprocessable("The team is not of this org", code="team_not_in_org")
    ask = evaluation.Ask(
        principal, team, body.action, body.provider, body.model, body.estimate,
        {"data_classification": body.data_classification, "region": body.region,
         "tags": dict(body.tags), "tls": request.url.scheme == "https"},
        ctx.clock.now(),
    )  # fmt: skip
    out = evaluation.explain(ctx.session, principal, ask)
    access = model_access.explain(
        ctx.session, org_id=team.org_id, team_id=team.id, api_key_id=principal.api_key_id,
        provider=body.provider, model=body.model, estimate=body.estimate, now=ask.now,
    )  # fmt: skip
    # Model access is checked before policies in admission: its refusal is the answer.
    if access["decision"] == "deny":
        out["decision"] = "deny"
    return {**out, "model_access": access}


# ---- violations ----


@router.get("/orgs/{org}/violations", response_model=ViolationsOut, tags=["governance"])
def org_violations(
    scope: OrgRead,
    policy: Annotated[str | None, Query(max_length=64)] = None,
    member: Annotated[str | None, Query(max_length=254)] = None,
    team: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: LimitQ = 100,
) -> dict[str, Any]:
    """Denials, approval requests and `log` matches, newest first; by policy, member, team and
    time."""
    session = scope.ctx.session
    team_ids = None
    if team is not None:
        team_ids = [tenancy.resolve_team_ref(session, scope.principal, team).id]
    rows = violations.list_violations(
        session, scope.principal, org_id=scope.org.id, team_ids=team_ids, policy_id=policy,
        member=member, since=since, until=until, limit=limit,
    )  # fmt: skip
    return {"violations": [violations.violation_out(v) for v in rows]}


# ---- approvals ----


@router.get("/orgs/{org}/approvals", response_model=ApprovalsOut, tags=["governance"])
def org_approvals(
    scope: OrgRead,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: LimitQ = 100,
) -> dict[str, Any]:
    """Approval requests of the org, newest first (status as of now: past their time, they
    are expired)."""
    ctx = scope.ctx
    rows = approvals.list_approvals(
        ctx, scope.principal, org_id=scope.org.id, status=status, limit=limit
    )
    now = ctx.clock.now()
    return {"approvals": [approvals.approval_out(r, now) for r in rows]}


@router.get("/approvals/{approval_id}", response_model=ApprovalOut, tags=["governance"])
def show_approval(approval_id: str, ctx: CtxDep, principal: PrincipalDep) -> dict[str, Any]:
    """An approval request: for its requester, its approvers and the team's governance
    readers."""
    row = approvals.read_approval(ctx, principal, approval_id)
    return approvals.approval_out(row, ctx.clock.now())


def _decide(
    approval_id: str, body: DecisionIn | None, ctx: Ctx, principal: Principal, *, approve: bool
) -> Response:
    row = approvals.decide(
        ctx, principal, approval_id, approve=approve, reason=body.reason if body else None
    )
    return ctx.done(ApprovalOut.model_validate(approvals.approval_out(row, ctx.clock.now())))


@router.post(
    "/approvals/{approval_id}/approve",
    name="approval.approved",
    response_model=ApprovalOut,
    tags=["governance"],
)
def approve(
    approval_id: str, ctx: CtxDep, principal: PrincipalDep, body: DecisionIn | None = None
) -> Response:
    """Approve a pending request (only an approver the policy names; 403 otherwise). The
    requester retries the admission with `approval_id`, once."""
    return _decide(approval_id, body, ctx, principal, approve=True)


@router.post(
    "/approvals/{approval_id}/deny",
    name="approval.denied",
    response_model=ApprovalOut,
    tags=["governance"],
)
def deny(
    approval_id: str, ctx: CtxDep, principal: PrincipalDep, body: DecisionIn | None = None
) -> Response:
    """Deny a pending request (only an approver the policy names; 403 otherwise)."""
    return _decide(approval_id, body, ctx, principal, approve=False)


# ---- model access (seed 003's `ai_configuration`) ----


def _access_spec(body: ModelAccessIn) -> model_access.AccessSpec:
    return model_access.AccessSpec(
        models=body.model_access,
        providers=body.providers,
        limits=body.rate_limits.model_dump(),
        safety_settings=body.safety_settings,
    )


def _api_key_id(ctx: Ctx, org_id: str, key_id: str) -> str:
    if identity_repository.api_key_in_org(ctx.session, org_id=org_id, key_id=key_id) is None:
        raise NotFound("API key not found")
    return key_id


@router.get("/orgs/{org}/model-access", response_model=ModelAccessOut, tags=["governance"])
def org_model_access(scope: OrgRead) -> dict[str, Any]:
    """The org's model access: the models and providers it allows or denies, its rate limits."""
    return model_access.access_of(
        scope.ctx.session, scope.principal, org_id=scope.org.id, scope="org", subject_id=""
    )


@router.put(
    "/orgs/{org}/model-access",
    name="model_access.org_updated",
    response_model=ModelAccessOut,
    tags=["governance"],
)
def set_org_model_access(body: ModelAccessIn, scope: OrgManage) -> Response:
    """Seed 003's `ai_configuration` for the whole org (replaces what was set): `model_access`
    and `providers` map names or patterns (`gpt-4*`, `openai/*`) to true (allow) or false
    (deny); `rate_limits` counts every request of the org."""
    ctx = scope.ctx
    out = model_access.set_access(
        ctx,
        scope.principal,
        org_id=scope.org.id,
        scope="org",
        subject_id="",
        spec=_access_spec(body),
    )
    return ctx.done(ModelAccessOut.model_validate(out))


@router.get("/teams/{team}/model-access", response_model=ModelAccessOut, tags=["governance"])
def team_model_access(scope: TeamRead) -> dict[str, Any]:
    """The team's own model access (the org's and its parents' apply too: see `effective`)."""
    team = scope.team
    return model_access.access_of(
        scope.ctx.session, scope.principal, org_id=team.org_id, scope="team", subject_id=team.id
    )


@router.put(
    "/teams/{team}/model-access",
    name="model_access.team_updated",
    response_model=ModelAccessOut,
    tags=["governance"],
)
def set_team_model_access(body: ModelAccessIn, scope: TeamManage) -> Response:
    """The team's model access, for it and the teams under it: it can only narrow what the org
    and the teams above allow (each layer must allow a request; every limit holds)."""
    ctx, team = scope.ctx, scope.team
    out = model_access.set_access(
        ctx, scope.principal, org_id=team.org_id, scope="team", subject_id=team.id,
        spec=_access_spec(body),
    )  # fmt: skip
    return ctx.done(ModelAccessOut.model_validate(out))


@router.get(
    "/orgs/{org}/api-keys/{key_id}/model-access",
    response_model=ModelAccessOut,
    tags=["governance"],
)
def api_key_model_access(key_id: str, scope: OrgRead) -> dict[str, Any]:
    """An API key's own model access."""
    ctx = scope.ctx
    subject = _api_key_id(ctx, scope.org.id, key_id)
    return model_access.access_of(
        ctx.session, scope.principal, org_id=scope.org.id, scope="api_key", subject_id=subject
    )


@router.put(
    "/orgs/{org}/api-keys/{key_id}/model-access",
    name="model_access.api_key_updated",
    response_model=ModelAccessOut,
    tags=["governance"],
)
def set_api_key_model_access(key_id: str, body: ModelAccessIn, scope: OrgManage) -> Response:
    """An API key's model access: the narrowest layer, under its org's and its team's."""
    ctx = scope.ctx
    subject = _api_key_id(ctx, scope.org.id, key_id)
    out = model_access.set_access(
        ctx, scope.principal, org_id=scope.org.id, scope="api_key", subject_id=subject,
        spec=_access_spec(body),
    )  # fmt: skip
    return ctx.done(ModelAccessOut.model_validate(out))


@router.get(
    "/orgs/{org}/model-access/effective",
    response_model=EffectiveModelAccessOut,
    tags=["governance"],
)
def effective_model_access(
    scope: OrgRead,
    team: Annotated[str | None, Query(max_length=64)] = None,
    api_key: Annotated[str | None, Query(max_length=64)] = None,
    model: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    provider: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> dict[str, Any]:
    """What applies to a request of `team` with `api_key` (either may be left out): every layer,
    every pattern and the narrowest of each limit with the scope that set it; with `model` or
    `provider`, whether such a request would be let through and by which rule."""
    ctx, org_id = scope.ctx, scope.org.id
    team_id = None
    key_id = _api_key_id(ctx, org_id, api_key) if api_key else None
    if team is not None:
        found = tenancy.resolve_team_ref(ctx.session, scope.principal, team)
        if found.org_id != org_id:
            raise NotFound("Team not found")
        team_id = found.id
    elif key_id is not None:
        key = identity_repository.api_key_in_org(ctx.session, org_id=org_id, key_id=key_id)
        team_id = key.team_id if key is not None else None
    view = model_access.effective(ctx.session, org_id=org_id, team_id=team_id, api_key_id=key_id)
    check = None
    if model is not None or provider is not None:
        check = model_access.explain(
            ctx.session, org_id=org_id, team_id=team_id, api_key_id=key_id, provider=provider,
            model=model, estimate={}, now=ctx.clock.now(),
        )  # fmt: skip
    return {
        **view,
        "org_id": org_id,
        "team_id": team_id,
        "api_key_id": key_id,
        "layers": [model_access.layer_out(layer, ctx.session) for layer in view["layers"]],
        "check": check,
    }
