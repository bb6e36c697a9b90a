"""Membership reads that authorization needs; each takes the tenant explicitly."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tenantry.tenancy.models import OrgMembership, TeamMembership


def org_role_of(session: Session, *, org_id: str, user_id: str) -> str | None:
    return session.scalar(
        select(OrgMembership.role).where(
            OrgMembership.org_id == org_id, OrgMembership.user_id == user_id
        )
    )


def team_role_of(session: Session, *, org_id: str, team_id: str, user_id: str) -> str | None:
    return session.scalar(
        select(TeamMembership.role).where(
            TeamMembership.org_id == org_id,
            TeamMembership.team_id == team_id,
            TeamMembership.user_id == user_id,
        )
    )
