"""Every query of governance, tenant-scoped; the live aggregates conditions read come from
spend's hourly rollups (a few rows per member and hour), never from the calls themselves."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Executable, and_, bindparam, func, literal, or_, select, union_all, update
from sqlalchemy.orm import Session

from tenantry.governance.models import (
    ApprovalRequest,
    ApprovalStatus,
    GovernanceConfig,
    ModelAccess,
    Policy,
    PolicyVersion,
    Violation,
)
from tenantry.spend.models import LlmCall, LlmCallRollup

CALL_BATCH = 5000

# ---- policies ----


def policies_of(
    session: Session, org_id: str, *, team_ids: Sequence[str] | None = None
) -> list[Policy]:
    query = select(Policy).where(Policy.org_id == org_id)
    if team_ids is not None:
        query = query.where(Policy.team_id.in_(list(team_ids)))
    return list(session.scalars(query.order_by(Policy.created_at, Policy.id)))


def active_policies(session: Session, org_id: str) -> list[Policy]:
    query = select(Policy).where(Policy.org_id == org_id, Policy.status == "active")
    return list(session.scalars(query.order_by(Policy.id)))


def policy(session: Session, policy_id: str) -> Policy | None:
    return session.get(Policy, policy_id)


def policy_named(session: Session, *, org_id: str, team_id: str, name: str) -> Policy | None:
    query = select(Policy).where(
        Policy.org_id == org_id, Policy.team_id == team_id, Policy.name == name
    )
    return session.scalars(query).first()


def versions_of(session: Session, *, org_id: str, policy_id: str) -> list[PolicyVersion]:
    query = select(PolicyVersion).where(
        PolicyVersion.org_id == org_id, PolicyVersion.policy_id == policy_id
    )
    return list(session.scalars(query.order_by(PolicyVersion.version)))


# ---- configuration ----


def config(session: Session, *, org_id: str, team_id: str) -> GovernanceConfig | None:
    return session.get(GovernanceConfig, (org_id, team_id))


def timezones(session: Session, org_id: str) -> dict[str, str]:
    query = select(GovernanceConfig.team_id, GovernanceConfig.timezone).where(
        GovernanceConfig.org_id == org_id
    )
    return {team_id: tz for team_id, tz in session.execute(query)}


def settings_by_team(session: Session, org_id: str) -> dict[str, dict[str, Any]]:
    """The org's configurations' settings by team id ("" the org's own)."""
    query = select(GovernanceConfig.team_id, GovernanceConfig.settings).where(
        GovernanceConfig.org_id == org_id
    )
    return {team_id: dict(settings or {}) for team_id, settings in session.execute(query)}


def unscoped_orgs_with_config(session: Session) -> list[str]:
    """Every org with a governance configuration: the retention task's list, across tenants
    because it is the deployment's work, not one tenant's request."""
    query = select(GovernanceConfig.org_id).distinct().order_by(GovernanceConfig.org_id)
    return list(session.scalars(query))


# ---- model access ----


def model_access(
    session: Session, *, org_id: str, scope: str, subject_id: str
) -> ModelAccess | None:
    return session.get(ModelAccess, (org_id, scope, subject_id))


def model_access_of_org(session: Session, org_id: str) -> list[ModelAccess]:
    query = select(ModelAccess).where(ModelAccess.org_id == org_id)
    return list(session.scalars(query.order_by(ModelAccess.scope, ModelAccess.subject_id)))


# ---- approvals ----


def approval(session: Session, approval_id: str) -> ApprovalRequest | None:
    return session.get(ApprovalRequest, approval_id)


def approvals_of(
    session: Session,
    *,
    org_id: str,
    status: str | None,
    now: datetime,
    limit: int,
    user_id: str | None = None,
) -> list[ApprovalRequest]:
    """By status as of `now` (pending or approved past their time count as expired); with
    `user_id`, only the requests that person made."""
    t = ApprovalRequest
    query = select(t).where(t.org_id == org_id)
    if user_id is not None:
        query = query.where(t.user_id == user_id)
    live = [ApprovalStatus.PENDING.value, ApprovalStatus.APPROVED.value]
    if status in live:
        query = query.where(t.status == status, t.expires_at > now)
    elif status == ApprovalStatus.EXPIRED:
        query = query.where(or_(t.status == status, and_(t.status.in_(live), t.expires_at <= now)))
    elif status is not None:
        query = query.where(t.status == status)
    query = query.order_by(ApprovalRequest.created_at.desc(), ApprovalRequest.id).limit(limit)
    return list(session.scalars(query))


def count_pending(session: Session, *, org_id: str, team_id: str, now: datetime) -> int:
    t = ApprovalRequest
    query = select(func.count()).where(
        t.org_id == org_id,
        t.team_id == team_id,
        t.status == ApprovalStatus.PENDING.value,
        t.expires_at > now,
    )
    return int(session.scalar(query) or 0)


def move_approval(
    session: Session,
    *,
    org_id: str,
    approval_id: str,
    from_status: str,
    to_status: str,
    values: dict[str, Any],
    before: datetime | None = None,
) -> bool:
    """One conditional UPDATE: whether this caller moved it (racing callers: exactly one)."""
    t = ApprovalRequest
    statement = update(t).where(t.org_id == org_id, t.id == approval_id, t.status == from_status)
    if before is not None:
        statement = statement.where(t.expires_at > before)
    done = session.execute(
        statement.values(status=to_status, **values).execution_options(synchronize_session=False)
    )
    moved = bool(done.rowcount)  # type: ignore[attr-defined]
    if moved:
        found = session.get(ApprovalRequest, approval_id)
        if found is not None:
            session.refresh(found)
    return moved


# ---- violations ----


def violations_of(
    session: Session,
    *,
    org_id: str,
    policy_id: str | None,
    user_id: str | None,
    team_ids: Sequence[str] | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[Violation]:
    t = Violation
    query = select(t).where(t.org_id == org_id)
    if policy_id is not None:
        query = query.where(t.policy_id == policy_id)
    if user_id is not None:
        query = query.where(t.user_id == user_id)
    if team_ids is not None:
        query = query.where(t.team_id.in_(list(team_ids)))
    if since is not None:
        query = query.where(t.at >= since)
    if until is not None:
        query = query.where(t.at < until)
    return list(session.scalars(query.order_by(t.at.desc(), t.id).limit(limit)))


# ---- live aggregates, from spend's hourly rollups ----


# Built once per shape (which parts, and whether each names a member and a team) and reused:
# building a statement and its cache key costs more than running it on a warm database.
_SUMS: dict[tuple[tuple[str, bool, bool], ...], Executable] = {}


def _sums_statement(shape: tuple[tuple[str, bool, bool], ...]) -> Executable:
    found = _SUMS.get(shape)
    if found is None:
        t = LlmCallRollup
        selects = []
        for name, by_user, by_team in shape:
            query = select(literal(name).label("part"), func.sum(t.cost), func.sum(t.requests))
            query = query.where(t.org_id == bindparam("org_id"), t.hour >= bindparam(name))
            if by_user:
                query = query.where(t.user_id == bindparam(f"{name}.user"))
            if by_team:
                query = query.where(t.team_id == bindparam(f"{name}.team"))
            selects.append(query)
        found = _SUMS[shape] = selects[0] if len(selects) == 1 else union_all(*selects)
    return found


def rollup_sums(
    session: Session, org_id: str, parts: Mapping[str, tuple[datetime, str | None, str | None]]
) -> dict[str, tuple[Decimal, int]]:
    """Cost and requests of the rollups from `since` on (its hour included), of the member
    and of the team when named, for each named part (since, user_id, team_id): one statement,
    each part on its own indexed range, so a request pays one round trip for its aggregates."""
    if not parts:
        return {}
    shape = tuple((k, u is not None, t is not None) for k, (_, u, t) in sorted(parts.items()))
    params: dict[str, Any] = {"org_id": org_id}
    for name, (since, user_id, team_id) in parts.items():
        params |= {name: since, f"{name}.user": user_id, f"{name}.team": team_id}
    return {
        part: ((Decimal(cost) if cost is not None else Decimal(0)), int(requests or 0))
        for part, cost, requests in session.execute(_sums_statement(shape), params)
    }


def call_rows(
    session: Session, *, org_id: str, since: datetime, until: datetime
) -> Iterator[tuple[Any, ...]]:
    """The recorded calls of [since, until), oldest first, streamed in batches as plain rows
    of the columns a replay reads (no ORM objects: a dry run reads a million)."""
    t = LlmCall
    query = (
        select(t.at, t.team_id, t.user_id, t.api_key_id, t.provider, t.model,
               t.input_tokens, t.output_tokens, t.cost, t.tags)
        .where(t.org_id == org_id, t.at >= since, t.at < until)
        .order_by(t.at, t.id)
        .execution_options(yield_per=CALL_BATCH)
    )  # fmt: skip
    for batch in session.execute(query).partitions():
        yield from cast(Sequence[tuple[Any, ...]], batch)
