"""Tables of the audit trail.

`audit_events` is append-only: database triggers refuse UPDATE always, and DELETE unless a row of
`audit_purge_permits` covers the event (only retention purges and org deletion write permits).
Each event belongs to a chain (its org; for account-level events with no org, the acting user, or
`system`), has a gapless sequence number in it and the hash of the one before.

Personal details (IP address, user agent, a profile's old and new values) stay out of the chained
record: they sit in `audit_event_personal`, and the record holds only an HMAC of them under a key
of the person's own (`audit_subject_keys`). Erasure deletes the key and those rows; the chain
still verifies and nothing left points back to the person.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.kit.db import Base, JSONType, UTCDateTime


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("chain_id", "seq"),
        Index("ix_audit_events_org_id_seq", "org_id", "seq"),
        Index("ix_audit_events_org_id_action", "org_id", "action"),
        Index("ix_audit_events_chain_id_occurred_at", "chain_id", "occurred_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    chain_id: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(BigInteger)
    # No foreign keys: the trail outlives what it describes (deleted teams, users, orgs).
    org_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    team_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    target_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    result: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    summary: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    personal_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditEventPersonal(Base):
    """Personal details of one event, kept beside the chain so they can be erased."""

    __tablename__ = "audit_event_personal"
    __table_args__ = (Index("ix_audit_event_personal_subject_id", "subject_id"),)

    event_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    chain_id: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class AuditSubjectKey(Base):
    """A person's key for the HMAC of their personal details; erasure deletes it."""

    __tablename__ = "audit_subject_keys"

    subject_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditChainHead(Base):
    """The last sequence number and hash of each chain; its row lock serializes appends to one
    chain without blocking any other."""

    __tablename__ = "audit_chain_heads"

    chain_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditCheckpoint(Base):
    """A signed statement that chain `chain_id` had hash `hash` at `seq` at `created_at`."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (Index("ix_audit_checkpoints_chain_id_seq", "chain_id", "seq"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    chain_id: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(String(16))
    # Events up to and including this seq were purged when the checkpoint was made (0: none).
    purged_through: Mapped[int] = mapped_column(BigInteger, default=0)
    signature: Mapped[str] = mapped_column(Text)


class AuditPurgePermit(Base):
    """Lets the DELETE trigger pass for events of `chain_id` up to `through_seq`; written and
    removed inside the purge's own transaction."""

    __tablename__ = "audit_purge_permits"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    chain_id: Mapped[str] = mapped_column(String(40))
    through_seq: Mapped[int] = mapped_column(BigInteger)
