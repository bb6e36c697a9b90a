"""Verified domains: an org claims an email domain and proves it with a DNS TXT record. A domain
is verified by one org at most; its people are then sent to that org's SSO (home-realm
discovery) and, if the org requires it, refused a password sign-in (`sso.policy`)."""

from __future__ import annotations

import re
import secrets
from typing import Final

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.identity import service as identity
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, NotFound, Problem, ServiceUnavailable, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.sso import repository
from tenantry.sso.dns import TxtLookupFailed, TxtResolver
from tenantry.sso.models import DomainStatus, VerifiedDomain
from tenantry.tenancy.models import Organization

RECORD_PREFIX: Final = "_tenantry-challenge."
VALUE_PREFIX: Final = "tenantry-domain-verification="
# At most 253 characters in all once the challenge record's prefix stands before it: the name
# looked up must itself be a DNS name.
_LONGEST: Final = 253 - len(RECORD_PREFIX)
_DOMAIN: Final = re.compile(
    rf"^(?=.{{4,{_LONGEST}}}$)([a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+[a-z][a-z0-9-]{{0,61}}[a-z0-9]$"
)


def normalize_domain(value: str) -> str:
    domain = value.strip().lower().rstrip(".")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise Unprocessable(f"{value!r} is not a domain name", code="invalid_domain") from None
    if not _DOMAIN.match(domain):
        raise Unprocessable(f"{value!r} is not a domain name", code="invalid_domain")
    return domain


def record_name(domain: VerifiedDomain) -> str:
    return RECORD_PREFIX + domain.domain


def record_value(domain: VerifiedDomain) -> str:
    return VALUE_PREFIX + domain.token


def list_domains(session: Session, principal: Principal, org: Organization) -> list[VerifiedDomain]:
    authorize(session, principal, Permission.SSO_READ, org_id=org.id)
    return repository.domains_of(session, org_id=org.id)


def add_domain(ctx: Ctx, principal: Principal, org: Organization, *, name: str) -> VerifiedDomain:
    authorize(ctx.session, principal, Permission.SSO_MANAGE, org_id=org.id)
    domain = normalize_domain(name)
    if repository.domain_claim(ctx.session, org_id=org.id, domain=domain) is not None:
        raise Conflict(f"{domain} is already listed", code="domain_exists")
    claim = VerifiedDomain(
        id=new_id("dom"),
        org_id=org.id,
        domain=domain,
        status=DomainStatus.PENDING.value,
        token=secrets.token_urlsafe(24),
        created_at=ctx.clock.now(),
    )
    ctx.session.add(claim)
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="domain",
        target_id=claim.id,
        summary={"domain": domain},
    )
    return claim


class DomainNotProven(Exception):
    """The check ran and found no proof; the caller keeps the failed check's audit event."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


def verify_domain(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    *,
    domain_id: str,
    resolver: TxtResolver,
) -> VerifiedDomain:
    """Look up the TXT record now; once verified, if the org requires SSO, the password
    sessions of the domain's people end."""
    authorize(ctx.session, principal, Permission.SSO_MANAGE, org_id=org.id)
    claim = repository.domain_in_org(ctx.session, org_id=org.id, domain_id=domain_id)
    if claim is None:
        raise NotFound("Domain not found")
    try:
        found = resolver.txt(record_name(claim))
    except TxtLookupFailed as exc:
        raise ServiceUnavailable(
            f"DNS did not answer for {record_name(claim)}: {exc}", code="dns_unavailable"
        ) from None
    claim.last_checked_at = ctx.clock.now()
    if record_value(claim) not in [value.strip() for value in found]:
        audit.record(
            ctx,
            principal,
            org_id=org.id,
            target_type="domain",
            target_id=claim.id,
            result="failure",
            summary={"domain": claim.domain, "txt_records_found": len(found)},
        )
        raise DomainNotProven(
            Unprocessable(
                f"No TXT record {record_name(claim)} with the value {record_value(claim)} "
                f"(found {len(found)} TXT record(s) there); DNS changes can take a while to "
                "be seen",
                code="domain_not_verified",
                extra={"record_name": record_name(claim), "record_value": record_value(claim)},
            )
        )
    holder = repository.unscoped_verified_domain(ctx.session, claim.domain)
    if holder is not None and holder.org_id != org.id:
        raise Conflict(f"{claim.domain} is verified by another organization", code="domain_taken")
    first = claim.status != DomainStatus.VERIFIED.value
    claim.status = DomainStatus.VERIFIED.value
    claim.verified_domain = claim.domain
    if first:
        claim.verified_at = ctx.clock.now()
    ctx.session.flush()
    ended = end_password_sessions_if_enforced(ctx, org_id=org.id, domains=[claim.domain])
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="domain",
        target_id=claim.id,
        summary={
            "domain": claim.domain,
            "first_verification": first,
            "password_sessions_ended": ended,
        },
    )
    return claim


def remove_domain(ctx: Ctx, principal: Principal, org: Organization, *, domain_id: str) -> None:
    authorize(ctx.session, principal, Permission.SSO_MANAGE, org_id=org.id)
    claim = repository.domain_in_org(ctx.session, org_id=org.id, domain_id=domain_id)
    if claim is None:
        raise NotFound("Domain not found")
    ctx.session.delete(claim)
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="domain",
        target_id=claim.id,
        summary={"domain": claim.domain, "status": claim.status},
    )


def org_verifies(session: Session, *, org_id: str, email: str) -> bool:
    """Whether the email's domain is one this org has verified."""
    holder = repository.unscoped_verified_domain(session, email.rpartition("@")[2])
    return holder is not None and holder.org_id == org_id


def break_glass_of(session: Session, *, org_id: str) -> set[str]:
    """The org's break-glass accounts that are still its owners (a demoted one is exempt no
    more)."""
    policy = repository.policy_of(session, org_id=org_id)
    if policy is None:
        return set()
    return repository.owners_among(session, org_id=org_id, user_ids=policy.break_glass_user_ids)


def end_password_sessions_if_enforced(ctx: Ctx, *, org_id: str, domains: list[str]) -> int:
    """If the org requires SSO, end the password sessions of everyone whose email is in
    `domains`, break-glass owners aside; how many ended."""
    policy = repository.policy_of(ctx.session, org_id=org_id)
    if policy is None or not policy.enforced or not domains:
        return 0
    exempt = break_glass_of(ctx.session, org_id=org_id)
    people = repository.user_ids_in_domains(ctx.session, domains)
    return identity.end_password_sessions(
        ctx, user_ids=[u for u in people if u not in exempt], reason="sso_required"
    )
