"""Queries of the audit trail. Reads are always for one chain (an org's, or one account's)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, event, func, insert, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified, instance_state

from tenantry.audit.chain import GENESIS_HASH, timestamp
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


def _held(session: Session) -> dict[tuple[str, str], Any]:
    """What this transaction (or savepoint) has already locked or read for appends. Several events
    in one transaction reuse the head they locked and the subject keys they read, with no query
    each, and so no autoflush each: the events go to the database in one batch at commit. Keyed by
    the transaction and savepoint objects, so a commit, a rollback, or leaving a savepoint (whose
    rollback would release a row lock taken inside it) starts afresh."""
    if session.get_transaction() is None:
        # Begin now, as the first query would: held under "no transaction yet", what the first
        # append locked would be forgotten by the second, which would lock and flush again.
        session.begin()
    scope = (session.get_transaction(), session.get_nested_transaction())
    kept = session.info.get("audit_held")
    if kept is None or kept[0] is not scope[0] or kept[1] is not scope[1]:
        kept = (*scope, {})
        session.info["audit_held"] = kept
    held: dict[tuple[str, str], Any] = kept[2]
    return held


def lock_head(session: Session, *, chain_id: str, now: datetime) -> AuditChainHead:
    """The chain's head, locked until the caller's transaction ends (created on first use)."""
    held = _held(session).get(("head", chain_id))
    if held is not None and held in session:
        return held  # type: ignore[no-any-return]
    query = select(AuditChainHead).where(AuditChainHead.chain_id == chain_id).with_for_update()
    head = session.scalars(query).first()
    if head is None:
        try:
            with session.begin_nested():
                head = AuditChainHead(chain_id=chain_id, seq=0, hash=GENESIS_HASH, updated_at=now)
                session.add(head)
                session.flush()
        except IntegrityError:
            # Another transaction created it first; wait for its lock like any other appender.
            head = session.scalars(query.execution_options(populate_existing=True)).one()
    _held(session)[("head", chain_id)] = head
    return head


_INSERT_EVENTS = insert(AuditEvent)
_INSERT_PERSONAL = insert(AuditEventPersonal)


def add_event(
    session: Session,
    *,
    event: dict[str, Any],
    personal: dict[str, Any],
    held: dict[tuple[str, str], Any] | None = None,
) -> None:
    """Queue an event row and its personal-details row for this transaction's next flush.

    Appends write plain rows, not ORM objects: a transaction's events go to the database as one
    multi-row INSERT per table when the session next flushes (before a query, at commit), which
    `append` guarantees by moving the chain head (an ORM object, so the session is dirty). Queued
    rows belong to the transaction or savepoint that queued them, like the head's lock, so a
    rollback drops them with everything else. `held` is what `lock_for_append` returned with the
    head, when the caller has it (one lookup fewer per event)."""
    queued = (held if held is not None else _held(session)).setdefault(("queued", ""), ([], []))
    queued[0].append(event)
    queued[1].append(personal)


def move_head(head: AuditChainHead, *, seq: int, hash: str, now: datetime) -> None:
    """Set the locked head to the chain's new last event. The head is marked changed once per
    flush (that is what makes the session flush before a query and at commit) and then written
    in place: three instrumented sets per event cost more than the event's hashing."""
    state = instance_state(head)
    if not state.modified:
        for name in ("seq", "hash", "updated_at"):
            flag_modified(head, name)
    values = head.__dict__
    values["seq"], values["hash"], values["updated_at"] = seq, hash, now


@event.listens_for(Session, "after_transaction_end")
def _forget_held(session: Session, transaction: Any) -> None:
    # What was held belongs to the transaction that just ended; and it refers to that
    # transaction, which refers to the session: left in `session.info`, the cycle would keep
    # every audited request's session for the garbage collector to find.
    kept = session.info.get("audit_held")
    if kept is not None and (kept[0] is transaction or kept[1] is transaction):
        del session.info["audit_held"]


@event.listens_for(Session, "before_flush")
def _write_queued_events(session: Session, _context: Any, _instances: Any) -> None:
    kept = session.info.get("audit_held")
    if kept is None or kept[0] is not session.get_transaction():
        return
    if kept[1] is not session.get_nested_transaction():
        return
    queued = kept[2].pop(("queued", ""), None)
    if queued is None:
        return
    connection = session.connection()
    connection.execute(_INSERT_EVENTS, queued[0])
    connection.execute(_INSERT_PERSONAL, queued[1])


# Built once: composing it costs more than running it (once per transaction that appends).
_LOCK_HEAD_AND_KEY = (
    select(
        AuditChainHead,
        select(AuditSubjectKey.key)
        .where(AuditSubjectKey.subject_id == bindparam("subject_id"))
        .scalar_subquery(),
    )
    .where(AuditChainHead.chain_id == bindparam("chain_id"))
    .with_for_update(of=AuditChainHead)
)


