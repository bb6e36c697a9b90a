"""Every query of throttling, each scoped to an org (the worker's sweep is named `unscoped_`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tenantry.kit.pagination import Page, PageRequest, paginate
from tenantry.throttling.models import RateLimitOverride, RunLease, RunLeaseGate

# ---- rate-limit overrides ----


def override_of(session: Session, *, org_id: str) -> RateLimitOverride | None:
    return session.get(RateLimitOverride, org_id)


# Read on every limited request: plain SQL, no ORM object.
_OWN_LIMITS = text(
    "SELECT org_per_minute, org_burst, key_per_minute, key_burst "
    "FROM rate_limit_overrides WHERE org_id = :org"
)
OwnLimits = tuple[int | None, int | None, int | None, int | None]


def own_limits(session: Session, *, org_id: str) -> OwnLimits | None:
    """The org's own limits (org_per_minute, org_burst, key_per_minute, key_burst; None: the
    plan's), or None when it set none."""
    row = session.execute(_OWN_LIMITS, {"org": org_id}).first()
    return None if row is None else (row[0], row[1], row[2], row[3])


def delete_override(session: Session, *, org_id: str) -> None:
    session.execute(delete(RateLimitOverride).where(RateLimitOverride.org_id == org_id))


# ---- run leases ----


def lock_lease_gate(session: Session, *, org_id: str) -> None:
    """Queue this transaction behind any other acquire of the org's leases. The gate row is
    made on first use (a no-op if it exists) and then locked; on SQLite the write transaction
    (BEGIN IMMEDIATE) already serializes every writer."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(RunLeaseGate).values(org_id=org_id).on_conflict_do_nothing())
    session.execute(
        select(RunLeaseGate.org_id).where(RunLeaseGate.org_id == org_id).with_for_update()
    )


def delete_expired_leases(session: Session, *, org_id: str, now: datetime) -> int:
    result = session.execute(
        delete(RunLease).where(RunLease.org_id == org_id, RunLease.expires_at <= now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def count_active_leases(session: Session, *, org_id: str, now: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(RunLease)
            .where(RunLease.org_id == org_id, RunLease.expires_at > now)
        )
        or 0
    )


def lease_in_team(session: Session, *, org_id: str, team_id: str, lease_id: str) -> RunLease | None:
    lease = session.get(RunLease, lease_id)
    if lease is None or lease.org_id != org_id or lease.team_id != team_id:
        return None
    return lease


def lease_of_run(session: Session, *, org_id: str, team_id: str, run_id: str) -> RunLease | None:
    return session.scalars(
        select(RunLease).where(
            RunLease.org_id == org_id, RunLease.team_id == team_id, RunLease.run_id == run_id
        )
    ).first()


def active_leases_of_team(
    session: Session, *, org_id: str, team_id: str, now: datetime, page: PageRequest
) -> Page[RunLease]:
    query = select(RunLease).where(
        RunLease.org_id == org_id, RunLease.team_id == team_id, RunLease.expires_at > now
    )
    return paginate(session, query, RunLease.id, page)


def delete_lease(session: Session, *, org_id: str, lease_id: str) -> None:
    session.execute(delete(RunLease).where(RunLease.org_id == org_id, RunLease.id == lease_id))


def unscoped_orgs_with_expired_leases(session: Session, *, now: datetime, limit: int) -> list[str]:
    # Unscoped: the worker sweeps every org's expired leases; each org is then purged under its
    # own gate, exactly as an acquire would.
    return list(
        session.scalars(
            select(RunLease.org_id).where(RunLease.expires_at <= now).distinct().limit(limit)
        )
    )
