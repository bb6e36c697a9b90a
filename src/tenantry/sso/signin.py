"""Signing in through an identity provider: the trip out (`start`), the answer that comes back
(`finish_oidc`, `finish_saml`) and the one-time code the client exchanges for tokens
(`exchange`), which start a login session like a password sign-in does.

An answer is for one of three purposes: a sign-in (the person is found by (issuer, subject), or
linked, or provisioned just in time, then the mapping rules place them in the org); an admin's
test (what arrived and what the rules would do, stored on the connection, nobody created); or a
signed-in person linking their account to the provider.

An email that already belongs to an account is linked to a provider's identity only with proof:
the person signed in and asked for the link, or the email's domain is verified by the org.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from authlib.common.security import generate_token

from tenantry.audit import service as audit
from tenantry.authz.principal import Principal
from tenantry.identity import service as identity
from tenantry.identity.models import SignInMethod, User, UserStatus
from tenantry.kit.clock import as_utc
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Forbidden, NotFound, Problem, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.kit.security import AccessTokens, new_secret, token_hash
from tenantry.sso import oidc, provisioning, repository, saml
from tenantry.sso.domains import org_verifies
from tenantry.sso.mapping import MappingRules, Outcome, Profile, evaluate
from tenantry.sso.models import (
    AttemptPurpose,
    Protocol,
    SamlAssertionSeen,
    SsoAttempt,
    SsoConnection,
    SsoIdentity,
)
from tenantry.sso.policy import discover
from tenantry.sso.presets import (
    OIDC_PRESETS,
    SAML_EMAIL_FALLBACKS,
    SAML_GROUPS_FALLBACKS,
    SAML_NAME_FALLBACKS,
    SAML_PRESETS,
    Preset,
)
from tenantry.sso.secrets import SecretBox

OIDC_CALLBACK_PATH: Final = "/api/v1/auth/sso/oidc/callback"
HANDOFF_TTL: Final = timedelta(minutes=2)
HANDOFF_PREFIX: Final = "tsc_"
VERIFIER_PREFIX: Final = "tsv_"
# Where a sign-in lands when the client names no page: the dashboard finishes it.
DEFAULT_RETURN: Final = "/sign-in/sso/done"


@dataclass(frozen=True)
class Runtime:
    """What sign-in needs from the process: the providers' metadata and keys it has fetched,
    and the box that opens client secrets."""

    directory: oidc.ProviderDirectory
    box: SecretBox


class SsoRefused(Exception):
    """The answer is refused; the caller records the refusal (`record_refusal`) in a
    transaction of its own and answers with `status` and `code`."""

    def __init__(
        self, code: str, detail: str, *, status: int = 401, attempt: SsoAttempt | None = None
    ) -> None:
        super().__init__(detail)
        self.code, self.detail, self.status = code, detail, status
        self.attempt_id = attempt.id if attempt else None
        self.return_to = attempt.return_to if attempt else None
        self.purpose = attempt.purpose if attempt else None
        self.org_id = attempt.org_id if attempt else None
        self.connection_id = attempt.connection_id if attempt else None
        self.started_by = attempt.started_by if attempt else None


@dataclass(frozen=True)
class Started:
    attempt_id: str
    redirect_url: str
    # Proves, at the exchange, that whoever exchanges the code started the sign-in.
    verifier: str
    expires_at: datetime


@dataclass
class Finished:
    purpose: AttemptPurpose
    org_id: str
    connection_id: str
    return_to: str | None
    user_id: str | None = None
    code: str | None = None  # the one-time code of a sign-in
    test: dict[str, Any] | None = None
    summary: dict[str, Any] = field(default_factory=dict)


# ---- settings of a connection, as the protocols take them ----


def oidc_client(conn: SsoConnection, box: SecretBox, *, base_url: str) -> oidc.OidcClient:
    settings = conn.settings
    sealed = conn.client_secret_sealed
    secret = box.open(sealed, bound_to=conn.id) if sealed else ""
    preset = OIDC_PRESETS[Preset(conn.preset)]
    return oidc.OidcClient(
        issuer=str(settings["issuer"]),
        client_id=str(settings["client_id"]),
        client_secret=secret,
        scopes=tuple(settings.get("scopes") or preset.scopes),
        redirect_uri=base_url.rstrip("/") + OIDC_CALLBACK_PATH,
    )


def service_provider(conn: SsoConnection, *, base_url: str, skew: int) -> saml.ServiceProvider:
    return saml.ServiceProvider(
        connection_id=conn.id,
        base_url=base_url.rstrip("/"),
        idp_entity_id=str(conn.settings.get("idp_entity_id") or ""),
        idp_metadata_xml=conn.idp_metadata_xml or "",
        allow_idp_initiated=bool(conn.settings.get("allow_idp_initiated", False)),
        skew_seconds=skew,
    )


def check_return_to(ctx: Ctx, value: str | None) -> str | None:
    """A path on this site, or an address under one of `sso_return_urls`: never anywhere else
    (the one-time code travels in it)."""
    if value is None:
        return None
    if value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    parts = urlsplit(value)
    for allowed in ctx.settings.sso_return_urls:
        base = urlsplit(allowed)
        if (parts.scheme, parts.netloc) == (base.scheme, base.netloc) and parts.path.startswith(
            base.path
        ):
            return value
    raise Unprocessable(
        "return_to must be a path on this site or under a configured sso_return_urls address",
        code="invalid_return_to",
    )


# ---- the trip out ----


def start(
    ctx: Ctx,
    runtime: Runtime,
    conn: SsoConnection,
    *,
    purpose: AttemptPurpose,
    return_to: str | None,
    started_by: str | None = None,
    login_hint: str | None = None,
) -> Started:
    if purpose is not AttemptPurpose.TEST and not conn.enabled:
        raise Unprocessable("This SSO connection is not enabled", code="sso_connection_disabled")
    now = ctx.clock.now()
    base_url = ctx.origin.base_url.rstrip("/")
    attempt_id = new_id("ssa")
    verifier = new_secret(VERIFIER_PREFIX)
    nonce = code_verifier = None
    if conn.protocol == Protocol.OIDC:
        state, nonce, code_verifier = generate_token(43), generate_token(43), generate_token(64)
        lookup = state
        try:
            url = oidc.authorization_url(
                runtime.directory,
                oidc_client(conn, runtime.box, base_url=base_url),
                state=state,
                nonce=nonce,
                code_verifier=code_verifier,
                login_hint=login_hint,
            )
        except oidc.OidcError as exc:
            raise Unprocessable(exc.detail, code=exc.code) from None
    else:
        sp = service_provider(conn, base_url=base_url, skew=ctx.settings.sso_clock_skew_seconds)
        try:
            lookup, url = saml.authn_request(sp, relay_state=attempt_id)
        except saml.SamlError as exc:
            raise Unprocessable(exc.detail, code=exc.code) from None
    expires = now + timedelta(seconds=ctx.settings.sso_attempt_ttl_seconds)
    ctx.session.add(
        SsoAttempt(
            id=attempt_id,
            org_id=conn.org_id,
            connection_id=conn.id,
            purpose=purpose.value,
            lookup_hash=token_hash(lookup),
            nonce=nonce,
            code_verifier=code_verifier,
            verifier_hash=token_hash(verifier),
            return_to=return_to,
            started_by=started_by,
            created_at=now,
            expires_at=expires,
        )
    )
    ctx.session.flush()
    return Started(attempt_id, url, verifier, expires)


def begin_sign_in(
    ctx: Ctx,
    runtime: Runtime,
    *,
    connection_id: str | None,
    email: str | None,
    return_to: str | None,
) -> Started:
    """A sign-in started by anyone: through a connection by id, or through the first enabled
    connection of the org that verified the email's domain (home-realm discovery)."""
    conn: SsoConnection | None = None
    if connection_id is not None:
        conn = repository.unscoped_connection(ctx.session, connection_id)
    elif email is not None:
        found = discover(ctx.session, email=email)
        conn = found.connections[0] if found.connections else None
    else:
        raise Unprocessable("Send connection_id or email", code="missing_connection")
    if conn is None or not conn.enabled:
        raise NotFound("No enabled SSO connection for this sign-in")
    started = start(
        ctx,
        runtime,
        conn,
        purpose=AttemptPurpose.SIGN_IN,
        return_to=check_return_to(ctx, return_to) or DEFAULT_RETURN,
        login_hint=email,
    )
    audit.record(
        ctx,
        None,
        org_id=conn.org_id,
        target_type="sso_connection",
        target_id=conn.id,
        summary={"attempt_id": started.attempt_id, "purpose": "sign_in"},
    )
    return started


