"""Writing, reading, checkpointing and verifying the audit trail.

`record` appends the request's event to the caller's transaction, so an action and its event
commit or vanish together. Appends to one chain are serialized by the chain head's row lock
(PostgreSQL) or the write lock (SQLite); other chains are not blocked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.orm import Session

from tenantry.audit import chain, fastverify, repository
from tenantry.audit.models import AuditCheckpoint, AuditEvent, AuditEventPersonal
from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.kit.context import Ctx, Origin
from tenantry.kit.ids import new_id
from tenantry.kit.pagination import Page, PageRequest
from tenantry.kit.security import public_key_pem, signing_key

SUMMARY_VALUE_LIMIT = 200
ANONYMOUS_SUBJECT = "anonymous"
SYSTEM_CHAIN = "system"
# The deployment's operators' own trail: what they did, across tenants (each act is also in
# the tenant's chain).
OPERATOR_CHAIN = "operator"


def _trim(summary: dict[str, Any]) -> dict[str, Any]:
    """Keep summaries small: long values are cut so the trail never becomes a copy of the data."""
    out: dict[str, Any] = {}
    plain = True
    for key, value in summary.items():
        if isinstance(value, str):
            if len(value) > SUMMARY_VALUE_LIMIT:
                value = value[:SUMMARY_VALUE_LIMIT] + "…"
        elif not (value is None or type(value) is int or type(value) is bool):
            plain = False  # nested or another type: storable_summary decides
        out[key if type(key) is str else str(key)] = value
    # Most summaries are flat strings and integers, already storable: no second walk for them.
    return out if plain else dict(chain.storable_summary(out))


def chain_of(
    *, org_id: str | None, actor_type: str, actor_id: str | None, subject_id: str | None
) -> str:
    """An org's events form its chain; an operator's deployment-level events form the operator
    chain; account-level events chain per person."""
    if org_id:
        return org_id
    if actor_type == "operator":
        return OPERATOR_CHAIN
    if actor_type == "user" and actor_id:
        return actor_id
    return subject_id or SYSTEM_CHAIN


@dataclass(frozen=True)
class Personal:
    ip: str | None = None
    user_agent: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Appended(NamedTuple):
    """What `append` wrote: the event's id and place in its chain (a tuple: one per event)."""

    id: str
    chain_id: str
    seq: int
    hash: str


def append(
    session: Session,
    *,
    now: datetime,
    org_id: str | None,
    actor_type: str,
    actor_id: str | None,
    action: str,
    result: str,
    subject_id: str | None,
    personal: Personal,
    team_id: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    request_id: str | None = None,
    summary: dict[str, Any] | None = None,
) -> Appended:
    """Append one event to its chain in the caller's transaction.

    The rows are queued and written at the session's next flush, with every other event of the
    transaction (`repository.add_event`); the chain head, locked and moved here, is what makes
    that flush happen before any query and at commit."""
    chain_id = chain_of(
        org_id=org_id, actor_type=actor_type, actor_id=actor_id, subject_id=subject_id
    )
    head, signer, held = repository.lock_for_append(
        session, chain_id=chain_id, subject_id=subject_id or ANONYMOUS_SUBJECT, now=now
    )
    record = chain.personal_record(
        ip=personal.ip, user_agent=personal.user_agent, details=personal.details
    )
    # The events of one bulk change share a person and their details: one HMAC for them all.
    digests = held.setdefault(("digests", subject_id or ANONYMOUS_SUBJECT), {})
    digest = digests.get(record)
    if digest is None:
        digest = digests[record] = chain.signed_digest(signer, record)
    tip = head.__dict__  # the locked head's own values (`repository.move_head` writes them)
    if "seq" not in tip or "hash" not in tip:
        session.refresh(head)  # expired in this transaction (`expire_all`): read it again
    prev_hash, seq = tip["hash"], tip["seq"] + 1
    event_id, trimmed = new_id("evt"), _trim(summary or {})
    event_hash = chain.event_hash(
        [
            chain_id, seq, event_id, org_id, team_id, actor_type, actor_id, action, target_type,
            target_id, result, request_id, chain.timestamp(now), trimmed, digest, prev_hash,
        ]
    )  # fmt: skip
    repository.add_event(
        session,
        event={
            "id": event_id,
            "chain_id": chain_id,
            "seq": seq,
            "org_id": org_id,
            "team_id": team_id,
            "actor_type": actor_type,
            "actor_id": actor_id,
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "result": result,
            "request_id": request_id,
            "occurred_at": now,
            "summary": trimmed,
            "personal_digest": digest,
            "prev_hash": prev_hash,
            "hash": event_hash,
        },
        personal={
            "event_id": event_id,
            "chain_id": chain_id,
            "subject_id": subject_id,
            "ip": personal.ip,
            "user_agent": personal.user_agent,
            "details": personal.details,
        },
        held=held,
    )
    repository.move_head(head, seq=seq, hash=event_hash, now=now)
    return Appended(event_id, chain_id, seq, event_hash)


