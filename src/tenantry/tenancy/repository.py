"""Every query of tenancy, each scoped to an org (or, for a user's own list, to that user)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.orm import Session

from tenantry.identity.models import User
from tenantry.kit.pagination import Page, PageRequest, paginate
from tenantry.tenancy.models import (
    Invitation,
    InvitationStatus,
    Organization,
    OrgMembership,
    OrgSecurityPolicy,
    Team,
    TeamMembership,
)


def unscoped_org_by_ref(session: Session, ref: str) -> Organization | None:
    # Unscoped: resolves a path's org id or slug; the caller then checks the principal's standing.
    if ref.startswith("org_"):
        return session.get(Organization, ref)
    return session.scalars(select(Organization).where(Organization.slug == ref.lower())).first()


def slug_taken(session: Session, slug: str) -> bool:
    return session.scalar(select(Organization.id).where(Organization.slug == slug)) is not None


def slugs_like(session: Session, base: str) -> set[str]:
    return set(
        session.scalars(
            select(Organization.slug).where(Organization.slug.startswith(base, autoescape=True))
        )
    )


def orgs_of_user(
    session: Session, *, user_id: str, page: PageRequest, only_org_id: str | None = None
) -> Page[Organization]:
    query = (
        select(Organization)
        .join(OrgMembership, OrgMembership.org_id == Organization.id)
        .where(OrgMembership.user_id == user_id)
    )
    if only_org_id is not None:
        query = query.where(Organization.id == only_org_id)
    return paginate(session, query, Organization.id, page)


def memberships_of_user(
    session: Session, *, user_id: str
) -> list[tuple[OrgMembership, Organization]]:
    rows = session.execute(
        select(OrgMembership, Organization)
        .join(Organization, Organization.id == OrgMembership.org_id)
        .where(OrgMembership.user_id == user_id)
        .order_by(Organization.id)
    )
    return [(m, o) for m, o in rows.all()]


def team_memberships_of_user(
    session: Session, *, user_id: str
) -> list[tuple[TeamMembership, Team]]:
    rows = session.execute(
        select(TeamMembership, Team)
        .join(Team, Team.id == TeamMembership.team_id)
        .where(TeamMembership.user_id == user_id)
        .order_by(Team.id)
    )
    return [(m, t) for m, t in rows.all()]


def org_membership(session: Session, *, org_id: str, user_id: str) -> OrgMembership | None:
    return session.scalars(
        select(OrgMembership).where(
            OrgMembership.org_id == org_id, OrgMembership.user_id == user_id
        )
    ).first()


def org_members(session: Session, *, org_id: str, page: PageRequest) -> Page[OrgMembership]:
    return paginate(
        session, select(OrgMembership).where(OrgMembership.org_id == org_id), OrgMembership.id, page
    )


def count_org_owners(session: Session, *, org_id: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(OrgMembership)
            .where(OrgMembership.org_id == org_id, OrgMembership.role == "owner")
        )
        or 0
    )


def lock_org(session: Session, *, org_id: str) -> None:
    """Serialize membership changes of one org (last-owner checks must not race)."""
    session.execute(select(Organization.id).where(Organization.id == org_id).with_for_update())


def remove_org_member(session: Session, *, org_id: str, user_id: str) -> None:
    session.execute(
        delete(TeamMembership).where(
            TeamMembership.org_id == org_id, TeamMembership.user_id == user_id
        )
    )
    session.execute(
        delete(OrgMembership).where(
            OrgMembership.org_id == org_id, OrgMembership.user_id == user_id
        )
    )


def team_in_org(session: Session, *, org_id: str, team_id: str) -> Team | None:
    team = session.get(Team, team_id)
    return team if team is not None and team.org_id == org_id else None


def unscoped_team(session: Session, team_id: str) -> Team | None:
    # Unscoped: resolves a path's team id; the caller then checks standing in its org.
    return session.get(Team, team_id)


_TEAM_ORG = text("SELECT org_id FROM teams WHERE id = :team")


def unscoped_team_org(session: Session, team_id: str) -> str | None:
    """The org of a team (None: no such team), as plain SQL: the hot paths (admission, usage
    events) need only that, not the row. Unscoped like `unscoped_team`: the caller then checks
    standing in the org."""
    found = session.execute(_TEAM_ORG, {"team": team_id}).scalar()
    return None if found is None else str(found)


_ORG_STATUS = text("SELECT status FROM organizations WHERE id = :org")


def unscoped_org_status(session: Session, org_id: str) -> str | None:
    """An org's status (None: no such org), as plain SQL for the hot paths."""
    found = session.execute(_ORG_STATUS, {"org": org_id}).scalar()
    return None if found is None else str(found)


def team_slug_taken(session: Session, *, org_id: str, slug: str) -> bool:
    return (
        session.scalar(select(Team.id).where(Team.org_id == org_id, Team.slug == slug)) is not None
    )