def begin_link(
    ctx: Ctx, runtime: Runtime, principal: Principal, *, connection_id: str,
    return_to: str | None,
) -> Started:  # fmt: skip
    """A signed-in person links their account to a provider's identity (proof that an
    existing account with the provider's email is theirs)."""
    if principal.kind != "user":
        raise Forbidden("Only a signed-in person links an identity", code="not_a_session")
    conn = repository.unscoped_connection(ctx.session, connection_id)
    if conn is None or not conn.enabled:
        raise NotFound("No enabled SSO connection for this sign-in")
    started = start(
        ctx,
        runtime,
        conn,
        purpose=AttemptPurpose.LINK,
        return_to=check_return_to(ctx, return_to),
        started_by=principal.user_id,
    )
    audit.record(
        ctx,
        principal,
        org_id=None,
        target_type="sso_connection",
        target_id=conn.id,
        summary={"attempt_id": started.attempt_id, "purpose": "link"},
    )
    return started


# ---- the answer ----


def _take_attempt(ctx: Ctx, lookup: str) -> SsoAttempt:
    attempt = repository.unscoped_attempt_for_update(ctx.session, token_hash(lookup))
    if attempt is None:
        raise SsoRefused("sso_unknown_state", "This sign-in was not started here, or has ended")
    if attempt.consumed_at is not None:
        raise SsoRefused("sso_replayed", "This answer was already used; start the sign-in again")
    attempt.consumed_at = ctx.clock.now()
    if as_utc(attempt.expires_at) <= ctx.clock.now():
        raise SsoRefused("sso_expired", "The sign-in took too long; start again", attempt=attempt)
    return attempt


