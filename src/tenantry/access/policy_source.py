"""The access domain's `PolicySource`: an org's memberships, team tree, custom roles and grants
read as plain data for `authz` to compile (columns only, no ORM objects: this is the cold path)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from sqlalchemy import and_, or_, select, text
from sqlalchemy.orm import Session

from tenantry.access.models import CustomRole, Grant
from tenantry.authz.catalog import OrgRole
from tenantry.authz.engine import CustomRoleData, GrantData, PolicyData, TeamData
from tenantry.tenancy.models import OrgMembership, Team, TeamMembership

# Settings key by which a team stops inheriting roles from its parent team.
INHERIT_SETTING: Final = "inherit_access"


def _org_roles(session: Session, org_id: str, user_id: str | None) -> dict[str, OrgRole]:
    query = select(OrgMembership.user_id, OrgMembership.role).where(OrgMembership.org_id == org_id)
    if user_id is not None:
        query = query.where(OrgMembership.user_id == user_id)
    return {
        user: OrgRole(role)
        for user, role in session.execute(query)
        if role in OrgRole._value2member_map_
    }


def _teams(session: Session, org_id: str) -> dict[str, TeamData]:
    return {
        team_id: TeamData(
            team_id,
            parent,
            (settings or {}).get(INHERIT_SETTING, True) is not False,
            private=bool(private),
        )
        for team_id, parent, settings, private in session.execute(
            select(Team.id, Team.parent_team_id, Team.settings, Team.private).where(
                Team.org_id == org_id
            )
        )
    }


def _team_roles(session: Session, org_id: str, user_id: str | None) -> dict[tuple[str, str], str]:
    query = select(TeamMembership.team_id, TeamMembership.user_id, TeamMembership.role).where(
        TeamMembership.org_id == org_id
    )
    if user_id is not None:
        query = query.where(TeamMembership.user_id == user_id)
    return {(team_id, user): role for team_id, user, role in session.execute(query)}


def _roles(session: Session, org_id: str) -> dict[str, CustomRoleData]:
    return {
        role_id: CustomRoleData(role_id, name, frozenset(perms or ()), tuple(inherits or ()))
        for role_id, name, perms, inherits in session.execute(
            select(
                CustomRole.id, CustomRole.name, CustomRole.permissions, CustomRole.inherits
            ).where(CustomRole.org_id == org_id)
        )
    }


def _grants(
    session: Session, org_id: str, subjects: list[tuple[str, str]] | None
) -> list[GrantData]:
    query = select(
        Grant.id,
        Grant.subject_type,
        Grant.subject_id,
        Grant.resource_type,
        Grant.resource_id,
        Grant.team_id,
        Grant.role,
        Grant.permissions,
        Grant.expires_at,
    ).where(Grant.org_id == org_id)
    if subjects is not None:
        # Served by the unique index (org_id, subject_type, subject_id, …).
        query = query.where(
            or_(
                *(
                    and_(Grant.subject_type == kind, Grant.subject_id == ident)
                    for kind, ident in subjects
                )
            )
        )
    return [
        GrantData(
            id=row.id,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            resource_type=row.resource_type,
            resource_id=row.resource_id,
            team_id=row.team_id,
            role=row.role,
            permissions=frozenset(row.permissions) if row.permissions is not None else None,
            expires_at=row.expires_at,
        )
        for row in session.execute(query)
    ]


def load_policy(session: Session, org_id: str) -> PolicyData:
    """The org's policy rows as plain data (columns only, no ORM objects: this is the cold path)."""
    return PolicyData(
        org_id=org_id,
        org_roles=_org_roles(session, org_id, None),
        teams=_teams(session, org_id),
        team_roles=_team_roles(session, org_id, None),
        roles=_roles(session, org_id),
        grants=_grants(session, org_id, None),
    )


