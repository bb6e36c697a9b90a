"""SDK calls of governance (mixed into `tenantry.client.api.Api`); see that module's conventions.

Policies of an org and its teams (`create_policy`, `team_policy_action` for seed 001's body,
`update_policy`, `activate_policy`, `disable_policy`), data classification levels
(`classification_levels`, `set_classification_levels`), dry runs, explain, approvals and
violations; model access of an org, a team or an API key and its effective view.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tenantry.client._calls import API, Call, endpoint, fields, iso, model, segment
from tenantry.client.models import Result


class Policy(Result):
    id: str
    org_id: str
    team_id: str | None = None
    name: str
    description: str
    type: str
    status: str
    rules: dict[str, Any]
    exceptions: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    versions: list[dict[str, Any]] | None = None


class Policies(Result):
    policies: list[Policy]


class TeamGovernance(Result):
    team_id: str
    policies: list[Policy]
    config: dict[str, Any]
    approvals_pending: int
    audit: dict[str, Any] | None = None


class GovernanceConfig(Result):
    timezone: str
    settings: dict[str, Any]


class DryRun(Result):
    policy_id: str
    version: int
    changed: bool
    days: int
    since: datetime
    until: datetime
    calls: int
    would: dict[str, Any]
    by_member: dict[str, Any]
    by_model: dict[str, Any]
    by_day: dict[str, Any]


class Explained(Result):
    decision: str
    evaluated: int
    matched: list[dict[str, Any]]
    excepted: list[dict[str, Any]]
    values: dict[str, Any]
    policies_applicable: list[str]
    classification: dict[str, Any] | None = None
    model_access: dict[str, Any] | None = None


class ClassificationLevels(Result):
    org_id: str
    team_id: str | None = None
    defined_by: str | None = None
    levels: dict[str, dict[str, Any]]


class ModelAccess(Result):
    org_id: str
    scope: str
    subject_id: str
    configured: bool
    model_access: dict[str, bool]
    providers: dict[str, bool]
    rate_limits: dict[str, int | None]
    safety_settings: dict[str, Any] | None = None
    updated_at: datetime | None = None


class EffectiveModelAccess(Result):
    org_id: str
    team_id: str | None = None
    api_key_id: str | None = None
    layers: list[ModelAccess]
    models: dict[str, list[dict[str, Any]]]
    providers: dict[str, list[dict[str, Any]]]
    rate_limits: dict[str, dict[str, Any] | None]
    check: dict[str, Any] | None = None


class Approval(Result):
    id: str
    org_id: str
    team_id: str
    user_id: str | None = None
    api_key_id: str | None = None
    policy_ids: list[str]
    request: dict[str, Any]
    estimated_cost: str | None = None
    approvers: dict[str, Any]
    status: str
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    used_at: datetime | None = None


class Approvals(Result):
    approvals: list[Approval]


class Violation(Result):
    id: str
    at: datetime
    policy_id: str
    policy_version: int
    team_id: str
    user_id: str | None = None
    api_key_id: str | None = None
    kind: str
    action: str
    model: str | None = None
    values: dict[str, Any]
    approval_id: str | None = None


class Violations(Result):
    violations: list[Violation]


class GovernanceCalls:
    """Routes of governance, described once for both clients."""

    @endpoint
    def team_governance(self, team: str, *, include_audit: bool = False) -> Call[TeamGovernance]:
        params = fields(include="audit" if include_audit else None)
        return Call(
            "GET", f"{API}/teams/{segment(team)}/governance", model(TeamGovernance), params=params
        )

    @endpoint
    def team_policy_action(
        self, team: str, policy: dict[str, Any], *, action: str = "create_policy",
        policy_id: str | None = None,
    ) -> Call[Policy]:  # fmt: skip
        """Seed 001's `POST …/governance/policies`: `create_policy`, or `update_policy` of
        `policy_id`."""
        body = fields(action=action, policy=policy, policy_id=policy_id)
        return Call(
            "POST", f"{API}/teams/{segment(team)}/governance/policies", model(Policy), body=body
        )

    @endpoint
    def set_governance_config(
        self,
        team: str,
        *,
        timezone: str | None = None,
        data_classification: dict[str, Any] | None = None,
        compliance: dict[str, Any] | None = None,
        notifications: dict[str, Any] | None = None,
    ) -> Call[GovernanceConfig]:
        """A team's governance configuration: `timezone` and seed 001's sections."""
        return _set_config(
            f"teams/{segment(team)}", timezone, data_classification, compliance, notifications
        )

    @endpoint
    def set_org_governance_config(
        self,
        org: str,
        *,
        timezone: str | None = None,
        data_classification: dict[str, Any] | None = None,
        compliance: dict[str, Any] | None = None,
        notifications: dict[str, Any] | None = None,
    ) -> Call[GovernanceConfig]:
        """The org's governance configuration, which its teams inherit."""
        return _set_config(
            f"orgs/{segment(org)}", timezone, data_classification, compliance, notifications
        )

    @endpoint
    def classification_levels(self, org: str) -> Call[ClassificationLevels]:
        """The org's data classification levels with their categories and requirements."""
        return Call(
            "GET", f"{API}/orgs/{segment(org)}/governance/classification",
            model(ClassificationLevels),
        )  # fmt: skip

    @endpoint
    def set_classification_levels(
        self, org: str, levels: dict[str, Any]
    ) -> Call[ClassificationLevels]:
        """Replace the org's levels: `{name: {categories, handling_requirements}}`."""
        return Call(
            "PUT", f"{API}/orgs/{segment(org)}/governance/classification",
            model(ClassificationLevels), body={"levels": levels},
        )  # fmt: skip

    @endpoint
    def policies(self, org: str) -> Call[Policies]:
        return Call("GET", f"{API}/orgs/{segment(org)}/policies", model(Policies))

    @endpoint
    def create_policy(
        self,
        org: str,
        *,
        name: str,
        rules: dict[str, Any],
        type: str | None = None,
        description: str | None = None,
        status: str | None = None,
        exceptions: dict[str, Any] | None = None,
    ) -> Call[Policy]:
        """A policy of the whole org (a team's: `team_policy_action`)."""
        body = fields(
            name=name, rules=rules, type=type, description=description, status=status,
            exceptions=exceptions,
        )  # fmt: skip
        return Call("POST", f"{API}/orgs/{segment(org)}/policies", model(Policy), body=body)

    @endpoint
    def policy(self, policy_id: str) -> Call[Policy]:
        """A policy with every version it had."""
        return Call("GET", f"{API}/policies/{segment(policy_id)}", model(Policy))

    @endpoint
    def update_policy(
        self,
        policy_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        type: str | None = None,
        status: str | None = None,
        rules: dict[str, Any] | None = None,
        exceptions: dict[str, Any] | None = None,
    ) -> Call[Policy]:
        """Change a policy: a new version (what is left out stays)."""
        body = fields(
            name=name, description=description, type=type, status=status, rules=rules,
            exceptions=exceptions,
        )  # fmt: skip
        return Call("PATCH", f"{API}/policies/{segment(policy_id)}", model(Policy), body=body)

    @endpoint
    def activate_policy(self, policy_id: str) -> Call[Policy]:
        body = {"status": "active"}
        return Call("PATCH", f"{API}/policies/{segment(policy_id)}", model(Policy), body=body)

    @endpoint
    def disable_policy(self, policy_id: str) -> Call[Policy]:
        body = {"status": "disabled"}
        return Call("PATCH", f"{API}/policies/{segment(policy_id)}", model(Policy), body=body)

    @endpoint
    def dry_run_policy(
        self,
        policy_id: str,
        *,
        days: int = 30,
        rules: dict[str, Any] | None = None,
        exceptions: dict[str, Any] | None = None,
    ) -> Call[DryRun]:
        """What the policy (or these rules) would have done to the last `days` of calls."""
        body = fields(days=days, rules=rules, exceptions=exceptions)
        return Call(
            "POST", f"{API}/policies/{segment(policy_id)}/dry-run", model(DryRun), body=body
        )

    @endpoint
    def explain_governance(
        self,
        org: str,
        team: str,
        *,
        action: str | None = None,
        provider: str | None = None,
        model_name: str | None = None,
        estimate: dict[str, str] | None = None,
        data_classification: str | None = None,
        region: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> Call[Explained]:
        """What the policies would decide for this request of one's own, and why."""
        body = fields(
            team=team, action=action, provider=provider, model=model_name, estimate=estimate,
            data_classification=data_classification, region=region, tags=tags,
        )  # fmt: skip
        return Call(
            "POST", f"{API}/orgs/{segment(org)}/governance/explain", model(Explained), body=body
        )

    @endpoint
    def org_model_access(self, org: str) -> Call[ModelAccess]:
        return Call("GET", f"{API}/orgs/{segment(org)}/model-access", model(ModelAccess))

    @endpoint
    def set_org_model_access(
        self, org: str, *, model_access: dict[str, bool] | None = None,
        providers: dict[str, bool] | None = None, rate_limits: dict[str, int | None] | None = None,
        safety_settings: dict[str, Any] | None = None,
    ) -> Call[ModelAccess]:  # fmt: skip
        """Seed 003's `ai_configuration` for the org (replaces what was set)."""
        return _set_model_access(
            f"orgs/{segment(org)}", model_access, providers, rate_limits, safety_settings
        )

    @endpoint
    def team_model_access(self, team: str) -> Call[ModelAccess]:
        return Call("GET", f"{API}/teams/{segment(team)}/model-access", model(ModelAccess))

    @endpoint
    def set_team_model_access(
        self, team: str, *, model_access: dict[str, bool] | None = None,
        providers: dict[str, bool] | None = None, rate_limits: dict[str, int | None] | None = None,
        safety_settings: dict[str, Any] | None = None,
    ) -> Call[ModelAccess]:  # fmt: skip
        """A team's model access (for it and the teams under it; it can only narrow)."""
        return _set_model_access(
            f"teams/{segment(team)}", model_access, providers, rate_limits, safety_settings
        )

    @endpoint
    def api_key_model_access(self, org: str, key_id: str) -> Call[ModelAccess]:
        return Call(
            "GET",
            f"{API}/orgs/{segment(org)}/api-keys/{segment(key_id)}/model-access",
            model(ModelAccess),
        )

    @endpoint
    def set_api_key_model_access(
        self, org: str, key_id: str, *, model_access: dict[str, bool] | None = None,
        providers: dict[str, bool] | None = None, rate_limits: dict[str, int | None] | None = None,
        safety_settings: dict[str, Any] | None = None,
    ) -> Call[ModelAccess]:  # fmt: skip
        """An API key's model access, the narrowest layer."""
        return _set_model_access(
            f"orgs/{segment(org)}/api-keys/{segment(key_id)}", model_access, providers,
            rate_limits, safety_settings,
        )  # fmt: skip

    @endpoint
    def effective_model_access(
        self, org: str, *, team: str | None = None, api_key: str | None = None,
        model_name: str | None = None, provider: str | None = None,
    ) -> Call[EffectiveModelAccess]:  # fmt: skip
        """What applies to a request of `team` with `api_key`; with `model_name` or `provider`,
        whether it would be let through and by which rule."""
        params = fields(team=team, api_key=api_key, model=model_name, provider=provider)
        return Call(
            "GET",
            f"{API}/orgs/{segment(org)}/model-access/effective",
            model(EffectiveModelAccess),
            params=params,
        )

    @endpoint
    def violations(
        self,
        org: str,
        *,
        policy: str | None = None,
        member: str | None = None,
        team: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> Call[Violations]:
        params = fields(
            policy=policy, member=member, team=team, since=iso(since), until=iso(until),
            limit=limit,
        )  # fmt: skip
        return Call(
            "GET", f"{API}/orgs/{segment(org)}/violations", model(Violations), params=params
        )

    @endpoint
    def approvals(
        self, org: str, *, status: str | None = None, limit: int | None = None
    ) -> Call[Approvals]:
        params = fields(status=status, limit=limit)
        return Call("GET", f"{API}/orgs/{segment(org)}/approvals", model(Approvals), params=params)

    @endpoint
    def approval(self, approval_id: str) -> Call[Approval]:
        return Call("GET", f"{API}/approvals/{segment(approval_id)}", model(Approval))

    @endpoint
    def approve(self, approval_id: str, *, reason: str | None = None) -> Call[Approval]:
        return Call(
            "POST", f"{API}/approvals/{segment(approval_id)}/approve", model(Approval),
            body=fields(reason=reason),
        )  # fmt: skip

    @endpoint
    def deny_approval(self, approval_id: str, *, reason: str | None = None) -> Call[Approval]:
        return Call(
            "POST", f"{API}/approvals/{segment(approval_id)}/deny", model(Approval),
            body=fields(reason=reason),
        )  # fmt: skip


def _set_config(
    where: str,
    timezone: str | None,
    data_classification: dict[str, Any] | None,
    compliance: dict[str, Any] | None,
    notifications: dict[str, Any] | None,
) -> Call[GovernanceConfig]:
    """PUT of a team's or the org's governance configuration (the same body at either level)."""
    body = fields(
        timezone=timezone, data_classification=data_classification, compliance=compliance,
        notifications=notifications,
    )  # fmt: skip
    return Call("PUT", f"{API}/{where}/governance/config", model(GovernanceConfig), body=body)


def _set_model_access(
    where: str,
    model_access: dict[str, bool] | None,
    providers: dict[str, bool] | None,
    rate_limits: dict[str, int | None] | None,
    safety_settings: dict[str, Any] | None,
) -> Call[ModelAccess]:
    """PUT of an org's, a team's or a key's model access (the same body at every level)."""
    body = fields(
        model_access=model_access, providers=providers, rate_limits=rate_limits,
        safety_settings=safety_settings,
    )  # fmt: skip
    return Call("PUT", f"{API}/{where}/model-access", model(ModelAccess), body=body)
