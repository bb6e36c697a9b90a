"""Bodies of the operator endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from tenantry.kit.schemas import Email, Input, Name, Output, Slug, UnitPrice, left_out
from tenantry.tenancy.schemas import InvitationLinkOut, PlanKey


class TenantOut(Output):
    id: str
    name: str
    slug: str
    plan: str
    status: str = Field(description="active | suspended")
    member_count: int
    usage: dict[str, str] = Field(
        description="Used so far in each metered quota's current period (its day, its month, "
        "or now for a level such as storage)"
    )
    created_at: datetime


class TenantCreateIn(Input):
    name: Name
    slug: Slug | None = None
    plan: PlanKey = Field(description="Any plan of the catalog; no trial, no subscription")
    owner_email: Email = Field(
        description="The owner: their account, or an invitation when they have none yet"
    )


class TenantCreatedOut(TenantOut):
    owner_invitation: InvitationLinkOut | None = None


class TenantPlanIn(Input):
    plan: PlanKey


class SuspendIn(Input):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None


PlanCode = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z][a-z0-9_-]{0,31}$")
]
Amount = UnitPrice  # a price or rate: at most six decimal places


class CatalogQuotaIn(Input):
    limit: Amount | None = Field(description="null: unlimited")
    enforcement: Literal["hard", "soft"] = "hard"


class CatalogRateLimitsIn(Input):
    org_per_minute: int = Field(ge=1, le=10**9)
    org_burst: int = Field(ge=1, le=10**9)
    key_per_minute: int = Field(ge=1, le=10**9)
    key_burst: int = Field(ge=1, le=10**9)


class CatalogPlanPatch(Input):
    """What changes in a plan of the catalog; what is left out stays. `quotas` and
    `overage_rates` replace the plan's whole set when given. Only `upgrade_to` can be cleared
    (null)."""

    name: Name = left_out()
    monthly_price: Amount = left_out()
    yearly_price: Amount = left_out()
    currency: Annotated[str, StringConstraints(pattern=r"^[a-z]{3}$")] = left_out()
    quotas: dict[Annotated[str, StringConstraints(max_length=64)], CatalogQuotaIn] = left_out()
    rate_limits: CatalogRateLimitsIn = left_out()
    overage_rates: dict[Annotated[str, StringConstraints(max_length=64)], Amount] = left_out()
    audit_retention_days: int = left_out(ge=1, le=3650)
    upgrade_to: PlanCode | None = Field(
        default=None, description="The plan a 402 suggests next; send null for none"
    )


class CatalogPlanIn(CatalogPlanPatch):
    key: PlanCode
    name: Name
    monthly_price: Amount
    yearly_price: Amount
    rate_limits: CatalogRateLimitsIn
    audit_retention_days: int = Field(default=365, ge=1, le=3650)


class CatalogQuotaOut(Output):
    key: str
    kind: str
    limit: str | None
    enforcement: str
    period: str
    meter: str | None


class CatalogPlanOut(Output):
    key: str
    name: str
    monthly_price: str
    yearly_price: str
    currency: str
    quotas: list[CatalogQuotaOut]
    rate_limits: dict[str, int]
    overage_rates: dict[str, str]
    audit_retention_days: int
    upgrade_to: str | None


class CatalogOut(Output):
    version: int
    plans: list[CatalogPlanOut]