def hashed_fields(event: AuditEvent) -> list[Any]:
    return [
        event.chain_id, event.seq, event.id, event.org_id, event.team_id, event.actor_type,
        event.actor_id, event.action, event.target_type, event.target_id, event.result,
        event.request_id, chain.timestamp(event.occurred_at), event.summary,
        event.personal_digest, event.prev_hash,
    ]  # fmt: skip


def record(
    ctx: Ctx,
    principal: Principal | None,
    *,
    org_id: str | None,
    target_type: str | None,
    target_id: str | None,
    team_id: str | None = None,
    summary: dict[str, Any] | None = None,
    action: str | None = None,
    actor: tuple[str, str | None] | None = None,
    result: str = "success",
    personal_details: dict[str, Any] | None = None,
    one_of_many: bool = False,
) -> Appended:
    """Add this request's audit event; the action defaults to the route's declared action.

    `summary` is part of the chained record and must not hold personal details (names, emails);
    those go in `personal_details`, which erasure can remove. A request writes one event, except
    a bulk change, which records each of its changes with `one_of_many=True`.
    """
    name = action or ctx.origin.action
    if not name:
        raise RuntimeError("audit event without an action")
    if ctx.state.get("audited") and not (one_of_many and ctx.state.get("audited") == "many"):
        raise RuntimeError("a request writes exactly one audit event")
    if actor is None:
        actor = (principal.actor_type, principal.actor_id) if principal else ("anonymous", None)
    subject = principal.user_id if principal else (actor[1] if actor[0] == "user" else None)
    event = append(
        ctx.session,
        now=ctx.clock.now(),
        org_id=org_id,
        team_id=team_id,
        actor_type=actor[0],
        actor_id=actor[1],
        action=name,
        target_type=target_type,
        target_id=target_id,
        result=result,
        request_id=ctx.origin.request_id,
        summary=summary,
        subject_id=subject,
        personal=Personal(ctx.origin.ip, ctx.origin.user_agent, personal_details or {}),
    )
    ctx.state["audited"] = "many" if one_of_many else True
    return event


def record_denial(
    session: Session,
    *,
    now: datetime,
    origin: Origin,
    principal: Principal,
    org_id: str,
    team_id: str | None,
    summary: dict[str, Any],
) -> Appended:
    """A refused attempt, written in a transaction of its own by the caller."""
    return append(
        session,
        now=now,
        org_id=org_id,
        team_id=team_id,
        actor_type=principal.actor_type,
        actor_id=principal.actor_id,
        action=origin.action or "unknown",
        result="denied",
        request_id=origin.request_id,
        summary=summary,
        subject_id=principal.user_id,
        personal=Personal(origin.ip, origin.user_agent, {}),
    )


@dataclass(frozen=True)
class EventView:
    """An event as people read it: the chained record plus its personal details, if kept."""

    event: AuditEvent
    personal: AuditEventPersonal | None


def _with_personal(session: Session, events: list[AuditEvent]) -> list[EventView]:
    personal = repository.personal_of(session, [e.id for e in events])
    return [EventView(e, personal.get(e.id)) for e in events]


def list_events(
    session: Session,
    principal: Principal,
    *,
    org_id: str,
    filters: repository.EventFilters,
    page: PageRequest,
) -> Page[EventView]:
    authorize(session, principal, Permission.AUDIT_READ, org_id=org_id)
    found = repository.list_for_chain(session, chain_id=org_id, filters=filters, page=page)
    return Page(items=_with_personal(session, list(found.items)), next_cursor=found.next_cursor)


def list_team_events(
    session: Session,
    principal: Principal,
    *,
    org_id: str,
    team_id: str,
    filters: repository.EventFilters,
    page: PageRequest,
) -> Page[EventView]:
    """A team's own events (those recorded with its `team_id`), for whoever may read the trail
    on that team: its admins and owners, and the org's."""
    authorize(session, principal, Permission.AUDIT_READ, org_id=org_id, team_id=team_id)
    found = repository.list_for_chain(
        session, chain_id=org_id, filters=replace(filters, team_id=team_id), page=page
    )
    return Page(items=_with_personal(session, list(found.items)), next_cursor=found.next_cursor)


