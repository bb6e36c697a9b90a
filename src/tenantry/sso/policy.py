"""An org's SSO policy: whether the people of its verified domains must sign in through SSO,
with the owners listed as break-glass accounts who still may use a password; the password
sign-in gate that holds it; and home-realm discovery (an email's org and its SSO)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.identity.models import User
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, Forbidden, Unprocessable
from tenantry.sso import repository
from tenantry.sso.domains import break_glass_of, end_password_sessions_if_enforced
from tenantry.sso.models import SsoConnection, SsoPolicy
from tenantry.tenancy.models import Organization

POLICY_NAME = "sso_enforced"


@dataclass(frozen=True)
class PolicyView:
    enforced: bool
    break_glass_user_ids: list[str]
    verified_domains: list[str]


def read_policy(session: Session, principal: Principal, org: Organization) -> PolicyView:
    authorize(session, principal, Permission.SSO_READ, org_id=org.id)
    return _view(session, org.id)


def _view(session: Session, org_id: str) -> PolicyView:
    policy = repository.policy_of(session, org_id=org_id)
    return PolicyView(
        enforced=bool(policy and policy.enforced),
        break_glass_user_ids=list(policy.break_glass_user_ids) if policy else [],
        verified_domains=sorted(repository.verified_domains_of(session, org_id=org_id)),
    )


def set_policy(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    *,
    enforced: bool,
    break_glass_user_ids: list[str],
) -> PolicyView:
    authorize(ctx.session, principal, Permission.SSO_ENFORCE, org_id=org.id)
    wanted = sorted(set(break_glass_user_ids))
    owners = repository.owners_among(ctx.session, org_id=org.id, user_ids=wanted)
    if set(wanted) - owners:
        raise Unprocessable(
            "Break-glass accounts must be owners of the organization", code="not_an_owner"
        )
    domains = sorted(repository.verified_domains_of(ctx.session, org_id=org.id))
    if enforced and not domains:
        raise Conflict("Verify a domain before requiring SSO for it", code="no_verified_domain")
    if enforced and not repository.enabled_connections(ctx.session, org_id=org.id):
        raise Conflict(
            "Enable a tested SSO connection before requiring SSO", code="no_enabled_connection"
        )
    policy = repository.policy_of(ctx.session, org_id=org.id)
    before = {"enforced": bool(policy and policy.enforced),
              "break_glass": len(policy.break_glass_user_ids) if policy else 0}  # fmt: skip
    if policy is None:
        policy = SsoPolicy(org_id=org.id)
        ctx.session.add(policy)
    policy.enforced = enforced
    policy.break_glass_user_ids = wanted
    policy.updated_at = ctx.clock.now()
    ctx.session.flush()
    ended = end_password_sessions_if_enforced(ctx, org_id=org.id, domains=domains)
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="organization",
        target_id=org.id,
        summary={
            "before": before,
            "after": {"enforced": enforced, "break_glass": len(wanted)},
            "break_glass_user_ids": wanted,
            "password_sessions_ended": ended,
        },
    )
    return _view(ctx.session, org.id)


def password_gate(session: Session, user: User) -> None:
    """Refuses a password sign-in (or a password session's refresh) to someone whose email
    domain is verified by an org that requires SSO, unless they are its break-glass owner."""
    domain = user.email_normalized.rpartition("@")[2]
    holder = repository.unscoped_verified_domain(session, domain)
    if holder is None:
        return
    policy = repository.policy_of(session, org_id=holder.org_id)
    if policy is None or not policy.enforced:
        return
    if user.id in break_glass_of(session, org_id=holder.org_id):
        return
    org = repository.unscoped_org(session, holder.org_id)
    name = org.name if org is not None else "Your organization"
    raise Forbidden(
        f"{name} requires single sign-on for {domain}: sign in with SSO instead of a password",
        code="sso_required",
        extra={"policy": POLICY_NAME, "domain": domain, "org": org.slug if org else None},
    )


@dataclass(frozen=True)
class Discovery:
    """Where an email's person signs in: their org's enabled connections, if their domain is
    verified."""

    domain: str
    org: Organization | None
    connections: list[SsoConnection]
    enforced: bool


def discover(session: Session, *, email: str) -> Discovery:
    domain = email.strip().lower().rpartition("@")[2]
    holder = repository.unscoped_verified_domain(session, domain)
    if holder is None:
        return Discovery(domain, None, [], False)
    org = repository.unscoped_org(session, holder.org_id)
    if org is None or org.status != "active":
        return Discovery(domain, None, [], False)
    policy = repository.policy_of(session, org_id=org.id)
    connections = repository.enabled_connections(session, org_id=org.id)
    return Discovery(domain, org, connections, bool(policy and policy.enforced))