def _connection_of(ctx: Ctx, attempt: SsoAttempt) -> SsoConnection:
    conn = repository.connection_in_org(
        ctx.session, org_id=attempt.org_id, connection_id=attempt.connection_id
    )
    if conn is None:
        raise SsoRefused("sso_connection_gone", "The SSO connection was removed", attempt=attempt)
    if attempt.purpose != AttemptPurpose.TEST and not conn.enabled:
        raise SsoRefused(
            "sso_connection_disabled", "This SSO connection is not enabled", attempt=attempt
        )
    return conn


def finish_oidc(
    ctx: Ctx, runtime: Runtime, *, state: str, code: str | None, error: str | None
) -> Finished:
    attempt = _take_attempt(ctx, state)
    conn = _connection_of(ctx, attempt)
    if error or not code:
        raise SsoRefused(
            "sso_provider_error",
            f"The identity provider answered: {error or 'no authorization code'}",
            attempt=attempt,
        )
    base_url = ctx.origin.base_url.rstrip("/")
    assert attempt.nonce is not None and attempt.code_verifier is not None
    try:
        claims = oidc.redeem(
            runtime.directory,
            oidc_client(conn, runtime.box, base_url=base_url),
            code=code,
            code_verifier=attempt.code_verifier,
            nonce=attempt.nonce,
            now=ctx.clock.now(),
            leeway_seconds=ctx.settings.sso_clock_skew_seconds,
        )
    except oidc.OidcError as exc:
        raise SsoRefused(exc.code, exc.detail, attempt=attempt) from None
    profile = _oidc_profile(conn, claims, attempt)
    return _conclude(
        ctx, attempt, conn, issuer=str(claims["iss"]), subject=str(claims["sub"]),
        profile=profile, received=claims,
    )  # fmt: skip


