"""Accounts, sign-in, token rotation, sessions and API keys."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session
from zxcvbn import zxcvbn

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission, is_known_permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize, can, is_in_org
from tenantry.identity import hooks, mfa, repository
from tenantry.identity.hooks import AccountRules, Ruled
from tenantry.identity.models import (
    ApiKey,
    LoginSession,
    LoginThrottle,
    PasswordHistory,
    RefreshToken,
    SignInMethod,
    User,
    UserStatus,
)
from tenantry.kit.clock import as_utc
from tenantry.kit.context import Ctx
from tenantry.kit.errors import (
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    TooManyRequests,
    Unauthenticated,
    Unprocessable,
)
from tenantry.kit.ids import new_id
from tenantry.kit.pagination import Page, PageRequest
from tenantry.kit.security import (
    AccessTokens,
    Passwords,
    TokenError,
    derive_key,
    new_secret,
    token_hash,
)
from tenantry.kit.stamps import note_version

API_KEY_PREFIX = "tnt_"
REFRESH_TOKEN_PREFIX = "tnr_"
MAX_PASSWORD_LENGTH = 256
USERNAME_PATTERN = re.compile(r"[^a-z0-9_.-]+")


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    session_id: str
    user: User


@dataclass(frozen=True)
class IssuedApiKey:
    key: ApiKey
    secret: str


def check_password_policy(password: str, *, email: str, min_length: int) -> None:
    if len(password) < min_length:
        raise Unprocessable(
            f"Password must be at least {min_length} characters", code="weak_password"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Unprocessable(
            f"Password must be at most {MAX_PASSWORD_LENGTH} characters", code="weak_password"
        )
    if password.strip().lower() == email.strip().lower():
        raise Unprocessable("Password must not be the email address", code="weak_password")
    if len(set(password)) < 4:
        raise Unprocessable("Password is too repetitive", code="weak_password")


# zxcvbn reads at most this many characters (a longer password is judged on its start).
COMPLEXITY_CHARACTERS = 72
# Password history kept per person: the most any policy may ask for.
MAX_PASSWORD_HISTORY = 24
SYMBOLS = re.compile(r"[^A-Za-z0-9]")


def complexity_score(password: str, *, email: str = "") -> int:
    """0 to 100: five times the decimal logarithm of the guesses zxcvbn estimates an attacker
    needs (capped), so 70 means about 10^14 guesses. zxcvbn knows common passwords, words,
    names, dates, keyboard patterns and l33t substitutions; the email's parts count as known."""
    hints = [part for part in re.split(r"[@.+_-]", email.lower()) if len(part) > 2]
    found = zxcvbn(password[:COMPLEXITY_CHARACTERS], user_inputs=hints)
    return max(0, min(100, math.floor(5 * float(found["guesses_log10"]))))


def _refuse_password(message: str, rule: str, ruled: Ruled[Any]) -> Unprocessable:
    return Unprocessable(
        f"{message} (security policy of {ruled.org})",
        code="weak_password",
        extra={"policy": "security_policy", "org": ruled.org, "rule": rule},
    )


def check_account_password(
    session: Session,
    user: User,
    password: str,
    *,
    passwords: Passwords,
    min_length: int,
    rules: AccountRules | None = None,
) -> None:
    """The deployment's rules, then the strictest of the person's orgs' (each refusal names
    the org and the rule)."""
    check_password_policy(password, email=user.email, min_length=min_length)
    rules = rules or hooks.account_rules(session, user.id)
    if rules.min_length is not None and len(password) < rules.min_length.value:
        raise _refuse_password(
            f"Password must be at least {rules.min_length.value} characters",
            "min_length",
            rules.min_length,
        )
    classes = (
        (rules.require_uppercase, "require_uppercase", "an upper-case letter", str.isupper),
        (rules.require_lowercase, "require_lowercase", "a lower-case letter", str.islower),
        (rules.require_digit, "require_digit", "a digit", str.isdigit),
        (rules.require_symbol, "require_symbol", "a symbol", lambda c: bool(SYMBOLS.match(c))),
    )
    for ruled, rule, what, test in classes:
        if ruled is not None and ruled.value and not any(test(c) for c in password):
            raise _refuse_password(f"Password must contain {what}", rule, ruled)
    if rules.min_complexity is not None:
        score = complexity_score(password, email=user.email)
        if score < rules.min_complexity.value:
            raise _refuse_password(
                f"Password is too easy to guess (complexity {score}, "
                f"at least {rules.min_complexity.value} needed)",
                "min_complexity",
                rules.min_complexity,
            )
    if rules.history is not None and rules.history.value > 0:
        earlier = [user.password_hash] if user.password_hash else []
        earlier += [
            h.password_hash
            for h in repository.password_history(
                session, user_id=user.id, limit=rules.history.value - 1
            )
        ]
        if any(passwords.verify(h, password) for h in earlier[: rules.history.value]):
            raise _refuse_password(
                f"Password must differ from your last {rules.history.value}",
                "history",
                rules.history,
            )


