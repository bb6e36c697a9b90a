"""The second factor: TOTP enrolment (a provisioning URI and its QR code, confirmed by a first
valid code), ten single-use backup codes, the MFA step of a sign-in with its short-lived token,
and the throttle of wrong codes (counted per person, as wrong passwords are per email).

A TOTP code is good for its 30-second step and one step either side (clock drift), and once:
the last accepted step is kept, so a code seen over a shoulder cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
import segno
from sqlalchemy.orm import Session

from tenantry.authz.principal import Principal
from tenantry.identity import hooks, repository
from tenantry.identity.models import (
    MfaBackupCode,
    MfaChallenge,
    MfaChallengePurpose,
    MfaFactor,
    MfaMethod,
    User,
    UserStatus,
)
from tenantry.kit.clock import as_utc
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, Forbidden, TooManyRequests, Unauthenticated, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.kit.sealing import SealedBox
from tenantry.kit.security import derive_key, new_secret, token_hash

BACKUP_CODES = 10
MFA_TOKEN_PREFIX = "tnm_"
MFA_TOKEN_TTL = timedelta(minutes=5)
TOTP_DIGITS = 6
TOTP_PERIOD = 30
_SEAL_PURPOSE = "mfa-totp-secret"
_BACKUP_PURPOSE = "mfa-backup-code"
# Backup codes: ten characters of an alphabet without look-alikes (about 50 bits), shown as
# `xxxxx-xxxxx`; typed with or without the dash, in either case.
_BACKUP_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


@dataclass(frozen=True)
class Enrolment:
    secret: str
    provisioning_uri: str
    qr_svg: str


@dataclass(frozen=True)
class MfaStatus:
    user_id: str
    enabled: bool
    pending: bool
    confirmed_at: datetime | None
    backup_codes_remaining: int


@dataclass(frozen=True)
class MfaPending:
    """A sign-in whose password was right and whose second step is still to come."""

    token: str
    expires_at: datetime
    user: User
    enrolment_required: bool
    # The org whose policy requires enrolment (when it is required).
    required_by: str | None = None


class MfaRefused(Exception):
    """A wrong code at sign-in; the caller counts it in its own transaction."""

    def __init__(self, user_id: str) -> None:
        super().__init__(user_id)
        self.user_id = user_id


def _box(ctx: Ctx) -> SealedBox:
    return SealedBox(ctx.settings.server_secret(), purpose=_SEAL_PURPOSE)


def _totp(ctx: Ctx, factor: MfaFactor) -> pyotp.TOTP:
    secret = _box(ctx).open(factor.secret_sealed, bound_to=factor.user_id)
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD)


def _backup_hash(ctx: Ctx, user_id: str, code: str) -> str:
    key = derive_key(ctx.settings.server_secret(), _BACKUP_PURPOSE)
    normal = code.replace("-", "").replace(" ", "").lower()
    return hmac.new(key, f"{user_id}:{normal}".encode(), hashlib.sha256).hexdigest()


def _new_backup_codes(ctx: Ctx, user_id: str) -> list[str]:
    repository.delete_backup_codes(ctx.session, user_id)
    now = ctx.clock.now()
    codes = []
    for _ in range(BACKUP_CODES):
        raw = "".join(secrets.choice(_BACKUP_ALPHABET) for _ in range(10))
        code = f"{raw[:5]}-{raw[5:]}"
        codes.append(code)
        ctx.session.add(
            MfaBackupCode(
                id=new_id("mbc"),
                user_id=user_id,
                code_hash=_backup_hash(ctx, user_id, code),
                created_at=now,
            )
        )
    ctx.session.flush()
    return codes


def _own_user(ctx: Ctx, principal: Principal) -> User:
    if principal.kind != "user":
        raise Forbidden(
            "Only a signed-in person manages their second factor, not an API key",
            code="api_key_cannot_manage_mfa",
        )
    user = repository.user_by_id(ctx.session, principal.user_id)
    assert user is not None
    return user


def status(session: Session, principal: Principal) -> MfaStatus:
    factor = repository.mfa_factor(session, principal.user_id)
    confirmed = factor is not None and factor.confirmed_at is not None
    left = len(repository.unused_backup_codes(session, principal.user_id)) if confirmed else 0
    return MfaStatus(
        user_id=principal.user_id,
        enabled=confirmed,
        pending=factor is not None and not confirmed,
        confirmed_at=factor.confirmed_at if factor is not None else None,
        backup_codes_remaining=left,
    )


def qr_svg(uri: str) -> str:
    """The URI as an SVG QR code: plain markup (no script, no style attribute), so the
    dashboard shows it inline under its Content-Security-Policy."""
    return segno.make(uri, error="m").svg_inline(scale=4, border=2, title="TOTP setup code")


def begin_enrolment(ctx: Ctx, principal: Principal) -> Enrolment:
    """A new TOTP seed for the caller, pending until a first valid code confirms it."""
    return _begin(ctx, _own_user(ctx, principal))


def pending_enrolment(ctx: Ctx, principal: Principal) -> Enrolment | None:
    """The enrolment waiting for its first code, shown again (a page reloaded, a code typo)."""
    user = _own_user(ctx, principal)
    factor = repository.mfa_factor(ctx.session, user.id)
    if factor is None or factor.confirmed_at is not None:
        return None
    totp = _totp(ctx, factor)
    uri = totp.provisioning_uri(name=user.email, issuer_name=ctx.settings.mfa_issuer)
    return Enrolment(secret=totp.secret, provisioning_uri=uri, qr_svg=qr_svg(uri))


def _begin(ctx: Ctx, user: User) -> Enrolment:
    factor = repository.mfa_factor(ctx.session, user.id)
    if factor is not None and factor.confirmed_at is not None:
        raise Conflict(
            "Two-factor authentication is already on; turn it off first to enrol again",
            code="mfa_already_enabled",
        )
    secret = pyotp.random_base32()
    sealed = _box(ctx).seal(secret, bound_to=user.id)
    if factor is None:
        factor = MfaFactor(user_id=user.id, failures=0)
        ctx.session.add(factor)
    factor.method = MfaMethod.TOTP.value
    factor.secret_sealed = sealed
    factor.created_at = ctx.clock.now()
    factor.last_used_step = None
    ctx.session.flush()
    uri = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD).provisioning_uri(
        name=user.email, issuer_name=ctx.settings.mfa_issuer
    )
    return Enrolment(secret=secret, provisioning_uri=uri, qr_svg=qr_svg(uri))


def _totp_step(ctx: Ctx, factor: MfaFactor, code: str) -> int | None:
    """The time step `code` is good for (now, or one step either side), if not used yet."""
    if not (len(code) == TOTP_DIGITS and code.isdigit()):
        return None
    totp = _totp(ctx, factor)
    now_step = totp.timecode(ctx.clock.now())
    for step in (now_step, now_step - 1, now_step + 1):
        if factor.last_used_step is not None and step <= factor.last_used_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _accepts(ctx: Ctx, factor: MfaFactor, code: str) -> bool:
    """Whether `code` (a TOTP code, or an unused backup code) proves the factor; uses it up."""
    code = code.strip().replace(" ", "")
    step = _totp_step(ctx, factor, code)
    if step is not None:
        factor.last_used_step = step
        return True
    if factor.confirmed_at is None:
        return False
    digest = _backup_hash(ctx, factor.user_id, code)
    for backup in repository.unused_backup_codes(ctx.session, factor.user_id):
        if hmac.compare_digest(backup.code_hash, digest):
            backup.used_at = ctx.clock.now()
            return True
    return False


def confirm_enrolment(ctx: Ctx, principal: Principal, *, code: str) -> list[str]:
    """Turns the pending factor on with its first valid code; the ten backup codes, shown once."""
    user = _own_user(ctx, principal)
    return _confirm(ctx, user, code)


def _confirm(ctx: Ctx, user: User, code: str) -> list[str]:
    factor = repository.mfa_factor_for_update(ctx.session, user.id)
    if factor is None or factor.confirmed_at is not None:
        raise Conflict("No enrolment is waiting for a code; start one", code="no_mfa_enrolment")
    if not _accepts(ctx, factor, code):
        raise Unprocessable(
            "That code is not right; check the authenticator's clock and try the next code",
            code="invalid_mfa_code",
        )
    factor.confirmed_at = ctx.clock.now()
    factor.failures, factor.locked_until = 0, None
    return _new_backup_codes(ctx, user.id)


def _proven_factor(ctx: Ctx, user: User, code: str) -> MfaFactor:
    """The person's confirmed factor, once `code` proves it (throttled like sign-in codes)."""
    factor = repository.mfa_factor_for_update(ctx.session, user.id)
    if factor is None or factor.confirmed_at is None:
        raise Conflict("Two-factor authentication is not on", code="mfa_not_enabled")
    _check_not_locked(ctx, factor)
    if not _accepts(ctx, factor, code):
        raise MfaRefused(user.id)
    factor.failures, factor.locked_until = 0, None
    return factor