def lock_for_append(
    session: Session, *, chain_id: str, subject_id: str, now: datetime
) -> tuple[AuditChainHead, Any, dict[tuple[str, str], Any]]:
    """The chain's head, locked as `lock_head` locks it, the subject's HMAC state as
    `subject_signer` gives it, and what this transaction holds (for `add_event`). The first
    append of a transaction reads head and key in one statement: with one event per transaction
    (one request), every statement saved is a round trip."""
    held = _held(session)
    head, signer = held.get(("head", chain_id)), held.get(("mac", subject_id))
    if head is None or head not in session:
        found = session.execute(
            _LOCK_HEAD_AND_KEY, {"chain_id": chain_id, "subject_id": subject_id}
        ).first()
        if found is None:
            head = lock_head(session, chain_id=chain_id, now=now)  # the chain's first event
        else:
            head = held[("head", chain_id)] = found[0]
            if signer is None and found[1] is not None:
                signer = held[("mac", subject_id)] = hmac.new(found[1], digestmod=hashlib.sha256)
    if signer is None:
        signer = subject_signer(session, subject_id=subject_id, now=now)
    return head, signer, held


def head_of(session: Session, *, chain_id: str) -> AuditChainHead | None:
    return session.get(AuditChainHead, chain_id)


def subject_key(session: Session, *, subject_id: str, now: datetime) -> bytes:
    found = session.get(AuditSubjectKey, subject_id)
    if found is not None:
        # Held for the transaction so the next `get` is answered from the identity map (which
        # only holds objects weakly); erasure's bulk delete still takes it out of the session.
        _held(session)[("key", subject_id)] = found
        return found.key
    key = secrets.token_bytes(32)
    try:
        with session.begin_nested():
            session.add(AuditSubjectKey(subject_id=subject_id, key=key, created_at=now))
            session.flush()
        return key
    except IntegrityError:
        return session.get(AuditSubjectKey, subject_id, populate_existing=True).key  # type: ignore[union-attr]


def subject_signer(session: Session, *, subject_id: str, now: datetime) -> Any:
    """An HMAC-SHA-256 state keyed with the subject's key, for `.copy()` per event: keying HMAC
    (two SHA-256 blocks) once per person and transaction instead of once per event."""
    held = _held(session)
    signer = held.get(("mac", subject_id))
    if signer is None:
        key = subject_key(session, subject_id=subject_id, now=now)
        signer = held[("mac", subject_id)] = hmac.new(key, digestmod=hashlib.sha256)
    return signer


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


def export_rows(
    session: Session,
    *,
    chain_id: str,
    filters: EventFilters,
    after_seq: int,
    through_seq: int,
    batch: int = 500,
) -> Iterator[Sequence[Any]]:
    """Batches of plain rows for an export, in seq order up to `through_seq`: the event's columns
    in `chain.FIELDS` order, its hash, then the personal details beside it (ip, user agent,
    details; null once erased). No ORM objects, so an export of any size runs fast and flat."""
    columns = [getattr(AuditEvent, name) for name in (
        "chain_id", "seq", "id", "org_id", "team_id", "actor_type", "actor_id", "action",
        "target_type", "target_id", "result", "request_id", "occurred_at", "summary",
        "personal_digest", "prev_hash", "hash",
    )]  # fmt: skip
    personal = (AuditEventPersonal.ip, AuditEventPersonal.user_agent, AuditEventPersonal.details)
    while True:
        query = (
            select(*columns, *personal)
            .outerjoin(AuditEventPersonal, AuditEventPersonal.event_id == AuditEvent.id)
            .where(
                AuditEvent.chain_id == chain_id,
                AuditEvent.seq > after_seq,
                AuditEvent.seq <= through_seq,
            )
        )
        query = _filtered(query, filters).order_by(AuditEvent.seq).limit(batch)
        rows = session.execute(query).all()
        if not rows:
            return
        yield rows
        after_seq = rows[-1][1]


# The canonical text of `occurred_at` (chain.timestamp) is made by the database, far cheaper than
# a datetime per row in Python. SQLite holds SQLAlchemy's text form ("2026-01-02 03:04:05.000006");
# a value of any other shape comes back as "!" + the stored text and is read in Python exactly as
# the ORM would read it.
_SQLITE_CHAIN_QUERY = """
SELECT chain_id, seq, id, org_id, team_id, actor_type, actor_id, action, target_type, target_id,
       result, request_id,
       CASE WHEN occurred_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] '
                                || '[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]'
            THEN substr(occurred_at, 1, 10) || 'T' || substr(occurred_at, 12) || 'Z'
            ELSE '!' || occurred_at END,
       summary, personal_digest, prev_hash, hash
FROM audit_events WHERE chain_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?
"""
_POSTGRES_CHAIN_QUERY = """
SELECT chain_id, seq, id, org_id, team_id, actor_type, actor_id, action, target_type, target_id,
       result, request_id,
       to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       summary::text, personal_digest, prev_hash, hash
FROM audit_events WHERE chain_id = %s AND seq > %s AND seq <= %s ORDER BY seq LIMIT %s
"""
_NO_LIMIT = 2**63 - 1


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text)  # what the ORM would read (orjson stops at 64-bit integers)
    except ValueError:
        return text  # not JSON at all: it cannot match the hash of an object