def _oidc_profile(conn: SsoConnection, claims: dict[str, Any], attempt: SsoAttempt) -> Profile:
    settings = conn.settings
    preset = OIDC_PRESETS[Preset(conn.preset)]
    email = claims.get(settings.get("email_claim") or preset.email_claim)
    if not email and conn.preset == Preset.ENTRA_ID:
        email = claims.get("preferred_username")
    if claims.get("email_verified") is False:
        raise SsoRefused(
            "sso_email_unverified", "The provider says this email is not verified", attempt=attempt
        )
    hosted = settings.get("hosted_domain")
    if hosted and claims.get("hd") != hosted:
        raise SsoRefused(
            "sso_wrong_domain",
            f"Only accounts of {hosted} sign in through this connection",
            status=403,
            attempt=attempt,
        )
    name = claims.get(settings.get("name_claim") or preset.name_claim) or " ".join(
        str(claims[k]) for k in ("given_name", "family_name") if claims.get(k)
    )
    groups = claims.get(settings.get("groups_claim") or preset.groups_claim) or []
    return Profile(
        email=str(email or "").strip(),
        name=str(name or ""),
        groups=frozenset(str(g) for g in (groups if isinstance(groups, list) else [groups])),
        claims=claims,
    )


def finish_saml(ctx: Ctx, *, connection_id: str, saml_response: str, base_url: str) -> Finished:
    try:
        request_id = saml.in_response_to(saml_response)
    except saml.SamlError as exc:
        raise SsoRefused(exc.code, exc.detail) from None
    conn = repository.unscoped_connection(ctx.session, connection_id)
    if conn is None or conn.protocol != Protocol.SAML:
        raise SsoRefused("sso_unknown_connection", "No such SAML connection")
    attempt: SsoAttempt | None = None
    if request_id is not None:
        attempt = _take_attempt(ctx, request_id)
        if attempt.connection_id != conn.id:
            raise SsoRefused(
                "sso_invalid_response", "The response answers another connection's request"
            )
        conn = _connection_of(ctx, attempt)
    else:
        # IdP-initiated: no request to consume; only where the connection allows it.
        if not conn.settings.get("allow_idp_initiated") or not conn.enabled:
            raise SsoRefused(
                "sso_unsolicited", "This connection takes no IdP-initiated sign-in", status=403
            )
        attempt = _unsolicited_attempt(ctx, conn)
    sp = service_provider(conn, base_url=base_url, skew=ctx.settings.sso_clock_skew_seconds)
    try:
        found = saml.read_response(sp, saml_response, request_id=request_id, now=ctx.clock.now())
    except saml.SamlError as exc:
        raise SsoRefused(exc.code, exc.detail, attempt=attempt) from None
    if repository.assertion_seen(
        ctx.session, connection_id=conn.id, assertion_id=found.assertion_id
    ):
        raise SsoRefused("sso_replayed", "This assertion was already used", attempt=attempt)
    now = ctx.clock.now()
    skew = timedelta(seconds=ctx.settings.sso_clock_skew_seconds)
    keep_until = max(found.not_on_or_after or now + timedelta(hours=1), now) + skew
    ctx.session.add(
        SamlAssertionSeen(
            id=new_id("sas"),
            org_id=conn.org_id,
            connection_id=conn.id,
            assertion_id=found.assertion_id,
            expires_at=keep_until,
        )
    )
    profile = _saml_profile(conn, found)
    received = {k: v[0] if len(v) == 1 else v for k, v in found.attributes.items()}
    return _conclude(
        ctx, attempt, conn, issuer=found.issuer, subject=found.subject, profile=profile,
        received={"name_id": found.subject, **received},
    )  # fmt: skip


