"""Queries of the audit trail. Reads are always for one chain (an org's, or one account's)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tenantry.audit.chain import GENESIS_HASH
from tenantry.audit.models import (
    AuditChainHead,
    AuditCheckpoint,
    AuditEvent,
    AuditEventPersonal,
    AuditPurgePermit,
    AuditSubjectKey,
)
from tenantry.kit.ids import new_id
from tenantry.kit.pagination import Page, PageRequest


@dataclass(frozen=True)
class EventFilters:
    actor_id: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    team_id: str | None = None
    result: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def lock_head(session: Session, *, chain_id: str, now: datetime) -> AuditChainHead:
    """The chain's head, locked until the caller's transaction ends (created on first use)."""
    query = select(AuditChainHead).where(AuditChainHead.chain_id == chain_id).with_for_update()
    head = session.scalars(query).first()
    if head is not None:
        return head
    try:
        with session.begin_nested():
            head = AuditChainHead(chain_id=chain_id, seq=0, hash=GENESIS_HASH, updated_at=now)
            session.add(head)
            session.flush()
        return head
    except IntegrityError:
        # Another transaction created it first; wait for its lock like any other appender.
        return session.scalars(query.execution_options(populate_existing=True)).one()


def head_of(session: Session, *, chain_id: str) -> AuditChainHead | None:
    return session.get(AuditChainHead, chain_id)


def subject_key(session: Session, *, subject_id: str, now: datetime) -> bytes:
    found = session.get(AuditSubjectKey, subject_id)
    if found is not None:
        return found.key
    key = secrets.token_bytes(32)
    try:
        with session.begin_nested():
            session.add(AuditSubjectKey(subject_id=subject_id, key=key, created_at=now))
            session.flush()
        return key
    except IntegrityError:
        return session.get(AuditSubjectKey, subject_id, populate_existing=True).key  # type: ignore[union-attr]


def existing_subject_key(session: Session, *, subject_id: str) -> bytes | None:
    found = session.get(AuditSubjectKey, subject_id)
    return found.key if found is not None else None


def _filtered(query: Any, filters: EventFilters) -> Any:
    if filters.actor_id:
        query = query.where(AuditEvent.actor_id == filters.actor_id)
    if filters.action:
        # A trailing dot asks for a family (`team.` → team.created, team.member.added, …).
        if filters.action.endswith("."):
            query = query.where(AuditEvent.action.startswith(filters.action, autoescape=True))
        else:
            query = query.where(AuditEvent.action == filters.action)
    if filters.target_type:
        query = query.where(AuditEvent.target_type == filters.target_type)
    if filters.target_id:
        query = query.where(AuditEvent.target_id == filters.target_id)
    if filters.team_id:
        query = query.where(AuditEvent.team_id == filters.team_id)
    if filters.result:
        query = query.where(AuditEvent.result == filters.result)
    if filters.since:
        query = query.where(AuditEvent.occurred_at >= filters.since)
    if filters.until:
        query = query.where(AuditEvent.occurred_at < filters.until)
    return query


def list_for_chain(
    session: Session, *, chain_id: str, filters: EventFilters, page: PageRequest
) -> Page[AuditEvent]:
    """Ordered by sequence number, which is commit order within a chain: a reader paging while
    events are written sees no gaps and no duplicates."""
    after = page.after_id()
    query = _filtered(select(AuditEvent).where(AuditEvent.chain_id == chain_id), filters)
    if after is not None:
        if not after.isdigit():
            from tenantry.kit.errors import BadRequest

            raise BadRequest("The cursor is not valid", code="invalid_cursor")
        query = query.where(AuditEvent.seq > int(after))
    rows = list(session.scalars(query.order_by(AuditEvent.seq).limit(page.limit + 1)))
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    from tenantry.kit.pagination import encode_cursor

    return Page(items=rows, next_cursor=encode_cursor(str(rows[-1].seq)) if more and rows else None)


def iter_for_chain(
    session: Session, *, chain_id: str, filters: EventFilters, after_seq: int = 0, batch: int = 1000
) -> Iterator[list[AuditEvent]]:
    """Batches in sequence order, each a fresh query: memory stays flat at any size."""
    while True:
        query = _filtered(
            select(AuditEvent).where(AuditEvent.chain_id == chain_id, AuditEvent.seq > after_seq),
            filters,
        )
        rows = list(session.scalars(query.order_by(AuditEvent.seq).limit(batch)))
        if not rows:
            return
        yield rows
        after_seq = rows[-1].seq
        session.expunge_all()


def chain_rows(
    session: Session, *, chain_id: str, after_seq: int = 0, batch: int = 5000
) -> Iterator[Sequence[Any]]:
    """Raw rows for verification, in `chain.FIELDS` order plus the stored hash."""
    columns = [getattr(AuditEvent, name) for name in (
        "chain_id", "seq", "id", "org_id", "team_id", "actor_type", "actor_id", "action",
        "target_type", "target_id", "result", "request_id", "occurred_at", "summary",
        "personal_digest", "prev_hash", "hash",
    )]  # fmt: skip
    while True:
        query = (
            select(*columns)
            .where(AuditEvent.chain_id == chain_id, AuditEvent.seq > after_seq)
            .order_by(AuditEvent.seq)
            .limit(batch)
        )
        rows = session.execute(query).all()
        if not rows:
            return
        yield from rows
        after_seq = rows[-1][1]


def personal_of(session: Session, event_ids: list[str]) -> dict[str, AuditEventPersonal]:
    if not event_ids:
        return {}
    rows = session.scalars(
        select(AuditEventPersonal).where(AuditEventPersonal.event_id.in_(event_ids))
    )
    return {row.event_id: row for row in rows}


def checkpoints_of(session: Session, *, chain_id: str) -> list[AuditCheckpoint]:
    return list(
        session.scalars(
            select(AuditCheckpoint)
            .where(AuditCheckpoint.chain_id == chain_id)
            .order_by(AuditCheckpoint.seq, AuditCheckpoint.id)
        )
    )


def latest_purge_checkpoint(session: Session, *, chain_id: str) -> AuditCheckpoint | None:
    return session.scalars(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.chain_id == chain_id, AuditCheckpoint.purged_through > 0)
        .order_by(AuditCheckpoint.purged_through.desc())
        .limit(1)
    ).first()


def first_seq(session: Session, *, chain_id: str) -> int | None:
    return session.scalar(select(func.min(AuditEvent.seq)).where(AuditEvent.chain_id == chain_id))


def seq_before(session: Session, *, chain_id: str, moment: datetime) -> int:
    """The highest seq of the chain's events that happened before `moment` (0 if none)."""
    found = session.scalar(
        select(func.max(AuditEvent.seq)).where(
            AuditEvent.chain_id == chain_id, AuditEvent.occurred_at < moment
        )
    )
    return int(found or 0)