def _set_password(ctx: Ctx, user: User, new_hash: str) -> None:
    """The new hash; the old one joins the history an org's "last N" rule reads."""
    now = ctx.clock.now()
    if user.password_hash:
        ctx.session.add(
            PasswordHistory(
                id=new_id("pwh"), user_id=user.id, password_hash=user.password_hash, created_at=now
            )
        )
        kept = repository.password_history(
            ctx.session, user_id=user.id, limit=MAX_PASSWORD_HISTORY + 1
        )
        for old in kept[MAX_PASSWORD_HISTORY:]:
            ctx.session.delete(old)
    user.password_hash = new_hash
    user.password_changed_at = now
    user.updated_at = now


def _username_from(session: Session, email: str, wanted: str | None) -> str:
    if wanted:
        if repository.username_taken(session, wanted):
            raise Conflict(f"Username {wanted!r} is taken", code="username_taken")
        return wanted
    base = USERNAME_PATTERN.sub("-", email.split("@", 1)[0].lower()).strip("-.") or "user"
    base = base[:48]
    candidate, n = base, 1
    while repository.username_taken(session, candidate):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def create_user(
    ctx: Ctx,
    *,
    passwords: Passwords,
    email: str,
    password: str,
    username: str | None = None,
    full_name: str = "",
) -> User:
    if repository.user_by_email(ctx.session, email) is not None:
        raise Conflict("An account with this email already exists", code="email_taken")
    check_password_policy(password, email=email, min_length=ctx.settings.password_min_length)
    now = ctx.clock.now()
    user = User(
        id=new_id("usr"),
        email=email.strip(),
        email_normalized=email.strip().lower(),
        username=_username_from(ctx.session, email, username),
        full_name=full_name,
        password_hash=passwords.hash(password),
        status=UserStatus.ACTIVE,
        created_at=now,
        updated_at=now,
        password_changed_at=now,
    )
    ctx.session.add(user)
    ctx.session.flush()
    return user


def create_federated_user(ctx: Ctx, *, email: str, full_name: str = "") -> User:
    """An account an identity provider vouches for (SSO's just-in-time provisioning): no
    password; the person signs in through their provider, or sets a password by a reset."""
    if repository.user_by_email(ctx.session, email) is not None:
        raise Conflict("An account with this email already exists", code="email_taken")
    now = ctx.clock.now()
    user = User(
        id=new_id("usr"),
        email=email.strip(),
        email_normalized=email.strip().lower(),
        username=_username_from(ctx.session, email, None),
        full_name=full_name[:200],
        password_hash=None,
        status=UserStatus.ACTIVE,
        created_at=now,
        updated_at=now,
    )
    ctx.session.add(user)
    ctx.session.flush()
    return user


def end_password_sessions(ctx: Ctx, *, user_ids: list[str], reason: str) -> int:
    """Revoke the live password sessions (and so their tokens) of these people; how many."""
    return repository.revoke_sessions_by_method(
        ctx.session,
        user_ids=user_ids,
        method=SignInMethod.PASSWORD.value,
        now=ctx.clock.now(),
        reason=reason,
    )


