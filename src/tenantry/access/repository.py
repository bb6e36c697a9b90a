"""Every query of access control; each takes the tenant (org) explicitly, except the worker's
expiry scan, named `unscoped_…`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from tenantry.access.models import CustomRole, Grant, GrantTemplate
from tenantry.identity.models import ApiKey, User
from tenantry.kit.pagination import Page, PageRequest, paginate
from tenantry.tenancy.models import Invitation, OrgMembership, Team, TeamMembership

# ---- memberships (kept for callers of the foundation's API) ----


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


# ---- subjects and resources of an org ----


def member_by_ref(session: Session, *, org_id: str, ref: str) -> User | None:
    """A member of the org by user id or email; None for anyone else."""
    query = select(User).join(OrgMembership, OrgMembership.user_id == User.id)
    query = query.where(OrgMembership.org_id == org_id)
    if "@" in ref:
        query = query.where(User.email_normalized == ref.strip().lower())
    else:
        query = query.where(User.id == ref)
    return session.scalars(query).first()


def team_in_org(session: Session, *, org_id: str, team_id: str) -> Team | None:
    return session.scalars(select(Team).where(Team.org_id == org_id, Team.id == team_id)).first()


def live_api_key(session: Session, *, org_id: str, key_id: str, now: datetime) -> ApiKey | None:
    """A key of the org that still works (not revoked, not expired)."""
    key = session.scalars(
        select(ApiKey).where(ApiKey.org_id == org_id, ApiKey.id == key_id)
    ).first()
    if key is None or key.revoked_at is not None:
        return None
    if key.expires_at is not None and key.expires_at <= now:
        return None
    return key


def live_api_keys(
    session: Session, *, org_id: str, key_ids: Sequence[str], now: datetime
) -> list[ApiKey]:
    if not key_ids:
        return []
    keys = session.scalars(
        select(ApiKey).where(
            ApiKey.org_id == org_id, ApiKey.id.in_(list(key_ids)), ApiKey.revoked_at.is_(None)
        )
    )
    return [k for k in keys if k.expires_at is None or k.expires_at > now]


# ---- custom roles ----


def role_in_org(session: Session, *, org_id: str, ref: str) -> CustomRole | None:
    """A custom role by id or by name (names never start with `role_`)."""
    where = CustomRole.id == ref if ref.startswith("role_") else CustomRole.name == ref.lower()
    return session.scalars(select(CustomRole).where(CustomRole.org_id == org_id, where)).first()


def roles_of_org(session: Session, *, org_id: str, page: PageRequest) -> Page[CustomRole]:
    return paginate(
        session, select(CustomRole).where(CustomRole.org_id == org_id), CustomRole.id, page
    )


def all_roles_of_org(session: Session, *, org_id: str) -> list[CustomRole]:
    return list(
        session.scalars(
            select(CustomRole).where(CustomRole.org_id == org_id).order_by(CustomRole.id)
        )
    )


def role_name_taken(session: Session, *, org_id: str, name: str) -> bool:
    return (
        session.scalar(
            select(CustomRole.id).where(CustomRole.org_id == org_id, CustomRole.name == name)
        )
        is not None
    )


@dataclass(frozen=True)
class RoleHolders:
    """Who holds (or builds on) a custom role."""

    team_members: int
    grants: int
    templates: int
    invitations: int
    roles: list[str]  # ids of custom roles inheriting from it

    @property
    def total(self) -> int:
        return self.team_members + self.grants + self.templates + self.invitations + len(self.roles)

    def as_dict(self) -> dict[str, int]:
        return {
            "team_members": self.team_members,
            "grants": self.grants,
            "templates": self.templates,
            "invitations": self.invitations,
            "roles": len(self.roles),
        }


def _count(session: Session, column: object, *where: object) -> int:
    return int(session.scalar(select(func.count()).select_from(column).where(*where)) or 0)  # type: ignore[arg-type]


def holders_of(session: Session, *, org_id: str, role_id: str) -> RoleHolders:
    inheriting = [
        r.id for r in all_roles_of_org(session, org_id=org_id) if role_id in (r.inherits or [])
    ]
    return RoleHolders(
        team_members=_count(
            session, TeamMembership, TeamMembership.org_id == org_id, TeamMembership.role == role_id
        ),
        grants=_count(session, Grant, Grant.org_id == org_id, Grant.role == role_id),
        templates=_count(
            session, GrantTemplate, GrantTemplate.org_id == org_id, GrantTemplate.role == role_id
        ),
        invitations=_count(
            session,
            Invitation,
            Invitation.org_id == org_id,
            Invitation.role == role_id,
            Invitation.status == "pending",
        ),
        roles=inheriting,
    )


def move_holders(session: Session, *, org_id: str, role_id: str, to: str) -> None:
    """Every membership, grant, template and pending invitation holding `role_id` now holds `to`."""
    session.execute(
        update(TeamMembership)
        .where(TeamMembership.org_id == org_id, TeamMembership.role == role_id)
        .values(role=to)
    )
    session.execute(
        update(Grant).where(Grant.org_id == org_id, Grant.role == role_id).values(role=to)
    )
    session.execute(
        update(GrantTemplate)
        .where(GrantTemplate.org_id == org_id, GrantTemplate.role == role_id)
        .values(role=to)
    )
    session.execute(
        update(Invitation)
        .where(
            Invitation.org_id == org_id,
            Invitation.role == role_id,
            Invitation.status == "pending",
        )
        .values(role=to)
    )


# ---- grants ----


def grant_in_org(session: Session, *, org_id: str, grant_id: str) -> Grant | None:
    return session.scalars(
        select(Grant).where(Grant.org_id == org_id, Grant.id == grant_id)
    ).first()


def unscoped_grant(session: Session, grant_id: str) -> Grant | None:
    # Unscoped: `DELETE /grants/{id}` learns the org from the grant, then authorizes.
    return session.get(Grant, grant_id)


def grants_on(
    session: Session,
    *,
    org_id: str,
    resource_type: str,
    resource_id: str,
    subjects: Sequence[tuple[str, str]],
) -> dict[tuple[str, str], Grant]:
    """The grants on one resource to any of `subjects`, by subject."""
    found: dict[tuple[str, str], Grant] = {}
    ids_by_type: dict[str, list[str]] = {}
    for kind, ident in subjects:
        ids_by_type.setdefault(kind, []).append(ident)
    for kind, ids in ids_by_type.items():
        for start in range(0, len(ids), 500):
            rows = session.scalars(
                select(Grant).where(
                    Grant.org_id == org_id,
                    Grant.resource_type == resource_type,
                    Grant.resource_id == resource_id,
                    Grant.subject_type == kind,
                    Grant.subject_id.in_(ids[start : start + 500]),
                )
            )
            for grant in rows:
                found[(grant.subject_type, grant.subject_id)] = grant
    return found


@dataclass(frozen=True)
class GrantFilters:
    team_id: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    active_at: datetime | None = None  # only grants not expired at this time


def grants_of_org(
    session: Session, *, org_id: str, filters: GrantFilters, page: PageRequest
) -> Page[Grant]:
    query = select(Grant).where(Grant.org_id == org_id)
    if filters.team_id is not None:
        query = query.where(Grant.team_id == filters.team_id)
    if filters.subject_type is not None:
        query = query.where(Grant.subject_type == filters.subject_type)
    if filters.subject_id is not None:
        query = query.where(Grant.subject_id == filters.subject_id)
    if filters.resource_type is not None:
        query = query.where(Grant.resource_type == filters.resource_type)
    if filters.resource_id is not None:
        query = query.where(Grant.resource_id == filters.resource_id)
    if filters.active_at is not None:
        query = query.where((Grant.expires_at.is_(None)) | (Grant.expires_at > filters.active_at))
    return paginate(session, query, Grant.id, page)


def delete_grant(session: Session, *, org_id: str, grant_id: str) -> None:
    session.execute(delete(Grant).where(Grant.org_id == org_id, Grant.id == grant_id))


def unscoped_expired_unrecorded(session: Session, *, now: datetime, limit: int) -> list[Grant]:
    # Unscoped: the worker records expiries for every org at once.
    return list(
        session.scalars(
            select(Grant)
            .where(Grant.expires_at <= now, Grant.expiry_recorded_at.is_(None))
            .order_by(Grant.expires_at, Grant.id)
            .limit(limit)
        )
    )


def claim_expiry(session: Session, *, org_id: str, grant_id: str, now: datetime) -> bool:
    """Mark the grant's expiry recorded; False if another worker got there first."""
    result = session.execute(
        update(Grant)
        .where(
            Grant.org_id == org_id,
            Grant.id == grant_id,
            Grant.expiry_recorded_at.is_(None),
        )
        .values(expiry_recorded_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


# ---- templates ----


def template_in_org(session: Session, *, org_id: str, ref: str) -> GrantTemplate | None:
    column = GrantTemplate.id if ref.startswith("gtpl_") else GrantTemplate.name
    return session.scalars(
        select(GrantTemplate).where(GrantTemplate.org_id == org_id, column == ref)
    ).first()


def templates_of_org(session: Session, *, org_id: str, page: PageRequest) -> Page[GrantTemplate]:
    return paginate(
        session,
        select(GrantTemplate).where(GrantTemplate.org_id == org_id),
        GrantTemplate.id,
        page,
    )


def template_name_taken(session: Session, *, org_id: str, name: str) -> bool:
    return (
        session.scalar(
            select(GrantTemplate.id).where(
                GrantTemplate.org_id == org_id, GrantTemplate.name == name
            )
        )
        is not None
    )
