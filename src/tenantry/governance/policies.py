"""Policies of an org and its teams: creating, changing (each change a new version whose audit
event holds the diff), activating and disabling; the governance configuration; the org's
active policies compiled and kept per version stamp."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize, is_in_org
from tenantry.governance import repository
from tenantry.governance.conditions import check_exceptions, check_rules
from tenantry.governance.engine import CompiledPolicy, compile_policy
from tenantry.governance.models import (
    GovernanceConfig,
    Policy,
    PolicyStatus,
    PolicyType,
    PolicyVersion,
)
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, NotFound, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.kit.stamps import stamped
from tenantry.tenancy import repository as tenancy_repository
from tenantry.tenancy import scope as tenancy

DEFAULT_TIMEZONE = "UTC"
MAX_POLICIES_PER_ORG = 1000


@dataclass(frozen=True)
class PolicySpec:
    """A policy as a request describes it; None: unchanged (on an update)."""

    name: str | None = None
    description: str | None = None
    type: str | None = None
    status: str | None = None
    rules: Mapping[str, Any] | None = None
    exceptions: Mapping[str, Any] | None = None


def snapshot(row: Policy) -> dict[str, Any]:
    return {
        "name": row.name,
        "description": row.description,
        "type": row.type,
        "status": row.status,
        "rules": row.rules,
        "exceptions": row.exceptions,
    }


def _diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: {"from": before.get(key), "to": after[key]}
        for key in after
        if before.get(key) != after[key]
    }


def _checked(spec: PolicySpec) -> dict[str, Any]:
    """The spec's fields as stored; 422 before anything is written."""
    out: dict[str, Any] = {}
    if spec.name is not None:
        name = spec.name.strip()
        if not 0 < len(name) <= 200:
            raise Unprocessable("A policy's name is 1 to 200 characters", code="invalid_name")
        out["name"] = name
    if spec.description is not None:
        if len(spec.description) > 2000:
            raise Unprocessable("A description is at most 2,000 characters", code="invalid_rule")
        out["description"] = spec.description
    if spec.type is not None:
        if spec.type not in PolicyType.__members__.values():
            kinds = ", ".join(t.value for t in PolicyType)
            raise Unprocessable(f"A policy's type is one of {kinds}", code="invalid_type")
        out["type"] = spec.type
    if spec.status is not None:
        if spec.status not in PolicyStatus.__members__.values():
            raise Unprocessable("status is draft, active or disabled", code="invalid_status")
        out["status"] = spec.status
    if spec.rules is not None:
        out["rules"] = check_rules(spec.rules)
    if spec.exceptions is not None:
        out["exceptions"] = check_exceptions(spec.exceptions)
    return out


def _record_version(ctx: Ctx, principal: Principal, row: Policy) -> None:
    ctx.session.add(
        PolicyVersion(
            org_id=row.org_id,
            policy_id=row.id,
            version=row.version,
            snapshot=snapshot(row),
            changed_by=principal.user_id,
            created_at=ctx.clock.now(),
        )
    )


def create_policy(
    ctx: Ctx, principal: Principal, *, org_id: str, team_id: str | None, spec: PolicySpec
) -> Policy:
    """A new policy of the org, or of `team_id` and the teams under it (draft unless the
    spec asks for another status)."""
    session = ctx.session
    authorize(session, principal, Permission.GOVERNANCE_MANAGE, org_id=org_id, team_id=team_id)
    if spec.name is None or spec.rules is None:
        raise Unprocessable("A policy has a name and rules", code="invalid_rule")
    values = _checked(spec)
    team = team_id or ""
    if repository.policy_named(session, org_id=org_id, team_id=team, name=values["name"]):
        raise Conflict("A policy of this name exists here", code="policy_exists")
    if len(repository.policies_of(session, org_id)) >= MAX_POLICIES_PER_ORG:
        raise Conflict("The org has as many policies as it may", code="too_many_policies")
    now = ctx.clock.now()
    row = Policy(
        id=new_id("pol"),
        org_id=org_id,
        team_id=team,
        name=values["name"],
        description=values.get("description", ""),
        type=values.get("type", PolicyType.CUSTOM.value),
        status=values.get("status", PolicyStatus.DRAFT.value),
        rules=values["rules"],
        exceptions=values.get("exceptions", {}),
        version=1,
        created_by=principal.user_id,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    _record_version(ctx, principal, row)
    session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org_id,
        team_id=team_id,
        target_type="policy",
        target_id=row.id,
        summary={"version": 1, "diff": _diff({}, snapshot(row))},
        action="policy.created",
    )
    return row


def find_policy(session: Session, principal: Principal, policy_id: str) -> Policy:
    """A policy the principal may see (404 otherwise, as if it did not exist)."""
    found = repository.policy(session, policy_id)
    if found is None or not is_in_org(session, principal, found.org_id):
        raise NotFound("Policy not found")
    if principal.kind == "api_key" and principal.key_team_id not in (None, found.team_id):
        raise NotFound("Policy not found")
    if found.team_id:
        try:
            tenancy.resolve_team_ref(session, principal, found.team_id)
        except NotFound:
            raise NotFound("Policy not found") from None
    tenancy.check_active(session, found.org_id)
    return found


def read_policy(session: Session, principal: Principal, policy_id: str) -> Policy:
    found = find_policy(session, principal, policy_id)
    authorize(
        session, principal, Permission.GOVERNANCE_READ,
        org_id=found.org_id, team_id=found.team_id or None,
    )  # fmt: skip
    return found


