"""An org's security policy (docs/security.md): password rules, MFA for its members with grace
days, session timeouts and an IP allowlist for its API and dashboard. SSO enforcement is the
SSO policy's (`sso.policy`).

Password and MFA rules are account-wide (a person has one password and one second factor), so
the strictest of a person's orgs' rules applies to them; each rule comes with the org that set
it, and a refusal names both (`identity.hooks.AccountRules`). Importing tenancy registers
`account_rules` with identity.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.identity import repository as identity_repository
from tenantry.identity.hooks import AccountRules, Ruled
from tenantry.kit.clock import as_utc
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Forbidden, NotFound, Unprocessable
from tenantry.kit.stamps import stamped
from tenantry.tenancy import repository
from tenantry.tenancy.models import Organization, OrgSecurityPolicy
from tenantry.tenancy.schemas import SecurityPolicyIn

POLICY_NAME = "security_policy"


@dataclass(frozen=True)
class PolicyView:
    rules: SecurityPolicyIn
    mfa_required_since: datetime | None
    updated_at: datetime | None

    @property
    def mfa_enforced_from(self) -> datetime | None:
        if not self.rules.mfa.required or self.mfa_required_since is None:
            return None
        return as_utc(self.mfa_required_since) + timedelta(days=self.rules.mfa.grace_days)


def _view(row: OrgSecurityPolicy | None) -> PolicyView:
    if row is None:
        return PolicyView(SecurityPolicyIn(), None, None)
    return PolicyView(
        SecurityPolicyIn.model_validate(row.rules), row.mfa_required_since, row.updated_at
    )


def read_policy(session: Session, principal: Principal, org: Organization) -> PolicyView:
    # Every member may read the rules they are held to.
    authorize(session, principal, Permission.ORG_READ, org_id=org.id)
    return _view(repository.security_policy_of(session, org_id=org.id))


def set_policy(
    ctx: Ctx, principal: Principal, org: Organization, rules: SecurityPolicyIn
) -> PolicyView:
    authorize(ctx.session, principal, Permission.SECURITY_MANAGE, org_id=org.id)
    _check_keeps_caller_in(ctx, rules)
    row = repository.security_policy_of(ctx.session, org_id=org.id)
    before = _view(row).rules.model_dump(mode="json")
    now = ctx.clock.now()
    if row is None:
        row = OrgSecurityPolicy(org_id=org.id)
        ctx.session.add(row)
    was_required = bool(before["mfa"]["required"])
    if rules.mfa.required and not was_required:
        row.mfa_required_since = now  # the grace days count from here
    elif not rules.mfa.required:
        row.mfa_required_since = None
    after = rules.model_dump(mode="json")
    row.rules = after
    row.updated_at = now
    ctx.session.flush()
    changed = {
        section: {"before": before[section], "after": after[section]}
        for section in after
        if before[section] != after[section]
    }
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="organization",
        target_id=org.id,
        summary={"changed": changed},
    )
    return _view(row)


def _check_keeps_caller_in(ctx: Ctx, rules: SecurityPolicyIn) -> None:
    """An allowlist that leaves out the address it is set from would lock its author out."""
    if rules.ip_allowlist and not ip_allowed(rules.ip_allowlist, ctx.origin.ip):
        raise Unprocessable(
            f"The allowlist leaves out your own address ({ctx.origin.ip}); add it first",
            code="ip_allowlist_excludes_you",
            extra={"ip": ctx.origin.ip},
        )


def ip_allowed(allowlist: list[str], ip: str | None) -> bool:
    if not allowlist:
        return True
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in allowlist)


def check_ip(session: Session, org_id: str, ip: str | None) -> None:
    """403 `ip_not_allowed` when the org's allowlist leaves out the request's address. The
    allowlist is a deciding column of the org's version stamp: read once per change."""
    allowlist: list[str] = stamped(
        session, org_id, "ip_allowlist", lambda: _allowlist(session, org_id)
    )
    if not ip_allowed(allowlist, ip):
        raise Forbidden(
            "This organization accepts requests only from its allowed networks",
            code="ip_not_allowed",
            org_id=org_id,
            extra={"policy": POLICY_NAME, "rule": "ip_allowlist", "ip": ip},
        )


def _allowlist(session: Session, org_id: str) -> list[str]:
    row = repository.security_policy_of(session, org_id=org_id)
    return list(row.rules.get("ip_allowlist", [])) if row is not None else []


# ---- the strictest rules of a person's orgs ----

_T = TypeVar("_T")


def _strictest(found: list[Ruled[_T]], better: Callable[[_T, _T], bool]) -> Ruled[_T] | None:
    best: Ruled[_T] | None = None
    for item in found:
        if best is None or better(item.value, best.value):
            best = item
    return best


def _bigger(a: Any, b: Any) -> bool:
    return bool(a > b)


def _smaller(a: Any, b: Any) -> bool:
    return bool(a < b)


def account_rules(session: Session, user_id: str) -> AccountRules:
    rows = repository.security_policies_of_user(session, user_id=user_id)
    if not rows:
        return AccountRules()
    collected: dict[str, list[Ruled[Any]]] = {}

    def add(name: str, value: Any, slug: str) -> None:
        if value is not None and value is not False:
            collected.setdefault(name, []).append(Ruled(value, slug))

    for row, slug in rows:
        view = _view(row)
        password, sessions = view.rules.password, view.rules.sessions
        add("min_length", password.min_length, slug)
        for name in ("require_uppercase", "require_lowercase", "require_digit", "require_symbol"):
            add(name, getattr(password, name), slug)
        add("min_complexity", password.min_complexity, slug)
        add("history", password.history or None, slug)
        add("max_age_days", password.max_age_days, slug)
        add("lockout_attempts", password.lockout_attempts, slug)
        minutes = password.lockout_minutes
        add("lockout_seconds", minutes * 60 if minutes else None, slug)
        add("mfa_required_by", view.mfa_enforced_from, slug)
        idle, absolute = sessions.idle_timeout_minutes, sessions.absolute_timeout_minutes
        add("session_idle_seconds", idle * 60 if idle else None, slug)
        add("session_absolute_seconds", absolute * 60 if absolute else None, slug)
    smaller_wins = {
        "max_age_days",
        "lockout_attempts",
        "mfa_required_by",
        "session_idle_seconds",
        "session_absolute_seconds",
    }
    return AccountRules(
        **{
            name: _strictest(values, _smaller if name in smaller_wins else _bigger)
            for name, values in collected.items()
        }
    )


# ---- recovery of a member's second factor ----


def reset_member_mfa(ctx: Ctx, principal: Principal, org: Organization, *, user_ref: str) -> bool:
    """An owner's recovery for a member who lost their authenticator and backup codes: the
    factor is removed (they enrol again at their next sign-in if a policy requires it).
    Whether there was one; audited either way."""
    authorize(ctx.session, principal, Permission.MEMBER_MFA_RESET, org_id=org.id)
    user = repository.user_by_ref(ctx.session, user_ref)
    if (
        user is None
        or repository.org_membership(ctx.session, org_id=org.id, user_id=user.id) is None
    ):
        raise NotFound("Member not found")
    user_id = user.id
    if user_id == principal.user_id:
        raise Unprocessable(
            "Turn your own two-factor authentication off on your account instead",
            code="own_mfa_reset",
        )
    removed = identity_repository.delete_mfa(ctx.session, user_id=user_id)
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="user",
        target_id=user_id,
        summary={"had_mfa": removed},
    )
    return removed
