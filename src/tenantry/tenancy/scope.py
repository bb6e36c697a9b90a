"""Resolvers: a reference (an org's id or slug, a team's id, a member's id or email) turned into
the row it names, answering 404 outside the principal's tenants. Other domains and the HTTP layer
resolve scopes here, never through tenancy's service."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from tenantry.authz.principal import Principal
from tenantry.authz.service import is_in_org, sees_team
from tenantry.identity.models import User
from tenantry.kit.errors import Forbidden, NotFound
from tenantry.kit.stamps import stamped
from tenantry.tenancy import repository
from tenantry.tenancy.models import Organization, OrgStatus, Team


def check_active(session: Session, org_id: str, *, status: str | None = None) -> None:
    """403 `tenant_suspended` when an operator suspended the org: its members' sessions and its
    API keys are refused on everything scoped to it. The status is a deciding column of the
    org's version stamp, so the hot paths read it from what the process keeps under it."""
    if status is None:
        status = stamped(
            session, org_id, "status", lambda: repository.unscoped_org_status(session, org_id)
        )
    if status == OrgStatus.SUSPENDED:
        raise Forbidden(
            "This organization is suspended; its operator can reactivate it",
            code="tenant_suspended",
            org_id=org_id,
        )


def resolve_org(session: Session, principal: Principal, ref: str) -> Organization:
    org = repository.unscoped_org_by_ref(session, ref)
    if org is None or not is_in_org(session, principal, org.id):
        raise NotFound("Organization not found")
    check_active(session, org.id, status=org.status)
    return org


def resolve_team(session: Session, principal: Principal, team_id: str) -> Team:
    team = repository.unscoped_team(session, team_id)
    if team is None or not is_in_org(session, principal, team.org_id):
        raise NotFound("Team not found")
    if principal.kind == "api_key" and principal.key_team_id not in (None, team.id):
        raise NotFound("Team not found")
    if not sees_team(session, principal, org_id=team.org_id, team_id=team.id):
        raise NotFound("Team not found")  # a private team, to someone outside it
    check_active(session, team.org_id)
    return team


@dataclass(frozen=True)
class TeamRef:
    """A team known to be the principal's to name: its id and its org."""

    id: str
    org_id: str


def resolve_team_ref(session: Session, principal: Principal, team_id: str) -> TeamRef:
    """`resolve_team` without loading the row (the same 404s), for the hot paths. An API key
    is of one org, and a team made in or removed from it bumps that org's version stamp: the
    answer is kept under it, and only a key's first use of a team reads it."""
    if principal.key_org_id is not None:
        org_id = stamped(
            session,
            principal.key_org_id,
            f"team:{team_id}",
            lambda: repository.unscoped_team_org(session, team_id),
        )
    else:
        org_id = repository.unscoped_team_org(session, team_id)
    if org_id is None or not is_in_org(session, principal, org_id):
        raise NotFound("Team not found")
    if principal.kind == "api_key" and principal.key_team_id not in (None, team_id):
        raise NotFound("Team not found")
    if not sees_team(session, principal, org_id=org_id, team_id=team_id):
        raise NotFound("Team not found")
    check_active(session, org_id)
    return TeamRef(team_id, org_id)


def resolve_member(session: Session, *, org_id: str, ref: str) -> User:
    user = repository.user_by_ref(session, ref)
    if user is None or repository.org_membership(session, org_id=org_id, user_id=user.id) is None:
        raise NotFound("Member not found")
    return user


MAINTENANCE_BATCH = 500


def orgs_for_maintenance(session: Session, org_ids: list[str]) -> dict[str, Organization]:
    """Orgs by id for background work that acts for the system, not for a principal."""
    found: dict[str, Organization] = {}
    for start in range(0, len(org_ids), MAINTENANCE_BATCH):
        found |= repository.unscoped_orgs_by_ids(
            session, org_ids[start : start + MAINTENANCE_BATCH]
        )
    return found


def org_terms(session: Session, org_ids: list[str]) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """Each org's plan and settings, by id, for the audit trail's retention job."""
    return {
        org_id: (org.plan, org.settings or {})
        for org_id, org in orgs_for_maintenance(session, org_ids).items()
    }