def update_policy(ctx: Ctx, principal: Principal, policy_id: str, spec: PolicySpec) -> Policy:
    """Change a policy: a new version, whose audit event holds what changed."""
    session = ctx.session
    found = find_policy(session, principal, policy_id)
    authorize(
        session, principal, Permission.GOVERNANCE_MANAGE,
        org_id=found.org_id, team_id=found.team_id or None,
    )  # fmt: skip
    values = _checked(spec)
    before = snapshot(found)
    if "name" in values and values["name"] != found.name:
        taken = repository.policy_named(
            session, org_id=found.org_id, team_id=found.team_id, name=values["name"]
        )
        if taken is not None:
            raise Conflict("A policy of this name exists here", code="policy_exists")
    diff = _diff(before, {**before, **values})
    if diff:
        for key, value in values.items():
            setattr(found, key, value)
        found.version += 1
        found.updated_at = ctx.clock.now()
        _record_version(ctx, principal, found)
        session.flush()
    audit.record(
        ctx,
        principal,
        org_id=found.org_id,
        team_id=found.team_id or None,
        target_type="policy",
        target_id=found.id,
        summary={"version": found.version, "diff": diff},
        action="policy.updated",
    )
    return found


def team_policies(session: Session, principal: Principal, team_ref: str) -> list[Policy]:
    """The policies that apply to a team: the org's, its own and those of the teams above."""
    team = tenancy.resolve_team_ref(session, principal, team_ref)
    authorize(session, principal, Permission.GOVERNANCE_READ, org_id=team.org_id, team_id=team.id)
    chain = tenancy_repository.team_ancestors(session, org_id=team.org_id, team_id=team.id)
    return repository.policies_of(session, team.org_id, team_ids=["", *chain])


def org_policies(session: Session, principal: Principal, org_id: str) -> list[Policy]:
    authorize(session, principal, Permission.GOVERNANCE_READ, org_id=org_id)
    return repository.policies_of(session, org_id)


def policy_versions(session: Session, row: Policy) -> list[dict[str, Any]]:
    return [
        {
            "version": v.version,
            "changed_by": v.changed_by,
            "created_at": v.created_at,
            **v.snapshot,
        }
        for v in repository.versions_of(session, org_id=row.org_id, policy_id=row.id)
    ]


# ---- configuration ----


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Unprocessable(f"Unknown time zone {name!r}", code="invalid_timezone") from None
    return name


def config_of(session: Session, *, org_id: str, team_id: str) -> dict[str, Any]:
    row = repository.config(session, org_id=org_id, team_id=team_id)
    org_row = repository.config(session, org_id=org_id, team_id="") if team_id else None
    chosen = row or org_row
    timezone = chosen.timezone if chosen is not None else DEFAULT_TIMEZONE
    return {"timezone": timezone, "settings": row.settings if row else {}}


def set_config(
    ctx: Ctx,
    principal: Principal,
    *,
    org_id: str,
    team_id: str,
    timezone: str | None,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """Seed 001's `PUT …/governance/config`: the settings kept as sent, and the time zone
    conditions read the time of day in (a team's, else the org's, else UTC)."""
    session = ctx.session
    authorize(
        session, principal, Permission.GOVERNANCE_MANAGE, org_id=org_id, team_id=team_id or None
    )
    if timezone is not None:
        check_timezone(timezone)
    row = repository.config(session, org_id=org_id, team_id=team_id)
    before = {"timezone": row.timezone, "settings": row.settings} if row else {}
    if row is None:
        row = GovernanceConfig(
            org_id=org_id, team_id=team_id, timezone=timezone or DEFAULT_TIMEZONE, settings={}
        )
        session.add(row)
    if timezone is not None:
        row.timezone = timezone
    row.settings = dict(settings)
    row.updated_at = ctx.clock.now()
    session.flush()
    after = {"timezone": row.timezone, "settings": row.settings}
    audit.record(
        ctx,
        principal,
        org_id=org_id,
        team_id=team_id or None,
        target_type="governance_config",
        target_id=team_id or org_id,
        summary={"changed": sorted(k for k in after if before.get(k) != after[k])},
        action="governance.config_updated",
    )
    return config_of(session, org_id=org_id, team_id=team_id)


# ---- compiled, per version stamp ----


@dataclass(frozen=True)
class OrgPolicies:
    policies: tuple[CompiledPolicy, ...]
    timezones: Mapping[str, str]  # team id ("" the org) -> time zone

    def timezone_for(self, chain: tuple[str, ...]) -> str:
        for team_id in (*chain, ""):
            if team_id in self.timezones:
                return self.timezones[team_id]
        return DEFAULT_TIMEZONE


def compiled(row: Policy) -> CompiledPolicy:
    return compile_policy(
        id=row.id,
        name=row.name,
        version=row.version,
        team_id=row.team_id,
        rules=row.rules,
        exceptions=row.exceptions,
    )


def org_policies_compiled(session: Session, org_id: str) -> OrgPolicies:
    """The org's active policies, compiled once per process and version stamp (a policy or
    configuration changed anywhere bumps it)."""
    return stamped(
        session,
        org_id,
        "governance.policies",
        lambda: OrgPolicies(
            tuple(compiled(p) for p in repository.active_policies(session, org_id)),
            repository.timezones(session, org_id),
        ),
    )
