"""Bodies of the operator endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from tenantry.kit.schemas import Email, Input, Name, Output, Slug
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