# The slice of one principal, in one statement of indexed reads: the cold path of a request,
# where SQLAlchemy's per-statement work would cost more than the reads (each branch is served by
# an index; an OR across subject types would scan the org's grants). Rows are tagged by kind;
# every value is read as text (PostgreSQL's UNION needs one type per column) and typed below.
_SLICE_SQL = """
SELECT 'org_role', role, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM org_memberships WHERE org_id = :org AND user_id = :user
UNION ALL
SELECT 'team_role', team_id, role, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM team_memberships WHERE org_id = :org AND user_id = :user
UNION ALL
SELECT 'team', id, parent_team_id, TXT(settings), TXT(private), NULL, NULL, NULL, NULL, NULL
  FROM teams WHERE org_id = :org
UNION ALL
SELECT 'role', id, name, TXT(permissions), TXT(inherits), NULL, NULL, NULL, NULL, NULL
  FROM access_roles WHERE org_id = :org
UNION ALL
SELECT 'grant', id, subject_type, subject_id, resource_type, resource_id, team_id, role,
       TXT(permissions), TXT(expires_at)
  FROM access_grants WHERE org_id = :org AND subject_type = 'user' AND subject_id = :user
UNION ALL
SELECT 'grant', id, subject_type, subject_id, resource_type, resource_id, team_id, role,
       TXT(permissions), TXT(expires_at)
  FROM access_grants WHERE org_id = :org AND subject_type = 'api_key' AND subject_id = :key
UNION ALL
SELECT 'grant', id, subject_type, subject_id, resource_type, resource_id, team_id, role,
       TXT(permissions), TXT(expires_at)
  FROM access_grants WHERE org_id = :org AND subject_type = 'team' AND subject_id IN (
       SELECT team_id FROM team_memberships WHERE org_id = :org AND user_id = :user)
"""
_SLICE_QUERIES = {
    "sqlite": text(re.sub(r"TXT\((\w+)\)", r"\1", _SLICE_SQL)),
    "postgresql": text(re.sub(r"TXT\((\w+)\)", r"CAST(\1 AS TEXT)", _SLICE_SQL)),
}


def _json(value: str | None) -> Any:
    return orjson.loads(value) if value is not None else None


def _flag(value: str | int | None) -> bool:
    """A boolean read as text: SQLite's 1 or 0, PostgreSQL's 'true' or 'false'."""
    return str(value).lower() in ("1", "true", "t")


def _moment(value: str | None) -> datetime | None:
    """A timestamp read as text: SQLite's naive UTC text, or PostgreSQL's with an offset."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def load_principal_policy(
    session: Session, org_id: str, user_id: str, key_id: str | None
) -> PolicyData:
    """The part of the org's policy that can decide anything for one user (or their API key):
    their org role, the team tree, their team memberships, the custom roles, and the grants to
    them, to their teams and to the key — one statement, whatever the org's size."""
    org_roles: dict[str, OrgRole] = {}
    teams: dict[str, TeamData] = {}
    team_roles: dict[tuple[str, str], str] = {}
    roles: dict[str, CustomRoleData] = {}
    grants: list[GrantData] = []
    query = _SLICE_QUERIES[session.get_bind().dialect.name]
    rows = session.execute(query, {"org": org_id, "user": user_id, "key": key_id or ""})
    for kind, a, b, c, d, e, f, g, h, i in rows:
        if kind == "org_role":
            if a in OrgRole._value2member_map_:
                org_roles[user_id] = OrgRole(a)
        elif kind == "team_role":
            team_roles[(a, user_id)] = b
        elif kind == "team":
            inherits = (_json(c) or {}).get(INHERIT_SETTING, True) is not False
            teams[a] = TeamData(a, b, inherits, private=_flag(d))
        elif kind == "role":
            roles[a] = CustomRoleData(a, b, frozenset(_json(c) or ()), tuple(_json(d) or ()))
        else:
            permissions = _json(h)
            grants.append(
                GrantData(
                    id=a,
                    subject_type=b,
                    subject_id=c,
                    resource_type=d,
                    resource_id=e,
                    team_id=f,
                    role=g,
                    permissions=frozenset(permissions) if permissions is not None else None,
                    expires_at=_moment(i),
                )
            )
    return PolicyData(
        org_id=org_id,
        org_roles=org_roles,
        teams=teams,
        team_roles=team_roles,
        roles=roles,
        grants=grants,
    )


class AccessPolicySource:
    def load(self, session: Session, org_id: str) -> PolicyData:
        return load_policy(session, org_id)

    def load_principal(
        self, session: Session, org_id: str, user_id: str, key_id: str | None
    ) -> PolicyData:
        return load_principal_policy(session, org_id, user_id, key_id)