def disable(ctx: Ctx, principal: Principal, *, code: str) -> None:
    user = _own_user(ctx, principal)
    _proven_factor(ctx, user, code)
    repository.delete_mfa(ctx.session, user_id=user.id)


def regenerate_backup_codes(ctx: Ctx, principal: Principal, *, code: str) -> list[str]:
    """Ten new backup codes; the old ones stop working."""
    user = _own_user(ctx, principal)
    _proven_factor(ctx, user, code)
    return _new_backup_codes(ctx, user.id)


def reset(ctx: Ctx, *, user_id: str) -> bool:
    """Removes the person's factor (an org owner's recovery, authorized and audited by the
    caller); whether there was one. The person enrols again at their next sign-in if a policy
    requires it."""
    return repository.delete_mfa(ctx.session, user_id=user_id)


# ---- the sign-in's second step ----


def has_mfa(session: Session, user_id: str) -> bool:
    factor = repository.mfa_factor(session, user_id)
    return factor is not None and factor.confirmed_at is not None


def challenge(ctx: Ctx, user: User, *, required_by: str | None = None) -> MfaPending:
    """The MFA token a right password earns: to send a code with (or, when `required_by`
    names an org that requires MFA and the person has none, to enrol with first)."""
    now = ctx.clock.now()
    token = new_secret(MFA_TOKEN_PREFIX)
    purpose = MfaChallengePurpose.ENROL if required_by else MfaChallengePurpose.SIGN_IN
    ctx.session.add(
        MfaChallenge(
            id=new_id("mfc"),
            user_id=user.id,
            token_hash=token_hash(token),
            purpose=purpose.value,
            created_at=now,
            expires_at=now + MFA_TOKEN_TTL,
        )
    )
    ctx.session.flush()
    return MfaPending(token, now + MFA_TOKEN_TTL, user, bool(required_by), required_by)


