"""Every query of identity. Users are global; API keys are always read within their org."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, String, bindparam, column, delete, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tenantry.identity.models import (
    ApiKey,
    LoginSession,
    LoginThrottle,
    MfaBackupCode,
    MfaChallenge,
    MfaFactor,
    PasswordHistory,
    RefreshToken,
    User,
)
from tenantry.kit.clock import as_utc
from tenantry.kit.db import DriverStatement, JSONType, UTCDateTime
from tenantry.kit.pagination import Page, PageRequest, paginate


def user_by_email(session: Session, email: str) -> User | None:
    return session.scalars(
        select(User).where(User.email_normalized == email.strip().lower())
    ).first()


def user_by_id(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)


def username_taken(session: Session, username: str) -> bool:
    return session.scalar(select(User.id).where(User.username == username)) is not None


def users_by_ids(session: Session, user_ids: list[str]) -> dict[str, User]:
    if not user_ids:
        return {}
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(user_ids)))}


def throttle_for(session: Session, email_normalized: str) -> LoginThrottle | None:
    return session.get(LoginThrottle, email_normalized)


def throttle_for_update(session: Session, email_normalized: str, *, now: datetime) -> LoginThrottle:
    """The email's throttle row, created if missing and locked until commit, so that concurrent
    failed sign-ins are each counted (no lost updates on PostgreSQL)."""
    query = (
        select(LoginThrottle)
        .where(LoginThrottle.email_normalized == email_normalized)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    found = session.scalars(query).first()
    if found is not None:
        return found
    try:
        with session.begin_nested():
            created = LoginThrottle(
                email_normalized=email_normalized, failures=0, first_failure_at=now
            )
            session.add(created)
            session.flush()
        return created
    except IntegrityError:  # a concurrent failure created it first; wait for it and count on
        return session.scalars(query).one()


@dataclass(frozen=True)
class SessionCredential:
    """What authenticating an access token needs: its session's state and its user's status."""

    expires_at: datetime
    revoked_at: datetime | None
    user_status: str | None


# Every request with an access token reads this: one statement, no ORM object.
_SESSION_CREDENTIAL = text(
    """
    SELECT s.expires_at, s.revoked_at, u.status
    FROM login_sessions s LEFT JOIN users u ON u.id = s.user_id
    WHERE s.id = :session AND s.user_id = :user
    """
).columns(
    column("expires_at", UTCDateTime()),
    column("revoked_at", UTCDateTime()),
    column("status", String),
)


def session_credential(
    session: Session, *, user_id: str, session_id: str
) -> SessionCredential | None:
    found = session.execute(_SESSION_CREDENTIAL, {"session": session_id, "user": user_id}).first()
    return None if found is None else SessionCredential(*found)


def login_session(session: Session, *, user_id: str, session_id: str) -> LoginSession | None:
    found = session.get(LoginSession, session_id)
    return found if found is not None and found.user_id == user_id else None


def unscoped_login_session(session: Session, session_id: str) -> LoginSession | None:
    # Unscoped on purpose: the refresh flow learns the user from the session it finds.
    return session.get(LoginSession, session_id)


def sessions_of(session: Session, *, user_id: str, page: PageRequest) -> Page[LoginSession]:
    query = select(LoginSession).where(
        LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None)
    )
    return paginate(session, query, LoginSession.id, page)


def refresh_token_by_hash(session: Session, digest: str) -> RefreshToken | None:
    # Unscoped: the token is the credential; whoever holds it is identified by it.
    # Locked until commit: two exchanges of one token run one after the other, so the second
    # sees it rotated (reuse: the family is revoked) instead of forking the family.
    return session.scalars(
        select(RefreshToken)
        .where(RefreshToken.token_hash == digest)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def revoke_sessions_of(session: Session, *, user_id: str, now: datetime, reason: str) -> None:
    session.execute(
        update(LoginSession)
        .where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


def revoke_sessions_by_method(
    session: Session, *, user_ids: list[str], method: str, now: datetime, reason: str
) -> int:
    if not user_ids:
        return 0
    result = session.execute(
        update(LoginSession)
        .where(
            LoginSession.user_id.in_(user_ids),
            LoginSession.method == method,
            LoginSession.revoked_at.is_(None),
        )
        .values(revoked_at=now, revoked_reason=reason)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ApiKeyCredential:
    """What authenticating an API key needs: the key's columns and its creator's status."""

    id: str
    org_id: str
    team_id: str | None
    permissions: list[str] | None
    created_by: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    creator_status: str | None
    org_version: int  # the key's org's version stamp (`access.policy`), 0 if never bumped


# Every request with an API key reads this: one statement (the key by its unique hash, joined to
# its creator) as plain SQL with typed result columns, so no ORM object is built per request.
# The org's version stamp comes along: each of the key's requests reads it next (its rates, plan
# and permissions are kept under it), and a round trip costs more than the rest of the lookup.
_API_KEY_CREDENTIAL_SQL = """
    SELECT k.id, k.org_id, k.team_id, k.permissions, k.created_by, k.expires_at,
           k.last_used_at, k.revoked_at, u.status, COALESCE(v.version, 0)
    FROM api_keys k LEFT JOIN users u ON u.id = k.created_by
         LEFT JOIN access_versions v ON v.org_id = k.org_id
    WHERE k.secret_hash = :digest
