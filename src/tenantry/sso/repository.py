"""Every query of enterprise sign-in; each takes the tenant (org) explicitly, except those that
find an org by what arrives from outside (a `state`, a domain), named `unscoped_…`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tenantry.identity.models import User
from tenantry.sso.models import (
    DomainStatus,
    SamlAssertionSeen,
    SsoAttempt,
    SsoConnection,
    SsoIdentity,
    SsoPolicy,
    VerifiedDomain,
)
from tenantry.tenancy.models import Organization, OrgMembership, Team, TeamMembership

# ---- connections ----


def connections_of(session: Session, *, org_id: str) -> list[SsoConnection]:
    return list(
        session.scalars(
            select(SsoConnection)
            .where(SsoConnection.org_id == org_id)
            .order_by(SsoConnection.created_at, SsoConnection.id)
        )
    )


def connection_in_org(session: Session, *, org_id: str, connection_id: str) -> SsoConnection | None:
    return session.scalars(
        select(SsoConnection).where(
            SsoConnection.org_id == org_id, SsoConnection.id == connection_id
        )
    ).first()


def unscoped_connection(session: Session, connection_id: str) -> SsoConnection | None:
    return session.get(SsoConnection, connection_id)


def enabled_connections(session: Session, *, org_id: str) -> list[SsoConnection]:
    return [c for c in connections_of(session, org_id=org_id) if c.enabled]


# ---- attempts ----


def unscoped_attempt_for_update(session: Session, lookup_hash: str) -> SsoAttempt | None:
    """The attempt an answer names, locked: two deliveries of one answer take turns, and the
    second finds it consumed."""
    return session.scalars(
        select(SsoAttempt).where(SsoAttempt.lookup_hash == lookup_hash).with_for_update()
    ).first()


def unscoped_attempt_by_handoff(session: Session, handoff_hash: str) -> SsoAttempt | None:
    return session.scalars(
        select(SsoAttempt).where(SsoAttempt.handoff_hash == handoff_hash).with_for_update()
    ).first()


def purge_attempts(session: Session, *, before: datetime) -> int:
    """Attempts and seen SAML assertions that expired before `before`; how many rows went."""
    attempts = session.execute(delete(SsoAttempt).where(SsoAttempt.expires_at < before))
    seen = session.execute(delete(SamlAssertionSeen).where(SamlAssertionSeen.expires_at < before))
    return int(attempts.rowcount or 0) + int(seen.rowcount or 0)  # type: ignore[attr-defined]


def assertion_seen(session: Session, *, connection_id: str, assertion_id: str) -> bool:
    return (
        session.scalar(
            select(SamlAssertionSeen.id).where(
                SamlAssertionSeen.connection_id == connection_id,
                SamlAssertionSeen.assertion_id == assertion_id,
            )
        )
        is not None
    )


# ---- identities ----


def unscoped_identity(session: Session, *, issuer: str, subject: str) -> SsoIdentity | None:
    return session.scalars(
        select(SsoIdentity).where(SsoIdentity.issuer == issuer, SsoIdentity.subject == subject)
    ).first()


def identities_of_user(session: Session, *, user_id: str) -> list[SsoIdentity]:
    return list(session.scalars(select(SsoIdentity).where(SsoIdentity.user_id == user_id)))


def user_by_id(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)


def user_by_email(session: Session, email: str) -> User | None:
    return session.scalars(
        select(User).where(User.email_normalized == email.strip().lower())
    ).first()


# ---- domains ----


def user_ids_in_domains(session: Session, domains: Iterable[str]) -> list[str]:
    """Accounts whose email is in one of `domains` (checked names: letters, digits, - and .)."""
    ids: list[str] = []
    for domain in domains:
        ids.extend(
            session.scalars(select(User.id).where(User.email_normalized.endswith("@" + domain)))
        )
    return ids


def domains_of(session: Session, *, org_id: str) -> list[VerifiedDomain]:
    return list(
        session.scalars(
            select(VerifiedDomain)
            .where(VerifiedDomain.org_id == org_id)
            .order_by(VerifiedDomain.domain)
        )
    )


def domain_in_org(session: Session, *, org_id: str, domain_id: str) -> VerifiedDomain | None:
    return session.scalars(
        select(VerifiedDomain).where(
            VerifiedDomain.org_id == org_id, VerifiedDomain.id == domain_id
        )
    ).first()


def domain_claim(session: Session, *, org_id: str, domain: str) -> VerifiedDomain | None:
    return session.scalars(
        select(VerifiedDomain).where(
            VerifiedDomain.org_id == org_id, VerifiedDomain.domain == domain
        )
    ).first()


def unscoped_verified_domain(session: Session, domain: str) -> VerifiedDomain | None:
    """The one verification of `domain`, whichever org holds it."""
    return session.scalars(
        select(VerifiedDomain).where(VerifiedDomain.verified_domain == domain.lower())
    ).first()


def verified_domains_of(session: Session, *, org_id: str) -> list[str]:
    return list(
        session.scalars(
            select(VerifiedDomain.domain).where(
                VerifiedDomain.org_id == org_id,
                VerifiedDomain.status == DomainStatus.VERIFIED.value,
            )
        )
    )


# ---- policy ----


def policy_of(session: Session, *, org_id: str) -> SsoPolicy | None:
    return session.get(SsoPolicy, org_id)


def unscoped_org(session: Session, org_id: str) -> Organization | None:
    return session.get(Organization, org_id)


def owners_among(session: Session, *, org_id: str, user_ids: Iterable[str]) -> set[str]:
    wanted = set(user_ids)
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(OrgMembership.user_id).where(
                OrgMembership.org_id == org_id,
                OrgMembership.role == "owner",
                OrgMembership.user_id.in_(wanted),
            )
        )
    )


# ---- memberships and teams, for provisioning ----


def org_membership(session: Session, *, org_id: str, user_id: str) -> OrgMembership | None:
    return session.scalars(
        select(OrgMembership).where(
            OrgMembership.org_id == org_id, OrgMembership.user_id == user_id
        )
    ).first()


def teams_by_ref(session: Session, *, org_id: str, refs: Iterable[str]) -> dict[str, Team]:
    """The org's teams named by slug or id, by the ref that named them (unknown refs absent)."""
    wanted = set(refs)
    if not wanted:
        return {}
    found: dict[str, Team] = {}
    rows = session.scalars(
        select(Team).where(Team.org_id == org_id, (Team.slug.in_(wanted)) | (Team.id.in_(wanted)))
    )
    for team in rows:
        for ref in (team.id, team.slug):
            if ref in wanted:
                found[ref] = team
    return found


def team_memberships_of(
    session: Session, *, org_id: str, user_id: str, team_ids: Iterable[str]
) -> dict[str, TeamMembership]:
    ids = set(team_ids)
    if not ids:
        return {}
    rows = session.scalars(
        select(TeamMembership).where(
            TeamMembership.org_id == org_id,
            TeamMembership.user_id == user_id,
            TeamMembership.team_id.in_(ids),
        )
    )
    return {m.team_id: m for m in rows}
