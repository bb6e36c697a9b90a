"""`Idempotency-Key` records: the first request with a key stores its response; retries replay it.

The record is inserted in the same transaction as the work it guards. A concurrent duplicate
therefore waits on the unique index (PostgreSQL) or on the write lock (SQLite) until the first
commits, then finds the stored response and replays it: twenty duplicates create one thing.
If the first request fails, its transaction (and the record) rolls back and a retry runs afresh.
Stored responses can carry secrets shown once (API keys, tokens), so they are kept encrypted with
a key derived from the server secret, never in the clear.
"""

from __future__ import annotations

import functools
import hashlib
import os
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Integer, LargeBinary, String, UniqueConstraint, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from tenantry.kit.db import Base, UTCDateTime
from tenantry.kit.errors import Conflict, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.kit.security import derive_key

MAX_KEY_LENGTH = 255


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Replay(Exception):
    """Raised to answer a request with a response stored earlier under the same key."""

    def __init__(self, status_code: int, body: bytes) -> None:
        super().__init__("idempotent replay")
        self.status_code = status_code
        self.body = body


def scope_of(credential: str | None, fingerprint: str) -> str:
    """Keys are scoped to the credential that sent them, so two callers never share a key.

    Anonymous requests (sign-up, onboarding) have no credential: their scope includes the request
    itself, so a replay (which carries tokens) only ever answers someone who sent the same body,
    password included.
    """
    owner = credential if credential else "anonymous:" + fingerprint
    return hashlib.sha256(owner.encode()).hexdigest()


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@functools.lru_cache(maxsize=4)
def _cipher(secret: str) -> AESGCM:
    return AESGCM(derive_key(secret, "idempotency-responses"))


def _bound_to(record: IdempotencyRecord) -> bytes:
    # A stored body only decrypts for the record it was written for.
    return f"{record.scope}\n{record.key}".encode()


def _seal(record: IdempotencyRecord, body: bytes, secret: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + _cipher(secret).encrypt(nonce, body, _bound_to(record))


def _unseal(record: IdempotencyRecord, stored: bytes, secret: str) -> bytes | None:
    try:
        return _cipher(secret).decrypt(stored[:12], stored[12:], _bound_to(record))
    except (InvalidTag, ValueError):
        return None  # written under another server secret


def _existing(session: Session, scope: str, key: str) -> IdempotencyRecord | None:
    return session.scalars(
        select(IdempotencyRecord).where(
            IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
        )
    ).first()


def _answer_from(record: IdempotencyRecord, fingerprint: str, secret: str) -> Exception:
    if record.request_hash != fingerprint:
        return Unprocessable(
            "This Idempotency-Key was used with a different request",
            code="idempotency_key_reused",
        )
    if record.status_code is None or record.response_body is None:
        return Conflict(
            "A request with this Idempotency-Key is still in progress",
            code="idempotency_in_progress",
        )
    body = _unseal(record, record.response_body, secret)
    if body is None:
        return Conflict(
            "The stored response of this Idempotency-Key cannot be read; use a new key",
            code="idempotency_key_unreadable",
        )
    return Replay(record.status_code, body)


def claim(
    session: Session,
    *,
    scope: str,
    key: str,
    fingerprint: str,
    now: datetime,
    ttl: timedelta,
    secret: str,
) -> IdempotencyRecord:
    """Claim `key` for this request, or raise Replay / a problem if it was used before."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise Unprocessable(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters",
            code="invalid_idempotency_key",
        )
    record = _existing(session, scope, key)
    if record is not None and record.created_at < now - ttl:
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record.id))
        record = None
    if record is not None:
        raise _answer_from(record, fingerprint, secret)
    record = IdempotencyRecord(
        id=new_id("idem"), scope=scope, key=key, request_hash=fingerprint, created_at=now
    )
    try:
        with session.begin_nested():
            session.add(record)
            session.flush()
    except IntegrityError:
        # Another request with this key committed while we waited on the unique index.
        session.rollback()
        winner = _existing(session, scope, key)
        if winner is None:  # it rolled back instead: nothing to replay, let the caller retry
            raise Conflict(
                "A request with this Idempotency-Key was in progress; retry",
                code="idempotency_in_progress",
            ) from None
        raise _answer_from(winner, fingerprint, secret) from None
    return record


def store_response(
    record: IdempotencyRecord, status_code: int, body: bytes, *, secret: str
) -> None:
    record.status_code = status_code
    record.response_body = _seal(record, body, secret)


def delete_expired(session: Session, *, now: datetime, ttl: timedelta) -> int:
    """Forget records past their lifetime (their stored answers may carry personal data, even
    encrypted); a record is otherwise only dropped when its key is used again."""
    result = session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - ttl)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