"""
_API_KEY_CREDENTIAL = text(_API_KEY_CREDENTIAL_SQL).columns(
    column("id", String),
    column("org_id", String),
    column("team_id", String),
    column("permissions", JSONType),
    column("created_by", String),
    column("expires_at", UTCDateTime()),
    column("last_used_at", UTCDateTime()),
    column("revoked_at", UTCDateTime()),
    column("status", String),
    column("org_version", BigInteger),
)
# On PostgreSQL, sent by the driver itself (`kit.db.DriverStatement`): it returns the times in
# the server's zone, made UTC here as `UTCDateTime` does.
_API_KEY_CREDENTIAL_BY_DRIVER = DriverStatement(_API_KEY_CREDENTIAL_SQL)


def api_key_credential(session: Session, digest: str) -> ApiKeyCredential | None:
    # Unscoped: authentication is how the key's org becomes known.
    if session.get_bind().dialect.name != "postgresql":
        found = session.execute(_API_KEY_CREDENTIAL, {"digest": digest}).first()
        return None if found is None else ApiKeyCredential(*found)
    row = _API_KEY_CREDENTIAL_BY_DRIVER.first(session, {"digest": digest})
    if row is None:
        return None
    key_id, org_id, team_id, permissions, created_by, expires, used, revoked, status, v = row
    return ApiKeyCredential(
        key_id,
        org_id,
        team_id,
        permissions,
        created_by,
        _utc(expires),
        _utc(used),
        _utc(revoked),
        status,
        v,
    )


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


def api_key_in_org(session: Session, *, org_id: str, key_id: str) -> ApiKey | None:
    key = session.get(ApiKey, key_id)
    return key if key is not None and key.org_id == org_id else None


def unscoped_api_key(session: Session, key_id: str) -> ApiKey | None:
    # Unscoped: `DELETE /api-keys/{id}` learns the org from the key, then authorizes on it.
    return session.get(ApiKey, key_id)


def api_keys_of_org(
    session: Session, *, org_id: str, page: PageRequest, team_ids: list[str] | None = None
) -> Page[ApiKey]:
    query = select(ApiKey).where(ApiKey.org_id == org_id)
    if team_ids is not None:
        query = query.where(ApiKey.team_id.in_(team_ids))
    return paginate(session, query, ApiKey.id, page)


def touch_api_key(session: Session, *, key_id: str, now: datetime) -> None:
    session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))


# ---- a person's data, for their export and their erasure ----


def all_sessions_of(session: Session, *, user_id: str) -> list[LoginSession]:
    """Every login session of the user, ended ones included (they still hold IPs)."""
    return list(
        session.scalars(
            select(LoginSession).where(LoginSession.user_id == user_id).order_by(LoginSession.id)
        )
    )


def api_keys_created_by(session: Session, *, user_id: str, org_id: str | None) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.created_by == user_id)
    if org_id is not None:
        query = query.where(ApiKey.org_id == org_id)
    return list(session.scalars(query.order_by(ApiKey.id)))


def delete_account(session: Session, *, user_id: str, email_normalized: str) -> None:
    """The user row and everything of identity that points at it. Children first, so the
    result does not depend on ON DELETE CASCADE being enforced."""
    login_ids = select(LoginSession.id).where(LoginSession.user_id == user_id)
    session.execute(delete(RefreshToken).where(RefreshToken.session_id.in_(login_ids)))
    session.execute(delete(LoginSession).where(LoginSession.user_id == user_id))
    session.execute(delete(ApiKey).where(ApiKey.created_by == user_id))
    session.execute(delete(LoginThrottle).where(LoginThrottle.email_normalized == email_normalized))
    delete_mfa(session, user_id=user_id)
    session.execute(delete(PasswordHistory).where(PasswordHistory.user_id == user_id))
    session.execute(delete(User).where(User.id == user_id))


# Which of the key ids a batch of usage events names are the org's: built once.
_API_KEYS_IN_ORG = text("SELECT id FROM api_keys WHERE org_id = :org AND id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)


def api_keys_in_org(session: Session, *, org_id: str, key_ids: Iterable[str]) -> set[str]:
    """Which of `key_ids` are the org's API keys."""
    wanted = sorted(set(key_ids))
    if not wanted:
        return set()
    return set(session.scalars(_API_KEYS_IN_ORG, {"org": org_id, "ids": wanted}))