def _odd_timestamp_reader(dialect: Dialect) -> Callable[[str | None], str | None]:
    """`occurred_at` that the query could not make canonical ("!" + the stored text), read as
    the ORM reads it."""
    column_type = AuditEvent.__table__.c.occurred_at.type.dialect_impl(dialect)
    process = column_type.result_processor(dialect, None)

    def read(marked: str | None) -> str | None:
        if marked is None:
            return None
        stored = marked[1:]
        try:
            moment = process(stored) if process is not None else stored
            return timestamp(moment) if isinstance(moment, datetime) else str(moment)
        except (ValueError, TypeError):
            return stored  # unreadable: it cannot match the hash of a real timestamp

    return read


def chain_rows(
    session: Session,
    *,
    chain_id: str,
    after_seq: int = 0,
    batch: int = 20_000,
    through_seq: int = _NO_LIMIT,
) -> Iterator[Sequence[Any]]:
    """Rows for verification, in `chain.FIELDS` order plus the stored hash: `occurred_at` as its
    canonical text (`chain.timestamp`), `summary` decoded. Verification reads every event, so
    this goes through the driver's own cursor in large batches: the ORM's work per row would
    cost more than the hashing."""
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    query = _POSTGRES_CHAIN_QUERY if postgres else _SQLITE_CHAIN_QUERY
    odd_timestamp = _odd_timestamp_reader(connection.dialect)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        while True:
            cursor.execute(query, (chain_id, after_seq, through_seq, batch))
            fetched = 0
            # A few hundred rows at a time, used and dropped: objects that pile up cost far
            # more to allocate (and for the garbage collector to walk) than short-lived ones.
            while rows := cursor.fetchmany(500):
                fetched += len(rows)
                after_seq = rows[-1][1]
                yield from [
                    (
                        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11],
                        r[12] if r[12] and r[12][0] != "!" else odd_timestamp(r[12]),
                        _loads(r[13]) if r[13] is not None else None,
                        r[14], r[15], r[16],
                    )
                    for r in rows
                ]  # fmt: skip
            if fetched < batch:
                return
    finally:
        cursor.close()


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
    # An append later in this transaction must not sign with the key being deleted.
    _held(session).pop(("mac", subject_id), None)
    session.execute(delete(AuditSubjectKey).where(AuditSubjectKey.subject_id == subject_id))
    result = session.execute(
        delete(AuditEventPersonal).where(AuditEventPersonal.subject_id == subject_id)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def chain_ids(session: Session) -> list[str]:
    return list(session.scalars(select(AuditChainHead.chain_id).order_by(AuditChainHead.chain_id)))


def checkpointed_through(session: Session, *, chain_id: str) -> int:
    """The highest seq any checkpoint of the chain has signed (0: none yet)."""
    found = session.scalar(
        select(func.max(AuditCheckpoint.seq)).where(AuditCheckpoint.chain_id == chain_id)
    )
    return int(found or 0)


def unscoped_events_of_person(
    session: Session, *, user_id: str, chain_id: str | None
) -> list[AuditEvent]:
    """Events the user acted in, as themselves or through their API keys (whose events name
    them as the personal-details subject). Across every chain when `chain_id` is None: a
    person's data export gathers each org they ever acted in, not only those they belong to now.
    """
    as_subject = select(AuditEventPersonal.event_id).where(AuditEventPersonal.subject_id == user_id)
    query = select(AuditEvent).where(
        ((AuditEvent.actor_type == "user") & (AuditEvent.actor_id == user_id))
        | AuditEvent.id.in_(as_subject)
    )
    if chain_id is not None:
        query = query.where(AuditEvent.chain_id == chain_id)
    return list(session.scalars(query.order_by(AuditEvent.chain_id, AuditEvent.seq)))


def personal_of_subject(
    session: Session, *, subject_id: str, chain_id: str | None
) -> dict[str, AuditEventPersonal]:
    """The subject's own personal details, by event id."""
    query = select(AuditEventPersonal).where(AuditEventPersonal.subject_id == subject_id)
    if chain_id is not None:
        query = query.where(AuditEventPersonal.chain_id == chain_id)
    return {row.event_id: row for row in session.scalars(query)}


def chains_ahead_of_checkpoints(session: Session) -> list[str]:
    """Chains whose head is past their newest checkpoint (read without locks: a hint of where
    there is work, which the worker confirms under the head's lock)."""
    signed = (
        select(AuditCheckpoint.chain_id, func.max(AuditCheckpoint.seq).label("seq"))
        .group_by(AuditCheckpoint.chain_id)
        .subquery()
    )
    query = (
        select(AuditChainHead.chain_id)
        .outerjoin(signed, signed.c.chain_id == AuditChainHead.chain_id)
        .where(AuditChainHead.seq > func.coalesce(signed.c.seq, 0))
        .order_by(AuditChainHead.chain_id)
    )
    return list(session.scalars(query))
