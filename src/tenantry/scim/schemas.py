"""Request and response models of SCIM tokens on Tenantry's own API (the SCIM protocol's own
documents are `scim2-models`' resources, in `scim.resources`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from tenantry.kit.schemas import Input, Output


class ScimTokenIn(Input):
    name: str = Field(min_length=1, max_length=100, description="Which directory holds it")


class ScimTokenOut(Output):
    id: str
    org_id: str
    name: str
    display_prefix: str
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ScimTokenCreatedOut(ScimTokenOut):
    secret: str = Field(
        description="Shown once; store it in the directory now. Tenantry keeps only a hash."
    )
    base_url: str = Field(description="The SCIM base URL the directory is given with the token")
