"""Business rules of operators: who they are, and what they do to tenants.

Every act of an operator on a tenant is recorded twice: in the tenant's chain (actor type
`operator`), where the tenant's own audit shows it, and in the operator chain (`audit.service.
OPERATOR_CHAIN`), the deployment's record of what its operators did.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.principal import Principal
from tenantry.billing import subscriptions
from tenantry.identity import repository as identity_repository
from tenantry.identity.models import User
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, Forbidden, NotFound, Unprocessable
from tenantry.kit.pagination import Page, PageRequest
from tenantry.metering import plans as metering_plans
from tenantry.metering import repository as metering_repository
from tenantry.metering.meters import meter_of
from tenantry.metering.quotas import quota_statuses
from tenantry.operator import repository
from tenantry.operator.models import Operator
from tenantry.plans import live as live_catalog
from tenantry.plans.catalog import (
    QUOTA_SHAPES,
    Enforcement,
    Plan,
    Quota,
    QuotaKind,
    RateLimits,
)
from tenantry.plans.models import PlanOverride
from tenantry.tenancy import repository as tenancy_repository
from tenantry.tenancy.models import Organization, OrgStatus
from tenantry.tenancy.orgs import CreatedOrg, open_org_for

OPERATOR_ACTOR = "operator"


# ---- who is an operator ----


def is_operator(session: Session, principal: Principal) -> bool:
    """A signed-in user the deployment made an operator; an API key never acts as one."""
    return principal.kind == "user" and repository.operator(session, principal.user_id) is not None


def require_operator(session: Session, principal: Principal) -> None:
    if not is_operator(session, principal):
        raise Forbidden(
            "Only the deployment's operators may do this (see docs/operators.md)",
            code="operator_only",
        )


# ---- bootstrap (the `tenantry operator` commands, on the database directly) ----


class OperatorError(Exception):
    """A bootstrap command that cannot be done; the message says why."""


def add_operator(session: Session, user: User, *, now: datetime, by: str = "cli") -> bool:
    """Make `user` an operator; False if they already were one. Recorded in the operator
    chain."""
    if repository.operator(session, user.id) is not None:
        return False
    session.add(Operator(user_id=user.id, created_at=now, added_by=by))
    session.flush()
    _bootstrap_event(session, "operator.added", user, now=now, by=by)
    return True


def remove_operator(session: Session, user: User, *, now: datetime, by: str = "cli") -> bool:
    """The user is an operator no more (their account stays); False if they were not one."""
    found = repository.operator(session, user.id)
    if found is None:
        return False
    session.delete(found)
    session.flush()
    _bootstrap_event(session, "operator.removed", user, now=now, by=by)
    return True


def operators(session: Session) -> list[tuple[Operator, User]]:
    return repository.operators(session)


def user_by_email(session: Session, email: str) -> User | None:
    return identity_repository.user_by_email(session, email)


def _bootstrap_event(session: Session, action: str, user: User, *, now: datetime, by: str) -> None:
    audit.append(
        session,
        now=now,
        org_id=None,
        actor_type=OPERATOR_ACTOR,
        actor_id=None if by == "cli" else by,
        action=action,
        result="success",
        subject_id=None,
        personal=audit.Personal(),
        target_type="user",
        target_id=user.id,
        summary={"via": by},
    )


# ---- tenants ----


@dataclass(frozen=True)
class TenantView:
    org: Organization
    member_count: int
    # Used so far in each metered quota's current period (a day, a month, or now for a level).
    usage: dict[str, Decimal]


def _usage(session: Session, org_id: str, now: datetime) -> dict[str, Decimal]:
    return {
        status.quota.key: status.used
        for status in quota_statuses(session, org_id, now=now)
        if status.quota.kind is QuotaKind.METERED and status.used is not None
    }


def _views(session: Session, orgs: list[Organization], now: datetime) -> list[TenantView]:
    counts = repository.member_counts(session, [o.id for o in orgs])
    return [TenantView(o, counts.get(o.id, 0), _usage(session, o.id, now)) for o in orgs]


def list_tenants(
    session: Session,
    page: PageRequest,
    *,
    now: datetime,
    q: str | None,
    status: str | None,
    plan: str | None,
) -> Page[TenantView]:
    found = repository.tenants(session, page, q=q, status=status, plan=plan)
    return Page(items=_views(session, list(found.items), now), next_cursor=found.next_cursor)


def tenant(session: Session, ref: str) -> Organization:
    org = tenancy_repository.unscoped_org_by_ref(session, ref)
    if org is None:
        raise NotFound("Organization not found")
    return org


def tenant_view(session: Session, org: Organization, *, now: datetime) -> TenantView:
    return _views(session, [org], now)[0]


def _record(
    ctx: Ctx,
    principal: Principal,
    org_id: str,
    summary: dict[str, Any],
    *,
    target_type: str = "organization",
    target_id: str | None = None,
) -> None:
    """The act, in the tenant's chain and in the operator chain."""
    actor = (OPERATOR_ACTOR, principal.user_id)
    target = target_id or org_id
    for chain_org in (org_id, None):
        audit.record(
            ctx,
            principal,
            org_id=chain_org,
            target_type=target_type,
            target_id=target,
            actor=actor,
            summary=summary if chain_org else {"org_id": org_id, **summary},
            one_of_many=True,
        )