def _live_challenge(ctx: Ctx, token: str) -> tuple[MfaChallenge, User]:
    found = repository.mfa_challenge_by_hash(ctx.session, token_hash(token))
    if found is None or found.used_at is not None or as_utc(found.expires_at) <= ctx.clock.now():
        raise Unauthenticated(
            "The MFA token has expired or was used; sign in again", code="invalid_mfa_token"
        )
    user = repository.user_by_id(ctx.session, found.user_id)
    if user is None or user.status != UserStatus.ACTIVE:
        raise Unauthenticated("Account is not active", code="account_inactive")
    return found, user


@dataclass(frozen=True)
class TokenEnrolment:
    user_id: str
    enrolment: Enrolment


def enrol_with_token(ctx: Ctx, *, token: str) -> TokenEnrolment:
    """Enrolment during a sign-in that a policy holds until the person has a second factor."""
    found, user = _live_challenge(ctx, token)
    if found.purpose != MfaChallengePurpose.ENROL:
        raise Conflict("This sign-in asks for a code, not an enrolment", code="mfa_enrolled")
    return TokenEnrolment(user.id, _begin(ctx, user))


@dataclass(frozen=True)
class SecondStep:
    user: User
    # The backup codes of an enrolment finished by this step (shown once), else empty.
    backup_codes: list[str]


def complete(ctx: Ctx, *, token: str, code: str) -> SecondStep:
    """The sign-in's second step: the MFA token and a code (TOTP or backup); the token is used
    up. A wrong code raises `MfaRefused` (the caller counts it); too many lock the person out
    of codes for a while, as wrong passwords do."""
    found, user = _live_challenge(ctx, token)
    if found.purpose == MfaChallengePurpose.ENROL:
        factor = repository.mfa_factor(ctx.session, user.id)
        if factor is not None and factor.confirmed_at is None:
            _check_not_locked(ctx, factor)
            if _totp_step(ctx, factor, code.strip()) is None:
                raise MfaRefused(user.id)
            codes = _confirm(ctx, user, code)
            found.used_at = ctx.clock.now()
            return SecondStep(user, codes)
        if factor is None:
            raise Conflict("Enrol a second factor first", code="mfa_enrolment_required")
    _proven_factor(ctx, user, code)
    found.used_at = ctx.clock.now()
    return SecondStep(user, [])


def _lockout(ctx: Ctx, user_id: str) -> tuple[int, int]:
    rules = hooks.account_rules(ctx.session, user_id)
    attempts = ctx.settings.login_max_failures
    seconds = ctx.settings.login_lockout_seconds
    if rules.lockout_attempts is not None:
        attempts = min(attempts, rules.lockout_attempts.value)
    if rules.lockout_seconds is not None:
        seconds = max(seconds, rules.lockout_seconds.value)
    return attempts, seconds


def _check_not_locked(ctx: Ctx, factor: MfaFactor) -> None:
    now = ctx.clock.now()
    if factor.locked_until is not None and as_utc(factor.locked_until) > now:
        wait = int((as_utc(factor.locked_until) - now).total_seconds()) + 1
        raise TooManyRequests(
            "Too many wrong codes; try again later",
            code="mfa_throttled",
            headers={"Retry-After": str(wait)},
            extra={"retry_after": wait},
        )


def record_failure(ctx: Ctx, *, user_id: str) -> int:
    """Counts a wrong code (in the caller's own transaction); the failures so far."""
    factor = repository.mfa_factor_for_update(ctx.session, user_id)
    if factor is None:
        return 0
    now = ctx.clock.now()
    attempts, seconds = _lockout(ctx, user_id)
    window = timedelta(seconds=seconds)
    if factor.first_failure_at is None or as_utc(factor.first_failure_at) < now - window:
        factor.failures, factor.first_failure_at, factor.locked_until = 0, now, None
    factor.failures += 1
    if factor.failures >= attempts:
        factor.locked_until = now + window
    return factor.failures