def _unsolicited_attempt(ctx: Ctx, conn: SsoConnection) -> SsoAttempt:
    now = ctx.clock.now()
    attempt = SsoAttempt(
        id=new_id("ssa"),
        org_id=conn.org_id,
        connection_id=conn.id,
        purpose=AttemptPurpose.SIGN_IN.value,
        lookup_hash=token_hash(secrets.token_urlsafe(32)),
        verifier_hash=None,
        created_at=now,
        expires_at=now + timedelta(seconds=ctx.settings.sso_attempt_ttl_seconds),
        consumed_at=now,
    )
    ctx.session.add(attempt)
    ctx.session.flush()
    return attempt


def _saml_profile(conn: SsoConnection, found: saml.SamlAssertion) -> Profile:
    settings = conn.settings
    preset = SAML_PRESETS[Preset(conn.preset)]

    def values(configured: str | None, default: str, fallbacks: tuple[str, ...]) -> list[str]:
        for name in (configured, default, *fallbacks):
            if name and found.attributes.get(name):
                return found.attributes[name]
        return []

    emails = values(settings.get("email_attribute"), preset.email_attribute, SAML_EMAIL_FALLBACKS)
    email = emails[0] if emails else (found.subject if "@" in found.subject else "")
    names = values(settings.get("name_attribute"), preset.name_attribute, SAML_NAME_FALLBACKS)
    groups = values(
        settings.get("groups_attribute"), preset.groups_attribute, SAML_GROUPS_FALLBACKS
    )
    claims: dict[str, Any] = {k: v[0] if len(v) == 1 else v for k, v in found.attributes.items()}
    return Profile(
        email=email.strip(),
        name=names[0] if names else "",
        groups=frozenset(groups),
        claims=claims,
    )


def _conclude(
    ctx: Ctx,
    attempt: SsoAttempt,
    conn: SsoConnection,
    *,
    issuer: str,
    subject: str,
    profile: Profile,
    received: dict[str, Any],
) -> Finished:
    purpose = AttemptPurpose(attempt.purpose)
    done = Finished(
        purpose=purpose,
        org_id=conn.org_id,
        connection_id=conn.id,
        return_to=attempt.return_to,
    )
    if purpose is AttemptPurpose.LINK:
        return _link(ctx, attempt, conn, issuer=issuer, subject=subject, done=done)
    rules = MappingRules.of(conn.mapping)
    outcome = evaluate(rules, profile)
    if purpose is AttemptPurpose.TEST:
        # The test proves the connection works; who would get in is shown, not required.
        try:
            user, account = _account_for(ctx, attempt, conn, issuer, subject, profile)
        except SsoRefused as refused:
            user, account = None, f"refused: {refused.code}"
        return _record_test(ctx, attempt, conn, done, received, profile, outcome, rules, user,
                            account, issuer=issuer, subject=subject)  # fmt: skip
    user, account = _account_for(ctx, attempt, conn, issuer, subject, profile)
    if not outcome.allowed:
        raise SsoRefused(
            "sso_access_denied",
            "Your identity provider's groups give you no access to this organization"
            if outcome.refusal == "no_matching_rule"
            else "You are not in a group this organization requires",
            status=403,
            attempt=attempt,
        )
    assert outcome.grants is not None
    if user is None:
        user = identity.create_federated_user(ctx, email=profile.email, full_name=profile.name)
    if account != "linked":
        _link_identity(ctx, conn, issuer=issuer, subject=subject, user_id=user.id)
    linked = repository.unscoped_identity(ctx.session, issuer=issuer, subject=subject)
    if linked is not None:
        linked.last_sign_in_at = ctx.clock.now()
    change = provisioning.plan(
        ctx, org_id=conn.org_id, user_id=user.id, grants=outcome.grants, rules=rules
    )
    try:
        provisioning.execute(ctx, change, user_id=user.id)
    except Problem as problem:  # the plan has no room for another member
        raise SsoRefused(
            problem.code, problem.detail, status=problem.status, attempt=attempt
        ) from None
    user.last_login_at = ctx.clock.now()
    code = new_secret(HANDOFF_PREFIX)
    attempt.user_id = user.id
    attempt.handoff_hash = token_hash(code)
    done.user_id, done.code = user.id, code
    done.summary = {
        "purpose": purpose.value,
        "connection_id": conn.id,
        "account": account,
        "rule": outcome.rule,
        "changes": change.describe(),
    }
    audit.record(
        ctx,
        None,
        org_id=conn.org_id,
        target_type="user",
        target_id=user.id,
        actor=("user", user.id),
        summary=done.summary,
    )
    return done


