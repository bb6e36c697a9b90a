"""Violations as recorded by admission: listed by policy, member, team and time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.governance import repository
from tenantry.governance.models import Violation
from tenantry.tenancy import scope as tenancy

MAX_LISTED = 500


def list_violations(
    session: Session,
    principal: Principal,
    *,
    org_id: str,
    team_ids: list[str] | None = None,
    policy_id: str | None = None,
    member: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[Violation]:
    authorize(
        session, principal, Permission.GOVERNANCE_READ,
        org_id=org_id, team_id=team_ids[0] if team_ids else None,
    )  # fmt: skip
    user_id = tenancy.resolve_member(session, org_id=org_id, ref=member).id if member else None
    return repository.violations_of(
        session,
        org_id=org_id,
        policy_id=policy_id,
        user_id=user_id,
        team_ids=team_ids,
        since=since,
        until=until,
        limit=min(limit, MAX_LISTED),
    )


def violation_out(row: Violation) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at,
        "policy_id": row.policy_id,
        "policy_version": row.policy_version,
        "team_id": row.team_id,
        "user_id": row.user_id,
        "api_key_id": row.api_key_id,
        "kind": row.kind,
        "action": row.action,
        "model": row.model,
        "values": row.values,
        "approval_id": row.approval_id,
    }
