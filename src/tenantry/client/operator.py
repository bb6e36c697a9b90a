"""SDK calls of operators (mixed into `tenantry.client.api.Api`); see that module's conventions.

Only the deployment's operators may make them (403 `operator_only` for anyone else): list and
find tenants, create one on any plan, give a plan outside billing, set a custom plan, suspend
and resume. See docs/operators.md.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from tenantry.client._calls import (
    API,
    Call,
    endpoint,
    fields,
    model,
    page_query,
    paged,
    segment,
)
from tenantry.client.metering import Plan
from tenantry.client.models import InvitationLink, Page, Result


class Tenant(Result):
    id: str
    name: str
    slug: str
    plan: str
    status: str  # active | suspended
    member_count: int
    usage: dict[str, str]  # metered quota -> used in its current period
    created_at: datetime


class TenantCreated(Tenant):
    owner_invitation: InvitationLink | None = None


class CatalogQuota(Result):
    key: str
    kind: str
    limit: str | None
    enforcement: str
    period: str
    meter: str | None


class CatalogPlan(Result):
    key: str
    name: str
    monthly_price: str
    yearly_price: str
    currency: str
    quotas: list[CatalogQuota]
    rate_limits: dict[str, int]
    overage_rates: dict[str, str]
    audit_retention_days: int
    upgrade_to: str | None


class PlanCatalog(Result):
    version: int
    plans: list[CatalogPlan]


def _tenant(org: str, what: str = "") -> str:
    return f"{API}/operator/tenants/{segment(org)}{what}"


class OperatorCalls:
    @endpoint
    def list_tenants(
        self,
        *,
        q: str | None = None,
        status: str | None = None,
        plan: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[Tenant]]:
        """Every tenant (or those matching `q`, a part of a name or slug, or an id)."""
        query = page_query(limit, cursor, q=q, status=status, plan=plan)
        return Call("GET", f"{API}/operator/tenants", model(Page[Tenant]), params=query)

    iter_tenants = paged(list_tenants)

    @endpoint
    def get_tenant(self, org: str) -> Call[Tenant]:
        return Call("GET", _tenant(org), model(Tenant))

    @endpoint
    def create_tenant(
        self,
        name: str,
        *,
        plan: str,
        owner_email: str,
        slug: str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[TenantCreated]:
        """A tenant on any plan, owned by `owner_email` (invited when they have no account)."""
        body = fields(name=name, slug=slug, plan=plan, owner_email=owner_email)
        return Call(
            "POST",
            f"{API}/operator/tenants",
            model(TenantCreated),
            body=body,
            idempotency_key=idempotency_key,
        )

    @endpoint
    def tenant_plan(self, org: str) -> Call[Plan]:
        return Call("GET", _tenant(org, "/plan"), model(Plan))

    @endpoint
    def set_tenant_plan(self, org: str, plan: str) -> Call[Tenant]:
        """Put the tenant on `plan` outside billing (409 `subscription_active` if it pays
        for one through billing)."""
        return Call("PUT", _tenant(org, "/plan"), model(Tenant), body={"plan": plan})

    @endpoint
    def set_tenant_overrides(
        self,
        org: str,
        *,
        name: str | None = None,
        quotas: dict[str, dict[str, Any]] | None = None,
        rate_limits: dict[str, int] | None = None,
        overage_rates: dict[str, Decimal | int | str | None] | None = None,
    ) -> Call[Plan]:
        """Replace the tenant's overrides (a custom plan); no arguments: back to the catalog."""
        body = fields(
            name=name,
            quotas=quotas,
            rate_limits=rate_limits,
            overage_rates={k: None if v is None else str(v) for k, v in overage_rates.items()}
            if overage_rates
            else None,
        )
        return Call("PUT", _tenant(org, "/plan-overrides"), model(Plan), body=body)

    @endpoint
    def suspend_tenant(self, org: str, *, reason: str | None = None) -> Call[Tenant]:
        return Call("POST", _tenant(org, "/suspend"), model(Tenant), body=fields(reason=reason))

    @endpoint
    def resume_tenant(self, org: str) -> Call[Tenant]:
        return Call("POST", _tenant(org, "/resume"), model(Tenant))

    # ---- the plan catalog ----

    @endpoint
    def plan_catalog(self) -> Call[PlanCatalog]:
        """The catalog as the deployment has it (shipped plans with operators' edits)."""
        return Call("GET", f"{API}/operator/plans", model(PlanCatalog))

    @endpoint
    def add_catalog_plan(
        self,
        key: str,
        *,
        name: str,
        monthly_price: Decimal | int | str,
        yearly_price: Decimal | int | str,
        rate_limits: dict[str, int],
        quotas: dict[str, dict[str, Any]] | None = None,
        overage_rates: dict[str, Decimal | int | str] | None = None,
        currency: str | None = None,
        audit_retention_days: int | None = None,
        upgrade_to: str | None = None,
    ) -> Call[CatalogPlan]:
        """A new plan in the catalog (tenants subscribe to it, operators give it)."""
        body = _plain(
            fields(
                key=key,
                name=name,
                monthly_price=monthly_price,
                yearly_price=yearly_price,
                rate_limits=rate_limits,
                quotas=quotas,
                overage_rates=overage_rates,
                currency=currency,
                audit_retention_days=audit_retention_days,
                upgrade_to=upgrade_to,
            )
        )
        return Call("POST", f"{API}/operator/plans", model(CatalogPlan), body=body)

    @endpoint
    def edit_catalog_plan(
        self,
        key: str,
        *,
        name: str | None = None,
        monthly_price: Decimal | int | str | None = None,
        yearly_price: Decimal | int | str | None = None,
        rate_limits: dict[str, int] | None = None,
        quotas: dict[str, dict[str, Any]] | None = None,
        overage_rates: dict[str, Decimal | int | str] | None = None,
        currency: str | None = None,
        audit_retention_days: int | None = None,
        upgrade_to: str | None = None,
    ) -> Call[CatalogPlan]:
        """Change a plan of the catalog (what is given); every org on it follows at once."""
        body = _plain(
            fields(
                name=name,
                monthly_price=monthly_price,
                yearly_price=yearly_price,
                rate_limits=rate_limits,
                quotas=quotas,
                overage_rates=overage_rates,
                currency=currency,
                audit_retention_days=audit_retention_days,
                upgrade_to=upgrade_to,
            )
        )
        path = f"{API}/operator/plans/{segment(key)}"
        return Call("PATCH", path, model(CatalogPlan), body=body)


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Decimals as the strings the API takes."""

    def one(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, dict):
            return {k: one(v) for k, v in value.items()}
        return value

    return {k: one(v) for k, v in values.items()}