def _account_for(
    ctx: Ctx,
    attempt: SsoAttempt,
    conn: SsoConnection,
    issuer: str,
    subject: str,
    profile: Profile,
) -> tuple[User | None, str]:
    """The account the identity belongs to, and how: `linked` (by an earlier link),
    `link_by_domain` (same email, the org verified its domain), `create` (none yet)."""
    found = repository.unscoped_identity(ctx.session, issuer=issuer, subject=subject)
    if found is not None:
        user = repository.user_by_id(ctx.session, found.user_id)
        if user is None or user.status != UserStatus.ACTIVE:
            raise SsoRefused("account_inactive", "Account is not active", attempt=attempt)
        return user, "linked"
    if not profile.email or "@" not in profile.email:
        raise SsoRefused(
            "sso_no_email", "The identity provider sent no email address", attempt=attempt
        )
    existing = repository.user_by_email(ctx.session, profile.email)
    if existing is not None:
        if existing.status != UserStatus.ACTIVE:
            raise SsoRefused("account_inactive", "Account is not active", attempt=attempt)
        if org_verifies(ctx.session, org_id=conn.org_id, email=profile.email):
            return existing, "link_by_domain"
        raise SsoRefused(
            "sso_link_required",
            "An account with this email already exists. Sign in with your password, then link "
            "your identity provider from your account (POST /api/v1/me/sso/link)",
            status=403,
            attempt=attempt,
        )
    if not conn.jit_provisioning:
        raise SsoRefused(
            "sso_no_account",
            "No account for this person, and this connection creates none",
            status=403,
            attempt=attempt,
        )
    return None, "create"


def _link_identity(
    ctx: Ctx, conn: SsoConnection, *, issuer: str, subject: str, user_id: str
) -> SsoIdentity:
    link = SsoIdentity(
        id=new_id("sid"),
        org_id=conn.org_id,
        connection_id=conn.id,
        issuer=issuer,
        subject=subject,
        user_id=user_id,
        created_at=ctx.clock.now(),
    )
    ctx.session.add(link)
    ctx.session.flush()
    return link


def _link(
    ctx: Ctx, attempt: SsoAttempt, conn: SsoConnection, *, issuer: str, subject: str,
    done: Finished,
) -> Finished:  # fmt: skip
    assert attempt.started_by is not None
    found = repository.unscoped_identity(ctx.session, issuer=issuer, subject=subject)
    if found is not None and found.user_id != attempt.started_by:
        raise SsoRefused(
            "sso_identity_taken",
            "This identity is already linked to another account",
            status=409,
            attempt=attempt,
        )
    if found is None:
        _link_identity(ctx, conn, issuer=issuer, subject=subject, user_id=attempt.started_by)
    done.user_id = attempt.started_by
    done.summary = {"purpose": "link", "connection_id": conn.id, "new_link": found is None}
    audit.record(
        ctx,
        None,
        org_id=conn.org_id,
        target_type="user",
        target_id=attempt.started_by,
        actor=("user", attempt.started_by),
        summary=done.summary,
    )
    return done


