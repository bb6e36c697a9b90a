"""A person's data held by tenancy: their memberships and invitations for an export, their
erasure, and the orgs they are the last owner of."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from tenantry.identity.models import User
from tenantry.tenancy import repository
from tenantry.tenancy.models import Invitation, Organization, OrgMembership, Team, TeamMembership


@dataclass(frozen=True)
class MemberRecords:
    """What tenancy holds about one person (in one org, when the export is an org's)."""

    memberships: list[tuple[OrgMembership, Organization]]
    team_memberships: list[tuple[TeamMembership, Team]]
    invitations_sent: list[Invitation]
    invitations_received: list[Invitation]


def member_records(
    session: Session, user: User, *, org_id: str | None, team_id: str | None = None
) -> MemberRecords:
    """The person's memberships and invitations; only org `org_id`'s (and only team `team_id`
    among teams) when given, as an org's admin or an API key bound to it sees them."""
    orgs = repository.memberships_of_user(session, user_id=user.id)
    teams = repository.team_memberships_of_user(session, user_id=user.id)
    if org_id is not None:
        orgs = [(m, o) for m, o in orgs if o.id == org_id]
        teams = [(m, t) for m, t in teams if t.org_id == org_id and team_id in (None, t.id)]
    return MemberRecords(
        memberships=orgs,
        team_memberships=teams,
        invitations_sent=repository.invitations_sent_by(session, user_id=user.id, org_id=org_id),
        invitations_received=repository.invitations_to(
            session, email_normalized=user.email_normalized, org_id=org_id
        ),
    )


def orgs_only_owned_by(session: Session, *, user_id: str) -> list[Organization]:
    """Orgs the person is the last owner of. Each org is locked (in id order, so two erasures
    cannot deadlock), so a concurrent demotion cannot leave an org with no owner after all."""
    alone: list[Organization] = []
    for org_id in repository.owned_org_ids(session, user_id=user_id):
        repository.lock_org(session, org_id=org_id)
        if repository.count_org_owners(session, org_id=org_id) <= 1:
            org = repository.unscoped_org_by_ref(session, org_id)
            if org is not None:
                alone.append(org)
    return alone


def forget_member(session: Session, user: User) -> None:
    """Erasure: the person leaves every org and team; invitations to them go, those they sent
    stay without a sender."""
    repository.unscoped_forget_member(
        session, user_id=user.id, email_normalized=user.email_normalized
    )