def start_session(
    ctx: Ctx,
    *,
    tokens: AccessTokens,
    user: User,
    method: SignInMethod = SignInMethod.PASSWORD,
    rules: AccountRules | None = None,
) -> IssuedTokens:
    """A login session; its length and idle limit are the strictest of the person's orgs'
    session timeouts at its start (a policy changed later applies to sessions started later)."""
    now = ctx.clock.now()
    rules = rules or hooks.account_rules(ctx.session, user.id)
    lifetime = ctx.settings.refresh_token_ttl_seconds
    if rules.session_absolute_seconds is not None:
        lifetime = min(lifetime, rules.session_absolute_seconds.value)
    idle = rules.session_idle_seconds.value if rules.session_idle_seconds is not None else None
    login = LoginSession(
        id=new_id("ses"),
        user_id=user.id,
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(seconds=lifetime),
        ip=ctx.origin.ip,
        user_agent=ctx.origin.user_agent,
        method=method.value,
        idle_timeout_seconds=idle,
    )
    ctx.session.add(login)
    ctx.session.flush()
    return _issue(ctx, tokens=tokens, user=user, login=login)


def _issue(ctx: Ctx, *, tokens: AccessTokens, user: User, login: LoginSession) -> IssuedTokens:
    now = ctx.clock.now()
    refresh = new_secret(REFRESH_TOKEN_PREFIX)
    ctx.session.add(
        RefreshToken(
            id=new_id("rtk"),
            session_id=login.id,
            token_hash=token_hash(refresh),
            created_at=now,
            expires_at=login.expires_at,
        )
    )
    access, expires = tokens.issue(user_id=user.id, session_id=login.id, now=now)
    return IssuedTokens(access, expires, refresh, login.id, user)


class LoginRefused(Exception):
    """Wrong email or password; the caller records the failure in its own transaction."""


def check_not_throttled(ctx: Ctx, email: str) -> None:
    throttle = repository.throttle_for(ctx.session, email.strip().lower())
    now = ctx.clock.now()
    if throttle is not None and throttle.locked_until is not None:
        locked_until = as_utc(throttle.locked_until)
        if locked_until > now:
            wait = int((locked_until - now).total_seconds()) + 1
            raise TooManyRequests(
                "Too many failed sign-ins; try again later",
                code="login_throttled",
                headers={"Retry-After": str(wait)},
                extra={"retry_after": wait},
            )


def login(
    ctx: Ctx, *, passwords: Passwords, tokens: AccessTokens, email: str, password: str
) -> IssuedTokens | mfa.MfaPending:
    """A session for a right email and password; or, when the person has a second factor (or
    an org of theirs requires one and its grace has ended), the MFA token of the second step."""
    check_not_throttled(ctx, email)
    user = repository.user_by_email(ctx.session, email)
    stored = user.password_hash if user is not None else None
    if not passwords.verify(stored, password) or user is None or user.status != UserStatus.ACTIVE:
        raise LoginRefused()
    # Only once the password is right: a policy's refusal tells nothing to someone guessing.
    hooks.check_password_sign_in(ctx.session, user)
    rules = hooks.account_rules(ctx.session, user.id)
    _check_password_age(ctx, user, rules)
    throttle = repository.throttle_for(ctx.session, user.email_normalized)
    if throttle is not None:
        ctx.session.delete(throttle)
    if user.password_hash and passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash(password)
    required = rules.mfa_required_by
    if mfa.has_mfa(ctx.session, user.id):
        pending = mfa.challenge(ctx, user)
    elif required is not None and required.value <= ctx.clock.now():
        pending = mfa.challenge(ctx, user, required_by=required.org)
    else:
        return _signed_in(ctx, tokens=tokens, user=user, rules=rules)
    # The password step, recorded as the sign-in's action; the code step is `auth.mfa`.
    audit.record(
        ctx,
        None,
        org_id=None,
        target_type="user",
        target_id=user.id,
        actor=("user", user.id),
        summary={"mfa": "enrolment_required" if pending.enrolment_required else "required"},
    )
    return pending


def _signed_in(
    ctx: Ctx, *, tokens: AccessTokens, user: User, rules: AccountRules | None = None
) -> IssuedTokens:
    user.last_login_at = ctx.clock.now()
    issued = start_session(ctx, tokens=tokens, user=user, rules=rules)
    audit.record(
        ctx,
        None,
        org_id=None,
        target_type="session",
        target_id=issued.session_id,
        actor=("user", user.id),
    )
    return issued


def _check_password_age(ctx: Ctx, user: User, rules: AccountRules) -> None:
    age = rules.max_age_days
    if age is None or user.password_hash is None:
        return
    since = as_utc(user.password_changed_at or user.created_at)
    if ctx.clock.now() - since > timedelta(days=age.value):
        raise Forbidden(
            f"Your password is older than {age.value} days, the most the security policy of "
            f"{age.org} allows: choose a new one with 'Forgotten your password?'",
            code="password_expired",
            extra={"policy": "security_policy", "org": age.org, "rule": "max_age_days"},
        )