def team_slugs_like(session: Session, *, org_id: str, base: str) -> set[str]:
    return set(
        session.scalars(
            select(Team.slug).where(
                Team.org_id == org_id, Team.slug.startswith(base, autoescape=True)
            )
        )
    )


def teams_of_org(
    session: Session, *, org_id: str, page: PageRequest, hidden: frozenset[str] = frozenset()
) -> Page[Team]:
    query = select(Team).where(Team.org_id == org_id)
    if hidden:  # private teams the reader is outside of
        query = query.where(Team.id.not_in(hidden))
    return paginate(session, query, Team.id, page)


def team_ancestors(session: Session, *, org_id: str, team_id: str) -> list[str]:
    """Ids from the team up to its root (bounded, so a bad row can never loop forever)."""
    chain: list[str] = []
    current: str | None = team_id
    while current is not None and len(chain) < 64:
        chain.append(current)
        current = session.scalar(
            select(Team.parent_team_id).where(Team.org_id == org_id, Team.id == current)
        )
    return chain


def detach_children(session: Session, *, org_id: str, team_id: str) -> None:
    session.execute(
        update(Team)
        .where(Team.org_id == org_id, Team.parent_team_id == team_id)
        .values(parent_team_id=None)
    )


def team_membership(
    session: Session, *, org_id: str, team_id: str, user_id: str
) -> TeamMembership | None:
    return session.scalars(
        select(TeamMembership).where(
            TeamMembership.org_id == org_id,
            TeamMembership.team_id == team_id,
            TeamMembership.user_id == user_id,
        )
    ).first()


def team_members(
    session: Session, *, org_id: str, team_id: str, page: PageRequest
) -> Page[TeamMembership]:
    query = select(TeamMembership).where(
        TeamMembership.org_id == org_id, TeamMembership.team_id == team_id
    )
    return paginate(session, query, TeamMembership.id, page)


def count_team_owners(session: Session, *, org_id: str, team_id: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(TeamMembership)
            .where(
                TeamMembership.org_id == org_id,
                TeamMembership.team_id == team_id,
                TeamMembership.role == "owner",
            )
        )
        or 0
    )


def user_by_ref(session: Session, ref: str) -> User | None:
    """A user by id or email (as the CLI and API accept either)."""
    if "@" in ref:
        return session.scalars(
            select(User).where(User.email_normalized == ref.strip().lower())
        ).first()
    return session.get(User, ref)


def invitation_by_token_hash(session: Session, digest: str) -> Invitation | None:
    # Unscoped: the secret token is what identifies the invitation to the invitee.
    return session.scalars(select(Invitation).where(Invitation.token_hash == digest)).first()


def unscoped_invitation(session: Session, invitation_id: str) -> Invitation | None:
    # Unscoped: `DELETE /invitations/{id}` learns the org from the invitation, then authorizes.
    return session.get(Invitation, invitation_id)


def pending_invitation_for(
    session: Session, *, org_id: str, email_normalized: str, team_id: str | None, now: datetime
) -> Invitation | None:
    query = select(Invitation).where(
        Invitation.org_id == org_id,
        Invitation.email_normalized == email_normalized,
        Invitation.status == InvitationStatus.PENDING,
        Invitation.expires_at > now,
    )
    query = query.where(
        Invitation.team_id.is_(None) if team_id is None else Invitation.team_id == team_id
    )
    return session.scalars(query).first()


def invitations_of_org(
    session: Session, *, org_id: str, status: str | None, page: PageRequest, now: datetime
) -> Page[Invitation]:
    query = select(Invitation).where(Invitation.org_id == org_id)
    if status is not None:
        query = query.where(Invitation.status == status)
    if status == InvitationStatus.PENDING:  # an expired invitation can no longer be accepted
        query = query.where(Invitation.expires_at > now)
    return paginate(session, query, Invitation.id, page)


def delete_org(session: Session, *, org_id: str) -> None:
    # Children first so the result is the same with or without ON DELETE CASCADE support.
    from tenantry.identity.models import ApiKey

    session.execute(delete(ApiKey).where(ApiKey.org_id == org_id))
    session.execute(delete(Invitation).where(Invitation.org_id == org_id))
    session.execute(delete(TeamMembership).where(TeamMembership.org_id == org_id))
    session.execute(update(Team).where(Team.org_id == org_id).values(parent_team_id=None))
    session.execute(delete(Team).where(Team.org_id == org_id))
    session.execute(delete(OrgMembership).where(OrgMembership.org_id == org_id))
    session.execute(delete(Organization).where(Organization.id == org_id))


def delete_team(session: Session, *, org_id: str, team_id: str) -> None:
    from tenantry.identity.models import ApiKey

    session.execute(delete(ApiKey).where(ApiKey.org_id == org_id, ApiKey.team_id == team_id))
    session.execute(
        delete(Invitation).where(Invitation.org_id == org_id, Invitation.team_id == team_id)
    )
    session.execute(
        delete(TeamMembership).where(
            TeamMembership.org_id == org_id, TeamMembership.team_id == team_id
        )
    )
    session.execute(delete(Team).where(Team.org_id == org_id, Team.id == team_id))


