"""Export and erasure of a person's data, gathered from identity, tenancy, the audit trail and
the identity providers' accounts linked to theirs (sso).

Who sees what:
- a signed-in user exports everything held about their account;
- an API key acts for its creator within one org, so its export is that org's slice (and, for a
  team-bound key, that team among teams): sessions, sign-in throttles and other orgs stay out;
- an org's admin (audit:read) exports what that org holds about one of its members.

Erasure is the account's own act, signed in as itself: see `erase_account`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.identity import service as identity
from tenantry.identity.models import User
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, Forbidden, NotFound, Unprocessable
from tenantry.privacy import repository
from tenantry.privacy.models import RequestKind
from tenantry.sso.accounts import linked_identities
from tenantry.sso.models import SsoIdentity
from tenantry.tenancy import scope as tenancy_scope
from tenantry.tenancy.models import Organization
from tenantry.tenancy.personal_data import (
    MemberRecords,
    forget_member,
    member_records,
    orgs_only_owned_by,
)


@dataclass(frozen=True)
class PersonalData:
    """Everything one export holds: `scope` says whether it is the whole account's or one
    org's view (`org_id`, and `team_id` for a team-bound API key)."""

    scope: Literal["account", "organization"]
    org_id: str | None
    team_id: str | None
    generated_at: datetime
    account: identity.AccountRecords
    tenancy: MemberRecords
    audit_events: list[audit.EventView]
    sso_identities: list[SsoIdentity]


def _gather(
    session: Session, user: User, *, org_id: str | None, team_id: str | None, now: datetime
) -> PersonalData:
    return PersonalData(
        scope="account" if org_id is None else "organization",
        org_id=org_id,
        team_id=team_id,
        generated_at=now,
        account=identity.account_records(session, user, org_id=org_id),
        tenancy=member_records(session, user, org_id=org_id, team_id=team_id),
        # An org's events form its chain, so an org's view reads that one chain.
        audit_events=audit.events_of_person(session, user_id=user.id, chain_id=org_id),
        sso_identities=linked_identities(session, user_id=user.id, org_id=org_id),
    )


def export_own(session: Session, principal: Principal, *, now: datetime) -> PersonalData:
    user = identity.user_by_id(session, principal.user_id)
    if user is None:  # authenticated a moment ago; erased in between
        raise NotFound("User not found")
    if principal.kind == "api_key":
        return _gather(
            session, user, org_id=principal.key_org_id, team_id=principal.key_team_id, now=now
        )
    return _gather(session, user, org_id=None, team_id=None, now=now)


def export_member(
    session: Session, principal: Principal, org: Organization, *, user_ref: str, now: datetime
) -> PersonalData:
    """What `org` holds about one of its members; anyone else answers 404. The export is
    entered in the org's register of data-subject requests (the caller commits it)."""
    authorize(session, principal, Permission.AUDIT_READ, org_id=org.id)
    member = tenancy_scope.resolve_member(session, org_id=org.id, ref=user_ref)
    repository.add_request(
        session, org_id=org.id, kind=RequestKind.EXPORT, subject_id=member.id,
        requested_by=principal.user_id, at=now,
    )  # fmt: skip
    return _gather(session, member, org_id=org.id, team_id=None, now=now)


def erase_account(ctx: Ctx, principal: Principal, *, user_id: str, confirm: str) -> None:
    """Delete the account and every row that points at it, in this one transaction, and destroy
    its audit subject key with the personal details kept under it. The audit trail keeps the
    account's id as a pseudonymous actor, and every chain still verifies: the chained records
    hold only HMAC digests of the personal details, never the details themselves."""
    if user_id != principal.user_id:
        # Another account's id looks exactly like an unknown one.
        raise NotFound("User not found")
    if principal.kind != "user":
        raise Forbidden(
            "An account is erased by its own signed-in user, not by an API key",
            code="users_only",
            org_id=principal.key_org_id,
        )
    user = identity.user_by_id(ctx.session, user_id)
    if user is None:
        raise NotFound("User not found")
    if confirm.strip().lower() != user.email_normalized:
        raise Unprocessable(
            "Type the account's email in `confirm` to erase it", code="confirmation_mismatch"
        )
    _refuse_if_last_owner(ctx.session, user)
    held = member_records(ctx.session, user, org_id=None)
    keys = identity.account_records(ctx.session, user, org_id=None).api_keys
    # Recorded before the personal details are forgotten, so this event's own details (the
    # request's IP and user agent) go with the rest. Counts only: the summary is chained.
    audit.record(
        ctx,
        principal,
        org_id=None,
        target_type="user",
        target_id=user.id,
        summary={
            "org_memberships": len(held.memberships),
            "team_memberships": len(held.team_memberships),
            "api_keys": len(keys),
        },
    )
    # Each org the person belonged to keeps the erasure in its register, under the account's
    # id alone, which names nobody once the account is gone.
    for _membership, org in held.memberships:
        repository.add_request(
            ctx.session, org_id=org.id, kind=RequestKind.ERASURE, subject_id=user.id,
            requested_by=user.id, at=ctx.clock.now(),
        )  # fmt: skip
    forget_member(ctx.session, user)
    identity.delete_account(ctx.session, user)
    audit.forget_subject(ctx.session, subject_id=user.id)


def _refuse_if_last_owner(session: Session, user: User) -> None:
    alone = orgs_only_owned_by(session, user_id=user.id)
    if alone:
        slugs = ", ".join(org.slug for org in alone)
        raise Conflict(
            f"You are the last owner of {slugs}; transfer ownership or delete "
            f"{'it' if len(alone) == 1 else 'them'} first",
            code="last_owner",
            extra={"orgs": [{"id": org.id, "slug": org.slug} for org in alone]},
        )