def complete_mfa_sign_in(
    ctx: Ctx, *, tokens: AccessTokens, mfa_token: str, code: str
) -> tuple[IssuedTokens, list[str]]:
    """The second step: a session once the code is right, with the backup codes of an
    enrolment this step finished (else none). `mfa.MfaRefused` for a wrong code."""
    step = mfa.complete(ctx, token=mfa_token, code=code)
    return _signed_in(ctx, tokens=tokens, user=step.user), step.backup_codes


def record_failed_login(ctx: Ctx, *, email: str) -> None:
    key = email.strip().lower()[:254]
    now = ctx.clock.now()
    user = repository.user_by_email(ctx.session, key)
    attempts, seconds = ctx.settings.login_max_failures, ctx.settings.login_lockout_seconds
    if user is not None:  # an org's lockout rule, where stricter than the deployment's
        rules = hooks.account_rules(ctx.session, user.id)
        if rules.lockout_attempts is not None:
            attempts = min(attempts, rules.lockout_attempts.value)
        if rules.lockout_seconds is not None:
            seconds = max(seconds, rules.lockout_seconds.value)
    window = timedelta(seconds=seconds)
    throttle = repository.throttle_for_update(ctx.session, key, now=now)
    if as_utc(throttle.first_failure_at) < now - window:
        throttle.failures, throttle.first_failure_at, throttle.locked_until = 0, now, None
    throttle.failures += 1
    if throttle.failures >= attempts:
        throttle.locked_until = now + window
    audit.record(
        ctx,
        None,
        org_id=None,
        target_type="user" if user else None,
        target_id=user.id if user else None,
        result="failure",
        summary={"reason": "bad_credentials", "failures": throttle.failures},
    )


def refresh(ctx: Ctx, *, tokens: AccessTokens, refresh_token: str) -> IssuedTokens:
    """Exchange a refresh token for new ones; presenting a rotated token revokes its family."""
    stored = repository.refresh_token_by_hash(ctx.session, token_hash(refresh_token))
    if stored is None:
        raise Unauthenticated("Refresh token is not valid", code="invalid_refresh_token")
    now = ctx.clock.now()
    login = repository.unscoped_login_session(ctx.session, stored.session_id)
    if login is None:
        raise Unauthenticated("Refresh token is not valid", code="invalid_refresh_token")
    if stored.rotated_at is not None:
        if login.revoked_at is None:
            login.revoked_at, login.revoked_reason = now, "refresh_token_reuse"
        ctx.state["refresh_reuse"] = login
        raise Unauthenticated(
            "Refresh token was already used; the session has been revoked",
            code="refresh_token_reused",
        )
    if (
        login.revoked_at is not None
        or as_utc(login.expires_at) <= now
        or as_utc(stored.expires_at) <= now
    ):
        raise Unauthenticated("Session has ended; sign in again", code="session_ended")
    user = repository.user_by_id(ctx.session, login.user_id)
    if user is None or user.status != UserStatus.ACTIVE:
        raise Unauthenticated("Account is not active", code="account_inactive")
    if login.idle_timeout_seconds is not None and as_utc(login.last_used_at) < now - timedelta(
        seconds=login.idle_timeout_seconds
    ):
        # Kept though the caller gets 401 (`ctx.state`): the session is over for good.
        login.revoked_at, login.revoked_reason = now, "idle_timeout"
        ctx.state["session_idle"] = login
        raise Unauthenticated("Session was idle too long; sign in again", code="session_ended")
    if login.method == SignInMethod.PASSWORD:
        hooks.check_password_sign_in(ctx.session, user)
    stored.rotated_at = now
    login.last_used_at = now
    issued = _issue(ctx, tokens=tokens, user=user, login=login)
    audit.record(
        ctx, None, org_id=None, target_type="session", target_id=login.id, actor=("user", user.id)
    )
    return issued