def iter_events(
    session: Session, *, chain_id: str, filters: repository.EventFilters, after_seq: int = 0
) -> Iterator[EventView]:
    for batch in repository.iter_for_chain(
        session, chain_id=chain_id, filters=filters, after_seq=after_seq
    ):
        yield from _with_personal(session, batch)


# ---- checkpoints and verification ----


class Notary:
    """Signs checkpoints with the server's Ed25519 audit key (derived from the server secret)."""

    def __init__(self, secret: str) -> None:
        self._private: Ed25519PrivateKey = signing_key(secret, "audit-checkpoint")
        self.public_key: Ed25519PublicKey = self._private.public_key()

    @property
    def public_key_pem(self) -> str:
        return public_key_pem(self.public_key)

    def sign(self, message: bytes) -> str:
        return self._private.sign(message).hex()

    def is_genuine(self, message: bytes, signature: str) -> bool:
        try:
            self.public_key.verify(bytes.fromhex(signature), message)
        except (InvalidSignature, ValueError):
            return False
        return True


def checkpoint_message(cp: AuditCheckpoint) -> bytes:
    return chain.checkpoint_message(
        chain_id=cp.chain_id,
        seq=cp.seq,
        hash=cp.hash,
        created_at=cp.created_at,
        purged_through=cp.purged_through,
    )


def checkpoints(session: Session, *, chain_id: str) -> list[AuditCheckpoint]:
    return repository.checkpoints_of(session, chain_id=chain_id)


def make_checkpoint(
    session: Session,
    notary: Notary,
    *,
    chain_id: str,
    now: datetime,
    reason: str,
    purged_through: int = 0,
) -> AuditCheckpoint | None:
    """Sign the chain's current head (None for a chain with no events yet)."""
    head = repository.lock_head(session, chain_id=chain_id, now=now)
    if head.seq == 0:
        return None
    cp = AuditCheckpoint(
        id=new_id("ckp"),
        chain_id=chain_id,
        seq=head.seq,
        hash=head.hash,
        created_at=now,
        reason=reason,
        purged_through=purged_through,
        signature="",
    )
    cp.signature = notary.sign(checkpoint_message(cp))
    session.add(cp)
    return cp


@dataclass(frozen=True)
class Verdict:
    chain_id: str
    ok: bool
    events_checked: int
    first_seq: int | None
    last_seq: int
    head_seq: int
    checkpoints_checked: int
    fault: chain.Fault | None = None


def verify_chain(
    session: Session,
    notary: Notary,
    *,
    chain_id: str,
    workers: int = 1,
    min_span: int = fastverify.MIN_SPAN,
    fast: bool = True,
) -> Verdict:
    """Check every event of the chain against its hash and its predecessor, every checkpoint's
    signature and hash, and that nothing is missing at the start (after a purge) or the end.

    A fast pass (`fastverify`, in up to `workers` processes for a long chain) proves a sound
    chain; when it cannot (or `fast` is off), the exact pass below walks the chain in this session
    and names the first fault."""
    head = repository.head_of(session, chain_id=chain_id)
    head_seq = head.seq if head is not None else 0
    checkpoints = repository.checkpoints_of(session, chain_id=chain_id)
    start_seq, start_hash = 1, chain.GENESIS_HASH

    def verdict(checked: int, first: int | None, last: int, fault: chain.Fault | None) -> Verdict:
        return Verdict(
            chain_id, fault is None, checked, first, last, head_seq, len(checkpoints), fault
        )

    for cp in checkpoints:
        if not notary.is_genuine(checkpoint_message(cp), cp.signature):
            return verdict(
                0,
                None,
                0,
                chain.Fault(cp.seq, "bad_checkpoint", f"checkpoint {cp.id} has a bad signature"),
            )
    purges = [cp for cp in checkpoints if cp.purged_through > 0]
    if purges:
        anchor = max(purges, key=lambda cp: cp.purged_through)
        start_seq, start_hash = anchor.purged_through + 1, anchor.hash
    by_seq: dict[int, list[AuditCheckpoint]] = {}
    for cp in checkpoints:
        if cp.seq >= start_seq:
            by_seq.setdefault(cp.seq, []).append(cp)

    newest_signed = max((cp.seq for cp in checkpoints), default=0)
    source = fastverify.source_of(session.connection().engine.url)
    if (
        fast
        and source is not None
        and newest_signed <= head_seq
        and fastverify.chain_checks_out(
            source,
            chain_id=chain_id,
            start_seq=start_seq,
            start_hash=start_hash,
            through_seq=head_seq,
            checkpoint_hashes={seq: [cp.hash for cp in cps] for seq, cps in by_seq.items()},
            workers=workers,
            min_span=min_span,
        )
    ):
        return verdict(head_seq - start_seq + 1, start_seq, head_seq, None)

    # verify_events yields consecutive seqs from start_seq, so the last good one says how many
    # were checked: the loop, run once per event, does no more than it must.
    last = start_seq - 1

    def so_far(fault: chain.Fault | None) -> Verdict:
        checked = last - start_seq + 1
        return verdict(checked, start_seq if checked else None, last, fault)

    rows = repository.chain_rows(
        session, chain_id=chain_id, after_seq=start_seq - 1, through_seq=head_seq
    )
    for step in chain.verify_events(rows, start_seq=start_seq, start_hash=start_hash):
        if isinstance(step, chain.Fault):
            return so_far(step)
        seq, digest = step
        for cp in by_seq.get(seq, ()):
            if cp.hash != digest:
                detail = f"checkpoint {cp.id} signed a different hash at seq {seq}"
                return so_far(chain.Fault(seq, "bad_checkpoint", detail))
        last = seq
    checked, first = last - start_seq + 1, start_seq if last >= start_seq else None
    if last < head_seq or last < newest_signed:
        return verdict(
            checked,
            first,
            last,
            chain.Fault(
                last + 1,
                "truncated_tail",
                f"events after seq {last} are missing (head {max(head_seq, newest_signed)})",
            ),
        )
    return verdict(checked, first, last, None)


