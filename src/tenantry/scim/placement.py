"""What a directory's record of a person means in the org: their Tenantry account, their org
role and teams (by the org's mapping rules over the displayNames of their groups), or, once the
directory deactivates or deletes them, no place at all.

Deprovisioning removes the person's org and team memberships, revokes their API keys of this
org and ends their login sessions, so every credential they hold fails on its next request
(sessions and keys are checked on every request). A suspension row keeps them from coming back
by an invitation or an SSO sign-in until the directory reactivates them.
"""

from __future__ import annotations

from typing import Any

from scim2_models import MutabilityException, UniquenessException
from sqlalchemy.orm import Session

from tenantry.authz.catalog import OrgRole
from tenantry.identity import repository as identity_repository
from tenantry.identity import service as identity
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Forbidden
from tenantry.scim import repository
from tenantry.scim.models import ScimUser
from tenantry.scim.tokens import mapping_of
from tenantry.sso import domains, provisioning
from tenantry.sso.mapping import MappingRules, Profile, evaluate
from tenantry.tenancy import hooks
from tenantry.tenancy import repository as tenancy_repository


def email_of(attributes: dict[str, Any]) -> str | None:
    """The person's email: their userName when it is one (Okta's and Entra ID's usual
    choice), else their primary email, else their first."""
    user_name = str(attributes.get("userName") or "").strip()
    if _is_email(user_name):
        return user_name
    emails = [e for e in attributes.get("emails") or [] if isinstance(e, dict)]
    emails.sort(key=lambda e: not e.get("primary"))
    for entry in emails:
        value = str(entry.get("value") or "").strip()
        if _is_email(value):
            return value
    return None


def _is_email(value: str) -> bool:
    local, at, domain = value.rpartition("@")
    return bool(at and local and "." in domain and " " not in value and len(value) <= 254)


def name_of(attributes: dict[str, Any]) -> str:
    name = attributes.get("name") or {}
    formatted = name.get("formatted") if isinstance(name, dict) else None
    parts = [name.get("givenName"), name.get("familyName")] if isinstance(name, dict) else []
    joined = " ".join(str(p) for p in parts if p)
    return str(attributes.get("displayName") or formatted or joined or "")[:200]


def place(
    ctx: Ctx, *, org_id: str, row: ScimUser, rules: MappingRules | None = None
) -> dict[str, Any]:
    """Bring the person's place in the org in line with the record. Returns what changed,
    for the request's one audit event (ids only: no personal details)."""
    if not row.active:
        return deprovision(ctx, org_id=org_id, row=row)
    email = email_of(row.attributes)
    if email is None:
        return {"account": None, "reason": "no_email"}
    session = ctx.session
    if row.user_id is None:
        row.user_id = _account_for(ctx, org_id=org_id, row=row, email=email)
        session.flush()
    repository.lift_suspension(session, org_id=org_id, user_id=row.user_id)
    rules = rules or mapping_of(session, org_id=org_id)
    groups = repository.groups_of_members(session, org_id=org_id, member_ids=[row.id])[row.id]
    profile = Profile(
        email=email,
        name=name_of(row.attributes),
        groups=frozenset(g.display_name for g in groups),
    )
    outcome = evaluate(rules, profile)
    if outcome.grants is None:
        removed = _leave_org(session, org_id=org_id, user_id=row.user_id)
        return {"account": row.user_id, "refusal": outcome.refusal, "left_org": removed}
    change = provisioning.plan(
        ctx, org_id=org_id, user_id=row.user_id, grants=outcome.grants, rules=rules
    )
    provisioning.execute(ctx, change, user_id=row.user_id)
    return {"account": row.user_id, "rule": outcome.rule, "placement": change.describe()}


def _account_for(ctx: Ctx, *, org_id: str, row: ScimUser, email: str) -> str:
    """The account the record stands for: a new one without a password, or an existing one
    when it is already the org's or of a domain the org has verified; never an outsider's
    account claimed by its email alone."""
    session = ctx.session
    existing = identity_repository.user_by_email(session, email)
    if existing is None:
        return identity.create_federated_user(
            ctx, email=email, full_name=name_of(row.attributes)
        ).id
    # Already the org's: a member, or someone its directory deprovisioned (and now re-creates).
    ours = tenancy_repository.org_membership(
        session, org_id=org_id, user_id=existing.id
    ) is not None or repository.is_suspended(session, org_id=org_id, user_id=existing.id)
    if not ours and not domains.org_verifies(session, org_id=org_id, email=email):
        raise UniquenessException(
            detail="An account with this email exists outside the organization; verify its "
            "domain or invite the person first"
        )
    other = repository.user_of_account(session, org_id=org_id, user_id=existing.id)
    if other is not None and other.id != row.id:
        raise UniquenessException(detail="Another SCIM user already stands for this account")
    return existing.id


def deprovision(ctx: Ctx, *, org_id: str, row: ScimUser) -> dict[str, Any]:
    if row.user_id is None:
        return {"account": None}
    session, now = ctx.session, ctx.clock.now()
    user_id = row.user_id
    repository.suspend(session, org_id=org_id, user_id=user_id, now=now)
    left = _leave_org(session, org_id=org_id, user_id=user_id)
    keys = repository.revoke_api_keys(session, org_id=org_id, user_id=user_id, now=now)
    identity_repository.revoke_sessions_of(
        session, user_id=user_id, now=now, reason="scim_deprovisioned"
    )
    return {"account": user_id, "left_org": left, "api_keys_revoked": keys, "sessions_ended": True}


def _leave_org(session: Session, *, org_id: str, user_id: str) -> bool:
    membership = tenancy_repository.org_membership(session, org_id=org_id, user_id=user_id)
    if membership is None:
        return False
    if (
        membership.role == OrgRole.OWNER.value
        and tenancy_repository.count_org_owners(session, org_id=org_id) <= 1
    ):
        raise MutabilityException(
            detail="The organization's last owner cannot be deprovisioned; transfer ownership first"
        )
    tenancy_repository.remove_org_member(session, org_id=org_id, user_id=user_id)
    return True


def _refuse_suspended(session: Session, org_id: str, user_id: str) -> None:
    if repository.is_suspended(session, org_id=org_id, user_id=user_id):
        raise Forbidden(
            "The organization's directory has deactivated this person; it must reactivate them",
            code="scim_suspended",
            org_id=org_id,
        )


# An invitation or an SSO sign-in would bring a deprovisioned person back; the directory decides.
hooks.on_person_joining(_refuse_suspended)
