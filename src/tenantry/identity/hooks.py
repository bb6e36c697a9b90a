"""What domains above identity decide about a sign-in, registered by them: identity sits below
the domains that hold the rules (an org that requires SSO for its verified domains refuses its
people a password sign-in)."""

from __future__ import annotations

from collections.abc import Callable

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