def logout(ctx: Ctx, principal: Principal) -> None:
    if principal.session_id is None:
        raise Unprocessable(
            "Only a signed-in session can log out; revoke API keys instead", code="not_a_session"
        )
    login = repository.login_session(
        ctx.session, user_id=principal.user_id, session_id=principal.session_id
    )
    if login is not None and login.revoked_at is None:
        login.revoked_at, login.revoked_reason = ctx.clock.now(), "logout"
    audit.record(ctx, principal, org_id=None, target_type="session", target_id=principal.session_id)


def update_profile(ctx: Ctx, principal: Principal, changes: dict[str, Any]) -> User:
    """The caller's own name and username (`changes` holds only the fields sent)."""
    user = repository.user_by_id(ctx.session, principal.user_id)
    assert user is not None
    if (
        "username" in changes
        and changes["username"] != user.username
        and repository.username_taken(ctx.session, changes["username"])
    ):
        raise Conflict(f"Username {changes['username']!r} is taken", code="username_taken")
    # A profile's values are personal: kept beside the chain, where erasure can remove them.
    personal = {"before": {k: getattr(user, k) for k in changes}, "after": changes}
    for key, value in changes.items():
        setattr(user, key, value)
    user.updated_at = ctx.clock.now()
    audit.record(
        ctx,
        principal,
        org_id=None,
        target_type="user",
        target_id=user.id,
        summary={"changed": sorted(changes)},
        personal_details=personal,
    )
    return user


def change_password(
    ctx: Ctx,
    principal: Principal,
    *,
    passwords: Passwords,
    current_password: str,
    new_password: str,
) -> None:
    """A new password for the caller; every other session of theirs ends, this one stays."""
    user = repository.user_by_id(ctx.session, principal.user_id)
    assert user is not None
    if principal.kind != "user" or not passwords.verify(user.password_hash, current_password):
        raise Unauthenticated("The current password is wrong", code="invalid_credentials")
    check_account_password(
        ctx.session,
        user,
        new_password,
        passwords=passwords,
        min_length=ctx.settings.password_min_length,
    )
    _set_password(ctx, user, passwords.hash(new_password))
    repository.revoke_sessions_of(
        ctx.session, user_id=user.id, now=ctx.clock.now(), reason="password_changed"
    )
    if principal.session_id:
        current = repository.login_session(
            ctx.session, user_id=user.id, session_id=principal.session_id
        )
        if current is not None:
            current.revoked_at, current.revoked_reason = None, None
    audit.record(ctx, principal, org_id=None, target_type="user", target_id=user.id)


# ---- a forgotten password: a link mailed to the account's address ----

PASSWORD_RESET_PURPOSE = "password-reset"


def _reset_mac(secret: str, user: User, expires: int) -> str:
    # The stored hash is part of what is signed: a link stops working once the password
    # changes, by its own use or any other, so it can be used once.
    key = derive_key(secret, PASSWORD_RESET_PURPOSE)
    message = f"{user.id}.{expires}.{user.password_hash or ''}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def password_reset_token(ctx: Ctx, *, email: str, secret: str) -> tuple[User, str] | None:
    """The account of `email` and a token that resets its password, valid for
    `password_reset_ttl_seconds`; None when there is no active account (the caller says the
    same either way)."""
    user = repository.user_by_email(ctx.session, email)
    if user is None or user.status != UserStatus.ACTIVE:
        return None
    expires = int(ctx.clock.now().timestamp()) + ctx.settings.password_reset_ttl_seconds
    return user, f"{user.id}.{expires}.{_reset_mac(secret, user, expires)}"


def user_of_reset_token(ctx: Ctx, token: str, *, secret: str) -> User:
    """The account a reset token is for; 410 when it expired or was used (or is not one)."""
    refused = Gone(
        "This link has expired or was already used; ask for a new one", code="reset_link_invalid"
    )
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        raise refused
    user_id, expires, mac = parts[0], int(parts[1]), parts[2]
    user = repository.user_by_id(ctx.session, user_id)
    if (
        user is None
        or user.status != UserStatus.ACTIVE
        or expires <= ctx.clock.now().timestamp()
        or not hmac.compare_digest(mac, _reset_mac(secret, user, expires))
    ):
        raise refused
    return user


