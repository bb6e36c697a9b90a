"""What domains above identity decide about a sign-in, registered by them: identity sits below
the domains that hold the rules (an org that requires SSO for its verified domains refuses its
people a password sign-in; an org's security policy sets rules for its people's accounts)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy.orm import Session

from tenantry.identity.models import User

# Called once a password is verified (sign-in) or a password session is refreshed, in that
# transaction; raises a `Problem` to refuse, naming the policy that refused.
PasswordGate = Callable[[Session, User], None]
_password_gates: list[PasswordGate] = []


def on_password_sign_in(gate: PasswordGate) -> None:
    if gate not in _password_gates:
        _password_gates.append(gate)


def check_password_sign_in(session: Session, user: User) -> None:
    for gate in _password_gates:
        gate(session, user)


# ---- the account-wide rules of a person's orgs (their security policies) ----

_T = TypeVar("_T")


@dataclass(frozen=True)
class Ruled(Generic[_T]):
    """A rule's value and the org whose policy sets it (so a refusal can name it)."""

    value: _T
    org: str  # the org's slug


@dataclass(frozen=True)
class AccountRules:
    """The strictest of the rules that a person's orgs set for their account; None where no
    org sets one (the deployment's defaults apply)."""

    min_length: Ruled[int] | None = None
    require_uppercase: Ruled[bool] | None = None
    require_lowercase: Ruled[bool] | None = None
    require_digit: Ruled[bool] | None = None
    require_symbol: Ruled[bool] | None = None
    min_complexity: Ruled[int] | None = None
    history: Ruled[int] | None = None
    max_age_days: Ruled[int] | None = None
    lockout_attempts: Ruled[int] | None = None
    lockout_seconds: Ruled[int] | None = None
    # The earliest moment by which one of the orgs requires MFA of its members.
    mfa_required_by: Ruled[datetime] | None = None
    session_idle_seconds: Ruled[int] | None = None
    session_absolute_seconds: Ruled[int] | None = None


RulesSource = Callable[[Session, str], AccountRules]
_rules_sources: list[RulesSource] = []


def on_account_rules(source: RulesSource) -> None:
    if source not in _rules_sources:
        _rules_sources.append(source)


def account_rules(session: Session, user_id: str) -> AccountRules:
    """The rules for this person's account (one source registers: tenancy's security policy)."""
    for source in _rules_sources:
        return source(session, user_id)
    return AccountRules()