def create_tenant(
    ctx: Ctx,
    principal: Principal,
    *,
    name: str,
    slug: str | None,
    plan: str,
    owner_email: str,
) -> CreatedOrg:
    """A tenant on any plan of the catalog, owned by `owner_email` (invited if they have no
    account yet). The operator does not join it."""
    live_catalog.current(ctx.session).check(plan)
    created = open_org_for(ctx, principal, name=name, slug=slug, plan=plan, owner_email=owner_email)
    invitation = created.owner_invitation
    _record(
        ctx,
        principal,
        created.org.id,
        {
            "name": name,
            "slug": created.org.slug,
            "plan": plan,
            "owner_invitation_id": invitation.invitation.id if invitation else None,
        },
    )
    return created


def set_plan(ctx: Ctx, principal: Principal, org: Organization, plan: str) -> Organization:
    """Put the tenant on `plan` outside billing (a contract). A tenant with a live subscription
    is billed for its plan: that is changed through billing, or canceled first (409)."""
    live_catalog.current(ctx.session).check(plan)
    if plan != org.plan and subscriptions.has_live_subscription(ctx.session, org.id):
        raise Conflict(
            "The organization has a subscription: its plan moves through billing; cancel the "
            "subscription first to give a plan outside billing",
            code="subscription_active",
        )
    before = org.plan
    subscriptions.set_org_plan(ctx.session, org, plan, now=ctx.clock.now())
    _record(ctx, principal, org.id, {"plan": {"before": before, "after": plan}})
    return org


def set_overrides(
    ctx: Ctx, principal: Principal, org: Organization, overrides: dict[str, Any]
) -> Plan:
    """Replace the tenant's overrides of its plan (a custom plan); none at all goes back to the
    catalog plan. Audited with what they were and what they are."""
    metering_plans.check_overrides(overrides)
    row = metering_repository.plan_override(ctx.session, org.id)
    before = row.as_overrides() if row is not None else None
    after: dict[str, Any] | None = None
    if not any(overrides.values()):
        if row is not None:
            ctx.session.delete(row)
    else:
        if row is None:
            row = PlanOverride(org_id=org.id)
            ctx.session.add(row)
        row.name = overrides.get("name")
        row.quotas = overrides.get("quotas") or {}
        row.rate_limits = overrides.get("rate_limits") or {}
        row.overage_rates = overrides.get("overage_rates") or {}
        row.updated_at = ctx.clock.now()
        after = row.as_overrides()
    ctx.session.flush()
    _record(ctx, principal, org.id, {"before": before, "after": after})
    return metering_plans.effective_plan(ctx.session, org.id)