def reset_password(
    ctx: Ctx, *, passwords: Passwords, token: str, new_password: str, secret: str
) -> User:
    """A new password through a mailed link: every session of the account ends (whoever knew
    the old password is signed out), and the link cannot be used again."""
    user = user_of_reset_token(ctx, token, secret=secret)
    check_account_password(
        ctx.session,
        user,
        new_password,
        passwords=passwords,
        min_length=ctx.settings.password_min_length,
    )
    now = ctx.clock.now()
    _set_password(ctx, user, passwords.hash(new_password))
    repository.revoke_sessions_of(ctx.session, user_id=user.id, now=now, reason="password_reset")
    throttle = repository.throttle_for(ctx.session, user.email_normalized)
    if throttle is not None:  # whoever proved the address may sign in at once
        ctx.session.delete(throttle)
    audit.record(
        ctx, None, org_id=None, target_type="user", target_id=user.id, actor=("user", user.id)
    )
    return user


def list_sessions(session: Session, principal: Principal, page: PageRequest) -> Page[LoginSession]:
    return repository.sessions_of(session, user_id=principal.user_id, page=page)


def revoke_session(ctx: Ctx, principal: Principal, session_id: str) -> LoginSession:
    login = repository.login_session(ctx.session, user_id=principal.user_id, session_id=session_id)
    if login is None:
        raise NotFound("Session not found")
    if login.revoked_at is None:
        login.revoked_at, login.revoked_reason = ctx.clock.now(), "revoked_by_user"
    audit.record(ctx, principal, org_id=None, target_type="session", target_id=login.id)
    return login


def authenticate(
    ctx: Ctx, *, tokens: AccessTokens, credential: str, touch: TouchApiKey
) -> Principal:
    now = ctx.clock.now()
    if credential.startswith(API_KEY_PREFIX):
        key = repository.api_key_credential(ctx.session, token_hash(credential))
        if key is None or key.revoked_at is not None:
            raise Unauthenticated("API key is not valid", code="invalid_api_key")
        if key.expires_at is not None and as_utc(key.expires_at) <= now:
            raise Unauthenticated("API key has expired", code="api_key_expired")
        if key.creator_status != UserStatus.ACTIVE:
            raise Unauthenticated("API key is not valid", code="invalid_api_key")
        note_version(ctx.session, key.org_id, key.org_version)
        last = as_utc(key.last_used_at) if key.last_used_at else None
        if (
            last is None
            or (now - last).total_seconds() >= ctx.settings.api_key_touch_interval_seconds
        ):
            touch(key.id, now)
        return Principal(
            kind="api_key",
            user_id=key.created_by,
            api_key_id=key.id,
            key_org_id=key.org_id,
            key_team_id=key.team_id,
            key_permissions=frozenset(Permission(p) for p in key.permissions)
            if key.permissions is not None
            else None,
        )
    try:
        claims = tokens.verify(credential, now=now)
    except TokenError as exc:
        raise Unauthenticated("Access token is not valid", code="invalid_token") from exc
    return authenticate_session(ctx, user_id=claims.user_id, session_id=claims.session_id)


def authenticate_session(ctx: Ctx, *, user_id: str, session_id: str) -> Principal:
    """The person of a live login session: an access token's, or the dashboard's cookie's. A
    revoked or expired session, or an account no longer active, ends both on their next use."""
    login = repository.session_credential(ctx.session, user_id=user_id, session_id=session_id)
    if login is None or login.revoked_at is not None or as_utc(login.expires_at) <= ctx.clock.now():
        raise Unauthenticated("Session has ended; sign in again", code="session_ended")
    if login.user_status != UserStatus.ACTIVE:
        raise Unauthenticated("Account is not active", code="account_inactive")
    return Principal(kind="user", user_id=user_id, session_id=session_id)


class TouchApiKey:
    """Records an API key's last use without joining (or deadlocking) the request's transaction.
    The write session is made only when a use is recorded (once a minute per key), not on
    every read request."""

    def __init__(self, ctx: Ctx, write_session: Callable[[], Session] | None) -> None:
        self._ctx = ctx
        self._write_session = write_session

    def __call__(self, key_id: str, now: datetime) -> None:
        if self._ctx.write or self._write_session is None:
            repository.touch_api_key(self._ctx.session, key_id=key_id, now=now)
            return
        with self._write_session() as session:
            repository.touch_api_key(session, key_id=key_id, now=now)
            session.commit()


