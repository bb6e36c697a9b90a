"""Bodies of the access-control endpoints: custom roles, grants, templates and the questions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from tenantry.kit.schemas import Description, Input, Output, Timestamp, left_out

RoleName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
PermissionName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)
]
ResourceType = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
Reason = Annotated[str, StringConstraints(max_length=500)]
SubjectType = Literal["user", "team", "api_key"]
MAX_SUBJECTS = 1000
TEN_YEARS = 10 * 366 * 24 * 3600


# ---- roles ----


class RoleCreateIn(Input):
    name: RoleName
    description: Description = ""
    permissions: list[PermissionName] = Field(default_factory=list, max_length=100)
    inherits: list[RoleName] = Field(
        default_factory=list,
        max_length=20,
        description="Roles whose permissions this one includes: built-in names or custom roles",
    )


class RoleUpdateIn(Input):
    """What changes; a field left out stays as it is, none can be null (`[]` empties a list)."""

    name: RoleName = left_out()
    description: Description = left_out()
    permissions: list[PermissionName] = left_out(max_length=100)
    inherits: list[RoleName] = left_out(max_length=20)


class RoleOut(Output):
    id: str
    org_id: str | None = Field(description="None for a built-in role")
    name: str
    description: str
    builtin: bool
    permissions: list[str] = Field(description="The role's own permissions")
    inherits: list[str]
    effective_permissions: list[str] = Field(description="Its own and every inherited one")
    created_at: datetime | None = None
    updated_at: datetime | None = None


# ---- subjects and resources ----


SubjectRef = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=254)]


class SubjectIn(Input):
    type: SubjectType
    id: SubjectRef = Field(description="A user's id or email, a team's id, an API key's id")


class SubjectOut(Output):
    type: str
    id: str


class ResourceIn(Input):
    type: ResourceType
    id: Identifier | None = Field(
        default=None,
        description="The resource's id; `*` for every resource of the type in the team; "
        "for a team, its id",
    )
    team_id: Identifier | None = Field(
        default=None, description="The team that owns a team-owned resource"
    )


class ResourceOut(Output):
    type: str
    id: str
    team_id: str | None = None


# ---- grants ----


class GrantCreateIn(Input):
    subject: SubjectIn
    resource: ResourceIn | None = Field(default=None, description="Default: the whole team")
    role: RoleName | None = None
    permissions: list[PermissionName] | None = Field(default=None, max_length=100)
    expires_at: Timestamp | None = None
    reason: Reason = ""


class GrantOut(Output):
    id: str
    org_id: str
    team_id: str
    subject_type: str
    subject_id: str
    resource_type: str
    resource_id: str
    role: str | None
    permissions: list[str] | None
    expires_at: datetime | None
    granted_by: str | None
    reason: str
    created_at: datetime


class BulkGrantIn(Input):
    action: Literal["grant", "revoke", "change_role"]
    subjects: list[SubjectIn] = Field(min_length=1, max_length=MAX_SUBJECTS)
    resource: ResourceIn | None = Field(default=None, description="Default: the whole team")
    role: RoleName | None = None
    permissions: list[PermissionName] | None = Field(default=None, max_length=100)
    expires_at: Timestamp | None = None
    reason: Reason = ""


class BulkGrantOut(Output):
    action: str
    changed: int
    grants: list[GrantOut] = Field(description="Grants created or changed")
    revoked: list[str] = Field(description="Ids of the grants revoked")


# ---- templates ----


class TemplateCreateIn(Input):
    name: RoleName
    description: Description = ""
    role: RoleName | None = None
    permissions: list[PermissionName] | None = Field(default=None, max_length=100)
    resource_type: ResourceType = "team"
    resource_id: Identifier | None = Field(
        default=None,
        description="None: named when applied (or the team itself); `*`: every resource of the "
        "type in the team it is applied in",
    )
    duration_seconds: int | None = Field(default=None, ge=60, le=TEN_YEARS)


class TemplateOut(Output):
    id: str
    org_id: str
    name: str
    description: str
    role: str | None
    permissions: list[str] | None
    resource_type: str
    resource_id: str | None
    duration_seconds: int | None
    created_by: str | None
    created_at: datetime


class TemplateApplyIn(Input):
    subjects: list[SubjectIn] = Field(min_length=1, max_length=MAX_SUBJECTS)
    resource_id: Identifier | None = None
    reason: Reason = ""


# ---- questions ----


class CheckIn(Input):
    subject: SubjectIn | None = Field(default=None, description="Default: the caller")
    permission: PermissionName
    resource: ResourceIn | None = Field(default=None, description="Default: the organization")


class CheckOut(Output):
    allowed: bool
    via: str | None = Field(description="The role or grant that allowed it")
    subject: SubjectOut
    permission: str
    resource: ResourceOut


class RemedyOut(Output):
    kind: str
    id: str
    name: str
    detail: str


class ExplainOut(CheckOut):
    missing: str | None
    reason: str
    detail: str
    remedies: list[RemedyOut]


class WhoCanOut(Output):
    subject: SubjectOut
    via: str | None


class WhatCanOut(Output):
    resource: ResourceOut
    via: str | None