def suspend(
    ctx: Ctx, principal: Principal, org: Organization, *, reason: str | None
) -> Organization:
    """Refuse the tenant's members and API keys everywhere in it (403 `tenant_suspended`);
    nothing is deleted."""
    if org.status == OrgStatus.SUSPENDED:
        raise Conflict("The organization is suspended already", code="tenant_suspended")
    org.status, org.updated_at = OrgStatus.SUSPENDED, ctx.clock.now()
    ctx.session.flush()
    _record(ctx, principal, org.id, {"status": OrgStatus.SUSPENDED, "reason": reason})
    return org


def resume(ctx: Ctx, principal: Principal, org: Organization) -> Organization:
    if org.status != OrgStatus.SUSPENDED:
        raise Conflict("The organization is not suspended", code="tenant_not_suspended")
    org.status, org.updated_at = OrgStatus.ACTIVE, ctx.clock.now()
    ctx.session.flush()
    _record(ctx, principal, org.id, {"status": OrgStatus.ACTIVE})
    return org


# ---- the plan catalog, as data ----


def _quota_of(key: str, spec: dict[str, Any]) -> Quota:
    if key not in QUOTA_SHAPES:
        raise Unprocessable(f"Unknown quota {key!r}", code="unknown_quota")
    kind, period, meter = QUOTA_SHAPES[key]
    raw = spec.get("limit")
    return Quota(
        key=key,
        kind=kind,
        limit=None if raw is None else Decimal(str(raw)),
        enforcement=Enforcement(spec.get("enforcement") or Enforcement.HARD.value),
        period=period,
        meter=meter,
    )


def save_plan(
    ctx: Ctx, principal: Principal, key: str, changes: dict[str, Any], *, new: bool
) -> tuple[Plan, str | None]:
    """Add a plan to the catalog (`new`; 409 if it exists) or change one (404 if none): prices,
    quotas, rate limits, overage rates. Every org on the plan follows at once, in every process.
    Audited in the operator chain."""
    catalog = live_catalog.current(ctx.session)
    base = catalog.get(key)
    if new and base is not None:
        raise Conflict(f"The catalog has a plan {key!r} already", code="plan_exists")
    if not new and base is None:
        raise NotFound(f"No plan {key!r} in the catalog", code="not_found")
    upgrade_to = changes.get("upgrade_to", catalog.upgrade_hint(key))
    if upgrade_to is not None and (upgrade_to == key or catalog.get(upgrade_to) is None):
        raise Unprocessable(f"upgrade_to: no other plan {upgrade_to!r}", code="invalid_plan")
    for meter in changes.get("overage_rates") or {}:
        if meter_of(meter) is None:
            raise Unprocessable(f"Unknown meter {meter!r} in overage_rates", code="unknown_meter")
    quotas = (
        {k: _quota_of(k, v) for k, v in changes["quotas"].items()}
        if changes.get("quotas") is not None
        else (base.quotas if base is not None else {})
    )
    rates = changes.get("rate_limits")
    plan = Plan(
        key=key,
        name=changes.get("name") or (base.name if base else key),
        monthly_price=Decimal(str(changes.get("monthly_price", base.monthly_price if base else 0))),
        yearly_price=Decimal(str(changes.get("yearly_price", base.yearly_price if base else 0))),
        quotas=quotas,
        rate_limits=RateLimits(**rates) if rates else base.rate_limits,  # type: ignore[union-attr]
        overage_rates=(
            {k: Decimal(str(v)) for k, v in changes["overage_rates"].items()}
            if changes.get("overage_rates") is not None
            else (dict(base.overage_rates) if base else {})
        ),
        currency=changes.get("currency") or (base.currency if base else "usd"),
        audit_retention_days=changes.get(
            "audit_retention_days", base.audit_retention_days if base else 365
        ),
    )
    live_catalog.save(ctx.session, plan, upgrade_to=upgrade_to, now=ctx.clock.now(), new=new)
    audit.record(
        ctx,
        principal,
        org_id=None,
        target_type="plan",
        target_id=key,
        actor=(OPERATOR_ACTOR, principal.user_id),
        summary={"new": new, "changed": sorted(changes)},
    )
    return plan, upgrade_to