def event_at(session: Session, *, chain_id: str, seq: int) -> AuditEvent | None:
    return session.scalars(
        select(AuditEvent).where(AuditEvent.chain_id == chain_id, AuditEvent.seq == seq)
    ).first()


def purge_through(session: Session, *, chain_id: str, seq: int) -> int:
    """Delete the chain's events up to `seq`, through a permit the DELETE trigger accepts."""
    permit = AuditPurgePermit(id=new_id("prm"), chain_id=chain_id, through_seq=seq)
    session.add(permit)
    session.flush()
    ids = select(AuditEvent.id).where(AuditEvent.chain_id == chain_id, AuditEvent.seq <= seq)
    session.execute(delete(AuditEventPersonal).where(AuditEventPersonal.event_id.in_(ids)))
    result = session.execute(
        delete(AuditEvent).where(AuditEvent.chain_id == chain_id, AuditEvent.seq <= seq)
    )
    session.delete(permit)
    session.flush()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def chains(session: Session) -> list[AuditChainHead]:
    return list(session.scalars(select(AuditChainHead).order_by(AuditChainHead.chain_id)))


def forget_subject(session: Session, *, subject_id: str) -> int:
    session.execute(delete(AuditSubjectKey).where(AuditSubjectKey.subject_id == subject_id))
    result = session.execute(
        delete(AuditEventPersonal).where(AuditEventPersonal.subject_id == subject_id)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
