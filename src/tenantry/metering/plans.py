"""An org's effective plan: the catalog plan (`Organization.plan`) with the org's overrides (its
custom plan) applied, kept per version stamp; and the overrides themselves."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.principal import Principal
from tenantry.kit.context import Ctx
from tenantry.kit.errors import NotFound, Unprocessable
from tenantry.kit.stamps import stamped
from tenantry.metering import repository
from tenantry.metering.meters import meter_of
from tenantry.plans import live as live_catalog
from tenantry.plans.catalog import (
    DEFAULT_PLAN,
    QUOTA_SHAPES,
    Plan,
    Quota,
    QuotaKind,
    apply_overrides,
)
from tenantry.plans.models import PlanOverride
from tenantry.tenancy.models import Organization

# Built plans by what they are built from (the catalog's version, the catalog key and the
# override's stored JSON), so a plan is parsed once per distinct content. Bounded; cleared
# wholesale when full.
_BUILT_PLANS: dict[tuple[int, repository.PlanSource], Plan] = {}
_BUILT_PLANS_CAPACITY = 4096


def effective_plan(session: Session, org_id: str) -> Plan:
    """The org's plan from the catalog (`Organization.plan`) with its overrides applied. Read
    once per change: a change to either bumps the org's version stamp (`access.policy`), under
    which the process keeps the plan; so the limiter and admission get it without a read, and
    never stale."""
    return stamped(session, org_id, "plan", lambda: _load_plan(session, org_id))


def _load_plan(session: Session, org_id: str) -> Plan:
    source = repository.org_plan_source(session, org_id)
    if source is None:
        raise NotFound("Organization not found")
    # The catalog as operators edited it; read only here, when the org's plan is (re)built.
    catalog = live_catalog.current(session)
    plan = _BUILT_PLANS.get((catalog.version, source))
    if plan is None:
        plan = _build_plan(catalog, source)
        if len(_BUILT_PLANS) >= _BUILT_PLANS_CAPACITY:
            _BUILT_PLANS.clear()
        _BUILT_PLANS[(catalog.version, source)] = plan
    return plan


def _build_plan(catalog: live_catalog.Catalog, source: repository.PlanSource) -> Plan:
    key, name, quotas, rate_limits, overage_rates = source
    plan = catalog.get(key) or catalog.plans[DEFAULT_PLAN]
    if quotas is None:
        return plan
    overrides = {
        "name": name,
        "quotas": orjson.loads(quotas) or {},
        "rate_limits": orjson.loads(rate_limits or "{}") or {},
        "overage_rates": orjson.loads(overage_rates or "{}") or {},
    }
    return apply_overrides(plan, overrides)


def metered_quota(plan: Plan, meter_key: str) -> Quota | None:
    """The plan's metered quota on `meter_key`, if it has a limit."""
    for quota in plan.quotas.values():
        if quota.kind is QuotaKind.METERED and quota.meter == meter_key and quota.limit is not None:
            return quota
    return None


def check_overrides(overrides: Mapping[str, Any]) -> None:
    """Refuse overrides the plan model cannot hold (422, naming the part)."""
    for key, change in (overrides.get("quotas") or {}).items():
        if key not in QUOTA_SHAPES:
            raise Unprocessable(f"Unknown quota {key!r}", code="unknown_quota")
        limit = change.get("limit")
        if limit is not None and Decimal(str(limit)) < 0:
            raise Unprocessable(f"The limit of {key} must not be negative", code="invalid_limit")
    for meter_key in overrides.get("overage_rates") or {}:
        if meter_of(meter_key) is None:
            raise Unprocessable(f"Unknown meter {meter_key!r}", code="unknown_meter")


def set_overrides(
    ctx: Ctx, principal: Principal, org: Organization, overrides: dict[str, Any]
) -> Plan:
    """Replace the org's overrides (its custom plan; none at all: back to the catalog plan),
    audited with what they were and what they are."""
    check_overrides(overrides)
    row = repository.plan_override(ctx.session, org.id)
    before = row.as_overrides() if row is not None else None
    if not any(overrides.values()):
        if row is not None:
            ctx.session.delete(row)
        after = None
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
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="organization",
        target_id=org.id,
        summary={"before": before, "after": after},
    )
    return effective_plan(ctx.session, org.id)