def _record_test(
    ctx: Ctx,
    attempt: SsoAttempt,
    conn: SsoConnection,
    done: Finished,
    received: dict[str, Any],
    profile: Profile,
    outcome: Outcome,
    rules: MappingRules,
    user: User | None,
    account: str,
    *,
    issuer: str,
    subject: str,
) -> Finished:
    change = (
        provisioning.plan(
            ctx, org_id=conn.org_id, user_id=user.id if user else None,
            grants=outcome.grants, rules=rules,
        )
        if outcome.grants is not None
        else None
    )  # fmt: skip
    result = {
        "ok": True,
        "at": ctx.clock.now().isoformat(),
        "revision": conn.revision,
        "issuer": issuer,
        "subject": subject,
        "received": _jsonable(received),
        "profile": {
            "email": profile.email,
            "name": profile.name,
            "groups": sorted(profile.groups),
        },
        "account": account,
        "mapping": outcome.describe(),
        "changes": change.describe() if change else None,
        "error": None,
    }
    conn.last_test = result
    conn.tested_revision = conn.revision
    done.test = result
    done.summary = {"purpose": "test", "connection_id": conn.id, "ok": True}
    audit.record(
        ctx,
        None,
        org_id=conn.org_id,
        target_type="sso_connection",
        target_id=conn.id,
        actor=("user", attempt.started_by),
        summary=done.summary,
    )
    return done


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def record_refusal(ctx: Ctx, refused: SsoRefused) -> None:
    """After the request's transaction was rolled back: the attempt stays consumed (its
    answer cannot be tried again), a failed test is shown on the connection, and the refusal
    is audited."""
    if refused.attempt_id is not None:
        attempt = ctx.session.get(SsoAttempt, refused.attempt_id)
        if attempt is not None and attempt.consumed_at is None:
            attempt.consumed_at = ctx.clock.now()
    conn = (
        repository.connection_in_org(
            ctx.session, org_id=refused.org_id, connection_id=refused.connection_id
        )
        if refused.org_id and refused.connection_id
        else None
    )
    if conn is not None and refused.purpose == AttemptPurpose.TEST:
        conn.last_test = {
            "ok": False,
            "at": ctx.clock.now().isoformat(),
            "revision": conn.revision,
            "error": {"code": refused.code, "detail": refused.detail},
        }
    audit.record(
        ctx,
        None,
        org_id=refused.org_id,
        target_type="sso_connection" if refused.connection_id else None,
        target_id=refused.connection_id,
        actor=("user", refused.started_by) if refused.started_by else None,
        result="failure",
        summary={"purpose": refused.purpose, "code": refused.code},
    )


# ---- the exchange ----


def exchange(ctx: Ctx, *, tokens: AccessTokens, code: str, verifier: str) -> identity.IssuedTokens:
    """The one-time code of a finished sign-in, with the verifier its starter holds, for the
    tokens of a new login session."""
    attempt = repository.unscoped_attempt_by_handoff(ctx.session, token_hash(code))
    now = ctx.clock.now()
    refused = SsoRefused("sso_invalid_code", "This sign-in code is not valid")
    if attempt is None or attempt.user_id is None or attempt.handoff_used_at is not None:
        raise refused
    consumed = attempt.consumed_at
    if consumed is None or as_utc(consumed) + HANDOFF_TTL <= now:
        raise refused
    # An IdP-initiated sign-in has no starter: its code alone is the proof.
    if attempt.verifier_hash is not None and not hmac.compare_digest(
        attempt.verifier_hash, token_hash(verifier)
    ):
        raise refused
    user = repository.user_by_id(ctx.session, attempt.user_id)
    if user is None or user.status != UserStatus.ACTIVE:
        raise SsoRefused("account_inactive", "Account is not active")
    attempt.handoff_used_at = now
    issued = identity.start_session(ctx, tokens=tokens, user=user, method=SignInMethod.SSO)
    audit.record(
        ctx,
        None,
        org_id=None,
        target_type="session",
        target_id=issued.session_id,
        actor=("user", user.id),
        summary={"method": "sso", "connection_id": attempt.connection_id},
    )
    return issued


def finished_redirect(return_to: str, params: dict[str, str]) -> str:
    joiner = "&" if "?" in return_to else "?"
    return f"{return_to}{joiner}{urlencode(params)}"