def purge_before(
    session: Session, notary: Notary, *, chain_id: str, cutoff: datetime, now: datetime
) -> int:
    """Retention: delete the chain's events older than `cutoff`, leaving a signed checkpoint that
    anchors the rest. The newest event is always kept, so the chain never loses its head."""
    head = repository.lock_head(session, chain_id=chain_id, now=now)
    through = min(repository.seq_before(session, chain_id=chain_id, moment=cutoff), head.seq - 1)
    if through <= 0:
        return 0
    anchor = repository.event_at(session, chain_id=chain_id, seq=through)
    if anchor is None:
        return 0
    cp = AuditCheckpoint(
        id=new_id("ckp"),
        chain_id=chain_id,
        seq=through,
        hash=anchor.hash,
        created_at=now,
        reason="purge",
        purged_through=through,
        signature="",
    )
    cp.signature = notary.sign(checkpoint_message(cp))
    session.add(cp)
    return repository.purge_through(session, chain_id=chain_id, seq=through)


def discard_chain(session: Session, *, chain_id: str, now: datetime) -> int:
    """Remove all of a chain's events (the org is being deleted). The head stays, so an event
    recorded afterwards (the deletion itself) continues the sequence."""
    head = repository.lock_head(session, chain_id=chain_id, now=now)
    return repository.purge_through(session, chain_id=chain_id, seq=head.seq) if head.seq else 0


def public_key(notary: Notary) -> dict[str, str]:
    return {"algorithm": "Ed25519", "public_key_pem": notary.public_key_pem}


# ---- maintenance and personal data (the worker, export and erasure) ----


def chain_ids(session: Session) -> list[str]:
    return repository.chain_ids(session)


def chains_ahead_of_checkpoints(session: Session) -> list[str]:
    return repository.chains_ahead_of_checkpoints(session)


def has_events_before(session: Session, *, chain_id: str, cutoff: datetime) -> bool:
    return repository.seq_before(session, chain_id=chain_id, moment=cutoff) > 0


def checkpoint_if_moved(
    session: Session, notary: Notary, *, chain_id: str, now: datetime, reason: str = "periodic"
) -> AuditCheckpoint | None:
    """Sign the chain's head unless a checkpoint already covers it. The head is locked before
    looking, so two workers on one chain make one checkpoint, not two."""
    head = repository.lock_head(session, chain_id=chain_id, now=now)
    if head.seq == 0 or repository.checkpointed_through(session, chain_id=chain_id) >= head.seq:
        return None
    return make_checkpoint(session, notary, chain_id=chain_id, now=now, reason=reason)


def events_of_person(session: Session, *, user_id: str, chain_id: str | None) -> list[EventView]:
    """Events where the user is the actor or the personal-details subject, each with the
    user's own personal details (never anyone else's); one chain, or all when None."""
    events = repository.unscoped_events_of_person(session, user_id=user_id, chain_id=chain_id)
    personal = repository.personal_of_subject(session, subject_id=user_id, chain_id=chain_id)
    return [EventView(event, personal.get(event.id)) for event in events]


def forget_subject(session: Session, *, subject_id: str) -> int:
    """Erasure: delete the person's key and every personal detail kept under it. The chained
    records stay, with their digests, which nobody can link back to the details any more."""
    return repository.forget_subject(session, subject_id=subject_id)