def create_api_key(
    ctx: Ctx,
    principal: Principal,
    *,
    org_id: str,
    name: str,
    team_id: str | None,
    permissions: list[str] | None,
    expires_at: datetime | None,
) -> IssuedApiKey:
    if principal.kind == "api_key":
        raise Forbidden(
            "API keys cannot create API keys; sign in as a user", code="api_key_cannot_mint"
        )
    if team_id is None:
        authorize(ctx.session, principal, Permission.APIKEY_CREATE, org_id=org_id)
    else:
        authorize(ctx.session, principal, Permission.APIKEY_CREATE, org_id=org_id, team_id=team_id)
    chosen: list[str] | None = None
    if permissions is not None:
        unknown = sorted({p for p in permissions if not is_known_permission(p)})
        if unknown:
            raise Unprocessable(
                f"Unknown permissions: {', '.join(unknown)}", code="unknown_permission"
            )
        chosen = sorted(set(permissions))
        beyond = [
            p
            for p in chosen
            if not can(ctx.session, principal, Permission(p), org_id=org_id, team_id=team_id)
        ]
        if beyond:
            raise Forbidden(
                f"You cannot give a key permissions you do not hold: {', '.join(beyond)}",
                code="permission_escalation",
                extra={"missing_permission": beyond[0]},
            )
    now = ctx.clock.now()
    if expires_at is not None and expires_at <= now:
        raise Unprocessable("expires_at must be in the future", code="invalid_expiry")
    secret = new_secret(API_KEY_PREFIX)
    key = ApiKey(
        id=new_id("key"),
        org_id=org_id,
        team_id=team_id,
        name=name,
        display_prefix=secret[:12],
        secret_hash=token_hash(secret),
        permissions=chosen,
        created_by=principal.user_id,
        created_at=now,
        expires_at=expires_at,
    )
    ctx.session.add(key)
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org_id,
        team_id=team_id,
        target_type="api_key",
        target_id=key.id,
        summary=key.describe(),
    )
    return IssuedApiKey(key=key, secret=secret)


def list_api_keys(
    session: Session, principal: Principal, *, org_id: str, page: PageRequest
) -> Page[ApiKey]:
    authorize(session, principal, Permission.APIKEY_READ, org_id=org_id)
    return repository.api_keys_of_org(session, org_id=org_id, page=page)


def revoke_api_key(ctx: Ctx, principal: Principal, key_id: str) -> ApiKey:
    key = repository.unscoped_api_key(ctx.session, key_id)
    if key is None or not is_in_org(ctx.session, principal, key.org_id):
        raise NotFound("API key not found")
    if key.team_id is None:
        authorize(ctx.session, principal, Permission.APIKEY_REVOKE, org_id=key.org_id)
    else:
        authorize(
            ctx.session, principal, Permission.APIKEY_REVOKE, org_id=key.org_id, team_id=key.team_id
        )
    if key.revoked_at is None:
        key.revoked_at = ctx.clock.now()
    audit.record(
        ctx,
        principal,
        org_id=key.org_id,
        team_id=key.team_id,
        target_type="api_key",
        target_id=key.id,
    )
    return key


def random_password() -> str:
    return secrets.token_urlsafe(18)


# ---- a person's data: export and erasure ----


@dataclass(frozen=True)
class AccountRecords:
    """What identity holds about one person. Sessions and sign-in throttles belong to the
    account, not to an org: an org's view of the person (`org_id` given) leaves them out."""

    user: User
    sessions: list[LoginSession]
    api_keys: list[ApiKey]
    login_throttles: list[LoginThrottle]


def user_by_id(session: Session, user_id: str) -> User | None:
    return repository.user_by_id(session, user_id)


def account_records(session: Session, user: User, *, org_id: str | None) -> AccountRecords:
    keys = repository.api_keys_created_by(session, user_id=user.id, org_id=org_id)
    if org_id is not None:
        return AccountRecords(user=user, sessions=[], api_keys=keys, login_throttles=[])
    throttle = repository.throttle_for(session, user.email_normalized)
    return AccountRecords(
        user=user,
        sessions=repository.all_sessions_of(session, user_id=user.id),
        api_keys=keys,
        login_throttles=[throttle] if throttle is not None else [],
    )


def delete_account(session: Session, user: User) -> None:
    """Erasure: the account, its sessions and refresh tokens, the API keys it created (they
    act for it, so they cannot outlive it) and the sign-in throttle of its email."""
    repository.delete_account(session, user_id=user.id, email_normalized=user.email_normalized)