# ---- the second factor ----


def mfa_factor(session: Session, user_id: str) -> MfaFactor | None:
    return session.get(MfaFactor, user_id)


def mfa_factor_for_update(session: Session, user_id: str) -> MfaFactor | None:
    """Locked until commit: two codes checked at once are counted (and accepted) one by one."""
    return session.scalars(
        select(MfaFactor)
        .where(MfaFactor.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def unused_backup_codes(session: Session, user_id: str) -> list[MfaBackupCode]:
    return list(
        session.scalars(
            select(MfaBackupCode)
            .where(MfaBackupCode.user_id == user_id, MfaBackupCode.used_at.is_(None))
            .order_by(MfaBackupCode.id)
        )
    )


def delete_backup_codes(session: Session, user_id: str) -> None:
    session.execute(delete(MfaBackupCode).where(MfaBackupCode.user_id == user_id))


def delete_mfa(session: Session, *, user_id: str) -> bool:
    """The person's factor, backup codes and pending challenges; whether a factor was there."""
    session.execute(delete(MfaChallenge).where(MfaChallenge.user_id == user_id))
    delete_backup_codes(session, user_id)
    result = session.execute(delete(MfaFactor).where(MfaFactor.user_id == user_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mfa_challenge_by_hash(session: Session, digest: str) -> MfaChallenge | None:
    # Unscoped: the MFA token is the credential of the sign-in's second step. Locked: one use.
    return session.scalars(
        select(MfaChallenge)
        .where(MfaChallenge.token_hash == digest)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def users_with_mfa(session: Session, user_ids: list[str]) -> set[str]:
    if not user_ids:
        return set()
    return set(
        session.scalars(
            select(MfaFactor.user_id).where(
                MfaFactor.user_id.in_(user_ids), MfaFactor.confirmed_at.is_not(None)
            )
        )
    )


# ---- earlier passwords ----


def password_history(session: Session, *, user_id: str, limit: int) -> list[PasswordHistory]:
    return list(
        session.scalars(
            select(PasswordHistory)
            .where(PasswordHistory.user_id == user_id)
            .order_by(PasswordHistory.created_at.desc(), PasswordHistory.id.desc())
            .limit(limit)
        )
    )
