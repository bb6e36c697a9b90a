"""Tables of identity: users, login sessions and refresh tokens, login throttles, API keys, the
second factor (TOTP, backup codes, the sign-in's pending MFA step) and past passwords."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.kit.db import Base, UTCDateTime


class UserStatus(StrEnum):
    # Any other value (none is written yet; the column is open for suspension by SCIM) means:
    # no sign-in, no token refresh, none of the person's API keys works.
    ACTIVE = "active"


class SignInMethod(StrEnum):
    PASSWORD = "password"
    SSO = "sso"


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    # Lower-cased copy: emails are unique regardless of case.
    email_normalized: Mapped[str] = mapped_column(String(254), unique=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=UserStatus.ACTIVE.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # When the password was last set (an org's maximum password age counts from it); None for
    # accounts made before it was kept, which count from `created_at`.
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LoginSession(Base):
    """One signed-in device; its refresh tokens form one rotation family."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)
    # How the person signed in: `password`, or `sso` (an identity provider vouched for them).
    # An org that requires SSO ends its people's password sessions, not their SSO ones.
    method: Mapped[str] = mapped_column(String(16), default=SignInMethod.PASSWORD.value)
    # The idle timeout of the strictest org security policy of the person when the session
    # started: a refresh after this long unused ends the session. None: no idle limit.
    idle_timeout_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("login_sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set when the token was exchanged; presenting it again means it leaked.
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LoginThrottle(Base):
    """Failed sign-ins per email (known or not, so throttling reveals nothing about accounts)."""

    __tablename__ = "login_throttles"

    email_normalized: Mapped[str] = mapped_column(String(254), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_org_id_created_at", "org_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    team_id: Mapped[str | None] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), nullable=True
    )
    name: Mapped[str] = mapped_column(String(100))
    # The first characters of the secret, safe to show so people can tell keys apart.
    display_prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    permissions: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "team_id": self.team_id, "permissions": self.permissions}


class MfaMethod(StrEnum):
    TOTP = "totp"


class MfaFactor(Base):
    """A person's second factor: a TOTP seed (sealed at rest, `kit.sealing`), confirmed by a
    first valid code. Failed codes are counted here, per person, so a new sign-in challenge
    gives no fresh attempts."""

    __tablename__ = "mfa_factors"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    method: Mapped[str] = mapped_column(String(16), default=MfaMethod.TOTP.value)
    secret_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The last TOTP time step accepted: a code is good once (no replay within its window).
    last_used_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class MfaBackupCode(Base):
    """One single-use backup code, kept as a keyed hash (HMAC under a key derived from the
    server secret: a copy of the database alone does not let anyone test guesses)."""

    __tablename__ = "mfa_backup_codes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class MfaChallengePurpose(StrEnum):
    SIGN_IN = "sign_in"  # the password was right; a code finishes the sign-in
    ENROL = "enrol"  # an org requires MFA and its grace has ended: enrol, then sign in


class MfaChallenge(Base):
    """The second step of a sign-in: the short-lived MFA token (kept as a hash) that a correct
    password earns, good once."""

    __tablename__ = "mfa_challenges"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16), default=MfaChallengePurpose.SIGN_IN.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PasswordHistory(Base):
    """Hashes of a person's earlier passwords, for an org's "not one of the last N" rule."""

    __tablename__ = "password_history"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