# ---- a person's data, for their export and their erasure ----


def owned_org_ids(session: Session, *, user_id: str) -> list[str]:
    return list(
        session.scalars(
            select(OrgMembership.org_id)
            .where(OrgMembership.user_id == user_id, OrgMembership.role == "owner")
            .order_by(OrgMembership.org_id)
        )
    )


def invitations_sent_by(session: Session, *, user_id: str, org_id: str | None) -> list[Invitation]:
    query = select(Invitation).where(Invitation.invited_by == user_id)
    if org_id is not None:
        query = query.where(Invitation.org_id == org_id)
    return list(session.scalars(query.order_by(Invitation.id)))


def invitations_to(
    session: Session, *, email_normalized: str, org_id: str | None
) -> list[Invitation]:
    query = select(Invitation).where(Invitation.email_normalized == email_normalized)
    if org_id is not None:
        query = query.where(Invitation.org_id == org_id)
    return list(session.scalars(query.order_by(Invitation.id)))


def unscoped_forget_member(session: Session, *, user_id: str, email_normalized: str) -> None:
    """Everything of tenancy that points at the person, in every org (erasure is of a person,
    not of one tenant's view of them). Invitations they sent stay, as the org's, with no sender.
    """
    session.execute(delete(TeamMembership).where(TeamMembership.user_id == user_id))
    session.execute(delete(OrgMembership).where(OrgMembership.user_id == user_id))
    session.execute(delete(Invitation).where(Invitation.email_normalized == email_normalized))
    session.execute(
        update(Invitation).where(Invitation.invited_by == user_id).values(invited_by=None)
    )
    # An org billed to the person's own address loses that address (an owner sets a new one).
    session.execute(
        update(Organization)
        .where(func.lower(Organization.billing_email) == email_normalized)
        .values(billing_email=None)
    )


def unscoped_orgs_by_ids(session: Session, org_ids: list[str]) -> dict[str, Organization]:
    # Unscoped: background maintenance (audit retention) works for every org at once.
    if not org_ids:
        return {}
    return {
        org.id: org
        for org in session.scalars(select(Organization).where(Organization.id.in_(org_ids)))
    }


# ---- what metering counts and checks: an org's members, the ids a usage batch names ----


def count_org_members(session: Session, *, org_id: str) -> int:
    query = select(func.count()).select_from(OrgMembership).where(OrgMembership.org_id == org_id)
    return int(session.execute(query).scalar_one())


# Which of the ids a batch names are the org's: built once (a batch names a few, every time).
_TEAMS_IN_ORG = text("SELECT id FROM teams WHERE org_id = :org AND id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)
_MEMBERS_IN_ORG = text(
    "SELECT user_id FROM org_memberships WHERE org_id = :org AND user_id IN :ids"
).bindparams(bindparam("ids", expanding=True))


def teams_in_org(session: Session, *, org_id: str, team_ids: Iterable[str]) -> set[str]:
    """Which of `team_ids` are the org's teams."""
    wanted = sorted(set(team_ids))
    if not wanted:
        return set()
    return set(session.scalars(_TEAMS_IN_ORG, {"org": org_id, "ids": wanted}))


def members_in_org(session: Session, *, org_id: str, user_ids: Iterable[str]) -> set[str]:
    """Which of `user_ids` are the org's members."""
    wanted = sorted(set(user_ids))
    if not wanted:
        return set()
    return set(session.scalars(_MEMBERS_IN_ORG, {"org": org_id, "ids": wanted}))


def admin_emails(session: Session, *, org_id: str) -> list[str]:
    """The emails of the org's owners and admins (who hear of an org-wide problem)."""
    return list(
        session.scalars(
            select(User.email)
            .join(OrgMembership, OrgMembership.user_id == User.id)
            .where(OrgMembership.org_id == org_id, OrgMembership.role.in_(("owner", "admin")))
            .order_by(User.email)
        )
    )


# ---- security policies ----


def security_policy_of(session: Session, *, org_id: str) -> OrgSecurityPolicy | None:
    return session.get(OrgSecurityPolicy, org_id)


def security_policies_of_user(
    session: Session, *, user_id: str
) -> list[tuple[OrgSecurityPolicy, str]]:
    """The security policies of the orgs the person is a member of, with each org's slug."""
    rows = session.execute(
        select(OrgSecurityPolicy, Organization.slug)
        .join(OrgMembership, OrgMembership.org_id == OrgSecurityPolicy.org_id)
        .join(Organization, Organization.id == OrgSecurityPolicy.org_id)
        .where(OrgMembership.user_id == user_id)
        .order_by(Organization.id)
    )
    return [(policy, slug) for policy, slug in rows]
