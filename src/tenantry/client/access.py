"""SDK calls of access (mixed into `tenantry.client.api.Api`); see that module's conventions.

Subjects are written `("user", "usr_…")`, `("team", "team_…")` or `("api_key", "key_…")` (a user
may be named by email); resources `("team", "team_…")`, `("model", "mdl_…", "team_…")` — a
team-owned resource with its team — or `("org", org)`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from tenantry.client._calls import (
    API,
    Call,
    endpoint,
    fields,
    iso,
    model,
    nothing,
    page_query,
    paged,
    segment,
)
from tenantry.client.models import Page, Result

SubjectRef = tuple[str, str]
ResourceRef = tuple[str, str] | tuple[str, str, str]
BulkAction = Literal["grant", "revoke", "change_role"]


# ---- results ----


class Role(Result):
    id: str
    org_id: str | None = None
    name: str
    description: str = ""
    builtin: bool = False
    permissions: list[str] = Field(default_factory=list)
    inherits: list[str] = Field(default_factory=list)
    effective_permissions: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Grant(Result):
    id: str
    org_id: str
    team_id: str
    subject_type: str
    subject_id: str
    resource_type: str
    resource_id: str
    role: str | None = None
    permissions: list[str] | None = None
    expires_at: datetime | None = None
    granted_by: str | None = None
    reason: str = ""
    created_at: datetime


class BulkResult(Result):
    action: str
    changed: int
    grants: list[Grant] = Field(default_factory=list)
    revoked: list[str] = Field(default_factory=list)


class GrantTemplate(Result):
    id: str
    org_id: str
    name: str
    description: str = ""
    role: str | None = None
    permissions: list[str] | None = None
    resource_type: str
    resource_id: str | None = None
    duration_seconds: int | None = None
    created_by: str | None = None
    created_at: datetime


class SubjectOut(Result):
    type: str
    id: str


class ResourceOut(Result):
    type: str
    id: str
    team_id: str | None = None


class Decision(Result):
    allowed: bool
    via: str | None = None
    subject: SubjectOut
    permission: str
    resource: ResourceOut


class Remedy(Result):
    kind: str
    id: str
    name: str
    detail: str = ""


class Explanation(Decision):
    missing: str | None = None
    reason: str
    detail: str = ""
    remedies: list[Remedy] = Field(default_factory=list)


class WhoCan(Result):
    subject: SubjectOut
    via: str | None = None


class WhatCan(Result):
    resource: ResourceOut
    via: str | None = None


# ---- request bodies ----


def subject_body(subject: SubjectRef) -> dict[str, str]:
    return {"type": subject[0], "id": subject[1]}


def resource_body(resource: ResourceRef | None) -> dict[str, str] | None:
    if resource is None:
        return None
    body = {"type": resource[0], "id": resource[1]}
    if len(resource) > 2:
        body["team_id"] = resource[2]
    return body


def _question(
    subject: SubjectRef | None, permission: str, resource: ResourceRef | None
) -> dict[str, Any]:
    return fields(
        subject=subject_body(subject) if subject is not None else None,
        permission=permission,
        resource=resource_body(resource),
    )


class AccessCalls:
    """Routes of access, described once for both clients."""

    # ---- custom roles ----

    @endpoint
    def create_role(
        self,
        org: str,
        name: str,
        *,
        permissions: list[str] | None = None,
        inherits: list[str] | None = None,
        description: str | None = None,
    ) -> Call[Role]:
        """A custom role: catalog permissions plus the roles it inherits (built-in or custom)."""
        body = fields(
            name=name,
            permissions=permissions or [],
            inherits=inherits or [],
            description=description,
        )
        return Call("POST", f"{API}/orgs/{segment(org)}/roles", model(Role), body=body)

    @endpoint
    def list_roles(
        self,
        org: str,
        *,
        include_builtin: bool = False,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[Role]]:
        params = page_query(limit, cursor, include_builtin="true" if include_builtin else None)
        return Call("GET", f"{API}/orgs/{segment(org)}/roles", model(Page[Role]), params=params)

    iter_roles = paged(list_roles)

    @endpoint
    def get_role(self, org: str, role: str) -> Call[Role]:
        """A role by id or name (built-in names too)."""
        return Call("GET", f"{API}/orgs/{segment(org)}/roles/{segment(role)}", model(Role))

    @endpoint
    def update_role(
        self,
        org: str,
        role: str,
        *,
        name: str | None = None,
        description: str | None = None,
        permissions: list[str] | None = None,
        inherits: list[str] | None = None,
    ) -> Call[Role]:
        """Holders of the role have the new permissions on their next request."""
        body = fields(
            name=name, description=description, permissions=permissions, inherits=inherits
        )
        return Call(
            "PATCH", f"{API}/orgs/{segment(org)}/roles/{segment(role)}", model(Role), body=body
        )

    @endpoint
    def delete_role(self, org: str, role: str, *, reassign_to: str | None = None) -> Call[None]:
        """Delete a custom role; a role in use needs `reassign_to`, the role its holders get."""
        return Call(
            "DELETE",
            f"{API}/orgs/{segment(org)}/roles/{segment(role)}",
            nothing,
            params={"reassign_to": reassign_to} if reassign_to else {},
        )

    # ---- grants ----

    @endpoint
    def create_grant(
        self,
        team: str,
        subject: SubjectRef,
        *,
        resource: ResourceRef | None = None,
        role: str | None = None,
        permissions: list[str] | None = None,
        expires_at: datetime | None = None,
        reason: str | None = None,
    ) -> Call[Grant]:
        """Give `subject` a role (or permissions) on the team or on one of its resources."""
        body = fields(
            subject=subject_body(subject),
            resource=resource_body(resource),
            role=role,
            permissions=permissions,
            expires_at=iso(expires_at),
            reason=reason,
        )
        return Call("POST", f"{API}/teams/{segment(team)}/grants", model(Grant), body=body)

    @endpoint
    def list_grants(
        self,
        org: str,
        *,
        team: str | None = None,
        subject: SubjectRef | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        include_expired: bool = False,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[Grant]]:
        params = page_query(
            limit,
            cursor,
            team=team,
            subject_type=subject[0] if subject else None,
            subject_id=subject[1] if subject else None,
            resource_type=resource_type,
            resource_id=resource_id,
            include_expired="true" if include_expired else None,
        )
        return Call("GET", f"{API}/orgs/{segment(org)}/grants", model(Page[Grant]), params=params)

    iter_grants = paged(list_grants)

    @endpoint
    def list_team_grants(
        self,
        team: str,
        *,
        subject: SubjectRef | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        include_expired: bool = False,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[Grant]]:
        params = page_query(
            limit,
            cursor,
            subject_type=subject[0] if subject else None,
            subject_id=subject[1] if subject else None,
            resource_type=resource_type,
            resource_id=resource_id,
            include_expired="true" if include_expired else None,
        )
        return Call("GET", f"{API}/teams/{segment(team)}/grants", model(Page[Grant]), params=params)

    iter_team_grants = paged(list_team_grants)

    @endpoint
    def revoke_grant(self, grant_id: str) -> Call[None]:
        """Revoke a grant; it stops working on the next request."""
        return Call("DELETE", f"{API}/grants/{segment(grant_id)}", nothing)

    @endpoint
    def bulk_grants(
        self,
        team: str,
        action: BulkAction,
        subjects: list[SubjectRef],
        *,
        resource: ResourceRef | None = None,
        role: str | None = None,
        permissions: list[str] | None = None,
        expires_at: datetime | None = None,
        reason: str | None = None,
    ) -> Call[BulkResult]:
        """Grant, revoke or change the role of up to 1,000 subjects at once: all or nothing."""
        body = fields(
            action=action,
            subjects=[subject_body(s) for s in subjects],
            resource=resource_body(resource),
            role=role,
            permissions=permissions,
            expires_at=iso(expires_at),
            reason=reason,
        )
        return Call(
            "POST", f"{API}/teams/{segment(team)}/grants/bulk", model(BulkResult), body=body
        )

    # ---- templates ----

    @endpoint
    def create_grant_template(
        self,
        org: str,
        name: str,
        *,
        role: str | None = None,
        permissions: list[str] | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        duration_seconds: int | None = None,
        description: str | None = None,
    ) -> Call[GrantTemplate]:
        body = fields(
            name=name,
            role=role,
            permissions=permissions,
            resource_type=resource_type,
            resource_id=resource_id,
            duration_seconds=duration_seconds,
            description=description,
        )
        return Call(
            "POST", f"{API}/orgs/{segment(org)}/grant-templates", model(GrantTemplate), body=body
        )

    @endpoint
    def list_grant_templates(
        self, org: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[GrantTemplate]]:
        return Call(
            "GET",
            f"{API}/orgs/{segment(org)}/grant-templates",
            model(Page[GrantTemplate]),
            params=page_query(limit, cursor),
        )

    iter_grant_templates = paged(list_grant_templates)

    @endpoint
    def delete_grant_template(self, org: str, template: str) -> Call[None]:
        return Call(
            "DELETE", f"{API}/orgs/{segment(org)}/grant-templates/{segment(template)}", nothing
        )

    @endpoint
    def apply_grant_template(
        self,
        team: str,
        template: str,
        subjects: list[SubjectRef],
        *,
        resource_id: str | None = None,
        reason: str | None = None,
    ) -> Call[BulkResult]:
        """One grant per subject as the template says, in `team`: all or nothing."""
        body = fields(
            subjects=[subject_body(s) for s in subjects], resource_id=resource_id, reason=reason
        )
        return Call(
            "POST",
            f"{API}/teams/{segment(team)}/grant-templates/{segment(template)}/apply",
            model(BulkResult),
            body=body,
        )

    # ---- questions ----

    @endpoint
    def check_access(
        self,
        org: str,
        permission: str,
        *,
        resource: ResourceRef | None = None,
        subject: SubjectRef | None = None,
    ) -> Call[Decision]:
        """May `subject` (default: the caller) do `permission` on `resource` (default: the org)?
        `via` names the role or grant that allows it."""
        return Call(
            "POST",
            f"{API}/orgs/{segment(org)}/access/check",
            model(Decision),
            body=_question(subject, permission, resource),
        )

    @endpoint
    def explain_access(
        self,
        org: str,
        permission: str,
        *,
        resource: ResourceRef | None = None,
        subject: SubjectRef | None = None,
    ) -> Call[Explanation]:
        """As `check_access`; for a denial, what is missing and what would give it."""
        return Call(
            "POST",
            f"{API}/orgs/{segment(org)}/access/explain",
            model(Explanation),
            body=_question(subject, permission, resource),
        )

    @endpoint
    def who_can(
        self,
        org: str,
        permission: str,
        *,
        resource: ResourceRef | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[WhoCan]]:
        params = page_query(
            limit,
            cursor,
            permission=permission,
            resource_type=resource[0] if resource else None,
            resource_id=resource[1] if resource else None,
            team_id=resource[2] if resource and len(resource) > 2 else None,
        )
        return Call(
            "GET", f"{API}/orgs/{segment(org)}/access/who-can", model(Page[WhoCan]), params=params
        )

    iter_who_can = paged(who_can)

    @endpoint
    def what_can(
        self,
        org: str,
        permission: str,
        *,
        resource_type: str = "team",
        subject: SubjectRef | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[WhatCan]]:
        params = page_query(
            limit,
            cursor,
            permission=permission,
            resource_type=resource_type,
            subject_type=subject[0] if subject else None,
            subject_id=subject[1] if subject else None,
        )
        return Call(
            "GET",
            f"{API}/orgs/{segment(org)}/access/what-can",
            model(Page[WhatCan]),
            params=params,
        )

    iter_what_can = paged(what_can)
