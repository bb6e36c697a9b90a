"""What other domains do when something happens in tenancy, registered by them: tenancy sits
below the domains that care (metering counts members against the plan's quota)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

# Called before a person joins an org, in the joining transaction; raises to refuse (402).
MemberJoining = Callable[[Session, str], None]
_member_joining: list[MemberJoining] = []


def on_member_joining(hook: MemberJoining) -> None:
    if hook not in _member_joining:
        _member_joining.append(hook)


def member_joining(session: Session, org_id: str) -> None:
    for hook in _member_joining:
        hook(session, org_id)


# Called before a given person joins an org, in the joining transaction; raises to refuse
# (SCIM refuses a person the org's directory suspended).
PersonJoining = Callable[[Session, str, str], None]
_person_joining: list[PersonJoining] = []


def on_person_joining(hook: PersonJoining) -> None:
    if hook not in _person_joining:
        _person_joining.append(hook)


def person_joining(session: Session, org_id: str, user_id: str) -> None:
    for hook in _person_joining:
        hook(session, org_id, user_id)
