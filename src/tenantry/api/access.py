"""HTTP routes of access control: custom roles, grants, grant templates, bulk changes and the
questions (check, explain, who-can, what-can). Each mutating route's `name` is its audit action."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from tenantry.access import questions
from tenantry.access import service as management
from tenantry.access.models import CustomRole, Grant
from tenantry.access.repository import GrantFilters, grants_of_org
from tenantry.access.schemas import (
    BulkGrantIn,
    BulkGrantOut,
    CheckIn,
    CheckOut,
    ExplainOut,
    GrantCreateIn,
    GrantOut,
    Identifier,
    RemedyOut,
    ResourceIn,
    ResourceOut,
    ResourceType,
    RoleCreateIn,
    RoleOut,
    RoleUpdateIn,
    SubjectOut,
    SubjectRef,
    TemplateApplyIn,
    TemplateCreateIn,
    TemplateOut,
    WhatCanOut,
    WhoCanOut,
)
from tenantry.authz.catalog import Permission
from tenantry.authz.engine import BUILTIN_ROLES, Resource, Snapshot, Subject
from tenantry.authz.service import policy
from tenantry.http.auth import OrgScope, PrincipalDep, TeamScope, org_scope, team_scope
from tenantry.http.body import JsonBodyRoute
from tenantry.http.work import CtxDep
from tenantry.kit.context import reads_only
from tenantry.kit.pagination import PageDep, PageOut, PageRequest

router = APIRouter(prefix="/api/v1", route_class=JsonBodyRoute)

RoleReader = Annotated[OrgScope, Depends(org_scope(Permission.ROLE_READ))]
RoleManager = Annotated[OrgScope, Depends(org_scope(Permission.ROLE_MANAGE))]
OrgGrantReader = Annotated[OrgScope, Depends(org_scope(Permission.GRANT_READ))]
OrgGrantManager = Annotated[OrgScope, Depends(org_scope(Permission.GRANT_MANAGE))]
TeamGrantReader = Annotated[TeamScope, Depends(team_scope(Permission.GRANT_READ))]
TeamGrantManager = Annotated[TeamScope, Depends(team_scope(Permission.GRANT_MANAGE))]
OrgMember = Annotated[OrgScope, Depends(org_scope(Permission.ORG_READ))]

QUESTION = "a question, not a change: it writes nothing"


# ---- custom roles ----


def _role_out(snapshot: Snapshot, role: CustomRole) -> RoleOut:
    effective = snapshot.role_permissions.get(role.id, frozenset())
    return RoleOut(
        id=role.id,
        org_id=role.org_id,
        name=role.name,
        description=role.description,
        builtin=False,
        permissions=sorted(role.permissions),
        inherits=list(role.inherits),
        effective_permissions=sorted(p.value for p in effective),
        created_at=role.created_at,
        updated_at=role.updated_at,
    )


def _builtin_out(name: str) -> RoleOut:
    permissions = sorted(p.value for p in BUILTIN_ROLES[name])
    return RoleOut(
        id=name,
        org_id=None,
        name=name,
        description=f"Built-in team role {name}",
        builtin=True,
        permissions=permissions,
        inherits=[],
        effective_permissions=permissions,
    )


@router.post(
    "/orgs/{org}/roles",
    name="role.created",
    status_code=201,
    response_model=RoleOut,
    tags=["access"],
)
def create_role(body: RoleCreateIn, scope: RoleManager) -> Response:
    role = management.create_role(
        scope.ctx,
        scope.principal,
        scope.org,
        name=body.name,
        description=body.description,
        permissions=body.permissions,
        inherits=body.inherits,
    )
    return scope.ctx.done(_role_out(policy(scope.ctx.session, scope.org.id), role), status=201)


@router.get("/orgs/{org}/roles", response_model=PageOut[RoleOut], tags=["access"])
def list_roles(
    scope: RoleReader,
    page: PageDep,
    include_builtin: Annotated[bool, Query(description="List the built-in roles first")] = False,
) -> PageOut[RoleOut]:
    found = management.list_roles(scope.ctx, scope.org, page)
    snapshot = policy(scope.ctx.session, scope.org.id)
    items = [_role_out(snapshot, r) for r in found.items]
    if include_builtin and page.cursor is None:
        items = [_builtin_out(name) for name in BUILTIN_ROLES] + items
    return PageOut(items=items, next_cursor=found.next_cursor)


@router.get("/orgs/{org}/roles/{role}", response_model=RoleOut, tags=["access"])
def show_role(role: str, scope: RoleReader) -> RoleOut:
    if role.lower() in BUILTIN_ROLES:
        return _builtin_out(role.lower())
    found = management.find_role(scope.ctx, scope.org, role)
    return _role_out(policy(scope.ctx.session, scope.org.id), found)


@router.patch(
    "/orgs/{org}/roles/{role}", name="role.updated", response_model=RoleOut, tags=["access"]
)
def update_role(role: str, body: RoleUpdateIn, scope: RoleManager) -> Response:
    updated = management.update_role(
        scope.ctx, scope.principal, scope.org, role, body.model_dump(exclude_unset=True)
    )
    return scope.ctx.done(_role_out(policy(scope.ctx.session, scope.org.id), updated))


@router.delete("/orgs/{org}/roles/{role}", name="role.deleted", status_code=204, tags=["access"])
def delete_role(
    role: str,
    scope: RoleManager,
    reassign_to: Annotated[
        str | None,
        Query(max_length=64, description="Move the role's holders to this role first"),
    ] = None,
) -> Response:
    management.delete_role(scope.ctx, scope.principal, scope.org, role, reassign_to=reassign_to)
    return scope.ctx.done(None, status=204)


# ---- grants ----


def _grant_out(grant: Grant) -> GrantOut:
    return GrantOut.model_validate(grant)


def _filters(
    subject_type: str | None,
    subject_id: str | None,
    resource_type: str | None,
    resource_id: str | None,
    include_expired: bool,
    scope: OrgScope | TeamScope,
    team_id: str | None,
) -> GrantFilters:
    if subject_id is not None:  # a user may be named by email, as when granting
        org_id = scope.org.id if isinstance(scope, OrgScope) else scope.team.org_id
        subject_id = management.subject_filter_id(
            scope.ctx.session, org_id, subject_type, subject_id
        )
    return GrantFilters(
        team_id=team_id,
        subject_type=subject_type,
        subject_id=subject_id,
        resource_type=resource_type,
        resource_id=resource_id,
        active_at=None if include_expired else scope.ctx.clock.now(),
    )


def _grant_page(
    scope: OrgScope | TeamScope, org_id: str, filters: GrantFilters, page: PageRequest
) -> PageOut[GrantOut]:
    found = grants_of_org(scope.ctx.session, org_id=org_id, filters=filters, page=page)
    return PageOut(items=[_grant_out(g) for g in found.items], next_cursor=found.next_cursor)


SubjectTypeQuery = Annotated[str | None, Query(max_length=16)]
IdQuery = Annotated[str | None, Query(max_length=40)]
SubjectIdQuery = Annotated[
    str | None, Query(max_length=254, description="A subject's id, or a user's email")
]
TypeQuery = Annotated[str | None, Query(max_length=32)]
ExpiredQuery = Annotated[bool, Query(description="Also list grants that have expired")]


@router.post(
    "/teams/{team}/grants",
    name="grant.created",
    status_code=201,
    response_model=GrantOut,
    tags=["access"],
)
def create_grant(body: GrantCreateIn, scope: TeamGrantManager) -> Response:
    grant = management.create_grant(
        scope.ctx,
        scope.principal,
        scope.team,
        subject=body.subject,
        resource=body.resource,
        role=body.role,
        permissions=body.permissions,
        expires_at=body.expires_at,
        reason=body.reason,
    )
    return scope.ctx.done(_grant_out(grant), status=201)


@router.get("/teams/{team}/grants", response_model=PageOut[GrantOut], tags=["access"])
def list_team_grants(
    scope: TeamGrantReader,
    page: PageDep,
    subject_type: SubjectTypeQuery = None,
    subject_id: SubjectIdQuery = None,
    resource_type: TypeQuery = None,
    resource_id: IdQuery = None,
    include_expired: ExpiredQuery = False,
) -> PageOut[GrantOut]:
    filters = _filters(
        subject_type, subject_id, resource_type, resource_id, include_expired, scope, scope.team.id
    )
    return _grant_page(scope, scope.team.org_id, filters, page)


@router.get("/orgs/{org}/grants", response_model=PageOut[GrantOut], tags=["access"])
def list_org_grants(
    scope: OrgGrantReader,
    page: PageDep,
    team: IdQuery = None,
    subject_type: SubjectTypeQuery = None,
    subject_id: SubjectIdQuery = None,
    resource_type: TypeQuery = None,
    resource_id: IdQuery = None,
    include_expired: ExpiredQuery = False,
) -> PageOut[GrantOut]:
    filters = _filters(
        subject_type, subject_id, resource_type, resource_id, include_expired, scope, team
    )
    return _grant_page(scope, scope.org.id, filters, page)


@router.delete("/grants/{grant_id}", name="grant.revoked", status_code=204, tags=["access"])
def revoke_grant(grant_id: str, ctx: CtxDep, principal: PrincipalDep) -> Response:
    management.revoke_grant(ctx, principal, grant_id)
    return ctx.done(None, status=204)


@router.post(
    "/teams/{team}/grants/bulk",
    name="grant.bulk_changed",
    response_model=BulkGrantOut,
    tags=["access"],
)
def bulk_change_grants(body: BulkGrantIn, scope: TeamGrantManager) -> Response:
    ctx, principal, team = scope.ctx, scope.principal, scope.team
    revoked: list[str] = []
    grants: list[Grant] = []
    if body.action == "grant":
        grants = management.grant_many(
            ctx,
            principal,
            team,
            subjects=body.subjects,
            resource=body.resource,
            role=body.role,
            permissions=body.permissions,
            expires_at=body.expires_at,
            reason=body.reason,
        )
    elif body.action == "revoke":
        revoked = management.revoke_many(
            ctx, principal, team, subjects=body.subjects, resource=body.resource
        )
    else:
        grants = management.change_many(
            ctx,
            principal,
            team,
            subjects=body.subjects,
            resource=body.resource,
            role=body.role,
            permissions=body.permissions,
            expires_at=body.expires_at,
            reason=body.reason,
        )
    out = BulkGrantOut(
        action=body.action,
        changed=len(grants) + len(revoked),
        grants=[_grant_out(g) for g in grants],
        revoked=revoked,
    )
    return ctx.done(out)


# ---- templates ----


@router.post(
    "/orgs/{org}/grant-templates",
    name="grant_template.created",
    status_code=201,
    response_model=TemplateOut,
    tags=["access"],
)
def create_template(body: TemplateCreateIn, scope: OrgGrantManager) -> Response:
    template = management.create_template(
        scope.ctx,
        scope.principal,
        scope.org,
        name=body.name,
        description=body.description,
        role=body.role,
        permissions=body.permissions,
        resource_type=body.resource_type,
        resource_id=body.resource_id,
        duration_seconds=body.duration_seconds,
    )
    return scope.ctx.done(TemplateOut.model_validate(template), status=201)


@router.get("/orgs/{org}/grant-templates", response_model=PageOut[TemplateOut], tags=["access"])
def list_templates(scope: OrgGrantReader, page: PageDep) -> PageOut[TemplateOut]:
    from tenantry.access.repository import templates_of_org

    found = templates_of_org(scope.ctx.session, org_id=scope.org.id, page=page)
    return PageOut(
        items=[TemplateOut.model_validate(t) for t in found.items], next_cursor=found.next_cursor
    )


@router.delete(
    "/orgs/{org}/grant-templates/{template}",
    name="grant_template.deleted",
    status_code=204,
    tags=["access"],
)
def delete_template(template: str, scope: OrgGrantManager) -> Response:
    management.delete_template(scope.ctx, scope.principal, scope.org, template)
    return scope.ctx.done(None, status=204)


@router.post(
    "/teams/{team}/grant-templates/{template}/apply",
    name="grant_template.applied",
    status_code=201,
    response_model=BulkGrantOut,
    tags=["access"],
)
def apply_template(template: str, body: TemplateApplyIn, scope: TeamGrantManager) -> Response:
    grants = management.apply_template(
        scope.ctx,
        scope.principal,
        scope.team,
        template,
        subjects=body.subjects,
        resource_id=body.resource_id,
        reason=body.reason,
    )
    out = BulkGrantOut(
        action="grant",
        changed=len(grants),
        grants=[_grant_out(g) for g in grants],
        revoked=[],
    )
    return scope.ctx.done(out, status=201)


# ---- questions ----


def _subject_out(subject: Subject) -> SubjectOut:
    return SubjectOut(type=subject.type, id=subject.id)


def _resource_out(resource: Resource) -> ResourceOut:
    return ResourceOut(type=resource.type, id=resource.id, team_id=resource.team_id)


def _question(body: CheckIn, scope: OrgScope) -> questions.Question:
    return questions.question(
        scope.ctx,
        scope.principal,
        scope.org,
        subject=body.subject,
        permission=body.permission,
        resource=body.resource,
    )


@router.post(
    "/orgs/{org}/access/check", name="access.checked", response_model=CheckOut, tags=["access"]
)
@reads_only
def check_access(body: CheckIn, scope: OrgMember) -> Response:
    """May the subject (default: the caller) do `permission` on `resource` (default: the org)?"""
    asked = _question(body, scope)
    decision = questions.check(scope.ctx, asked)
    out = CheckOut(
        allowed=decision.allowed,
        via=decision.via,
        subject=_subject_out(asked.subject),
        permission=asked.permission.value,
        resource=_resource_out(asked.resource),
    )
    return scope.ctx.done(out)


@router.post(
    "/orgs/{org}/access/explain",
    name="access.explained",
    response_model=ExplainOut,
    tags=["access"],
)
@reads_only
def explain_access(body: CheckIn, scope: OrgMember) -> Response:
    """As check; for a denial, what is missing and which role or grant would give it."""
    asked = _question(body, scope)
    found = questions.explain(scope.ctx, asked)
    out = ExplainOut(
        allowed=found.allowed,
        via=found.via,
        subject=_subject_out(asked.subject),
        permission=asked.permission.value,
        resource=_resource_out(asked.resource),
        missing=found.missing,
        reason=found.reason,
        detail=found.detail,
        remedies=[
            RemedyOut(kind=r.kind, id=r.id, name=r.name, detail=r.detail) for r in found.remedies
        ],
    )
    return scope.ctx.done(out)


PermissionQuery = Annotated[str, Query(min_length=1, max_length=64)]


@router.get("/orgs/{org}/access/who-can", response_model=PageOut[WhoCanOut], tags=["access"])
def who_can(
    scope: OrgGrantReader,
    page: PageDep,
    permission: PermissionQuery,
    # Typed as `ResourceIn`'s fields, so an empty or blank one is a 422 naming the parameter.
    resource_type: Annotated[ResourceType, Query()] = "org",
    resource_id: Annotated[Identifier | None, Query()] = None,
    team_id: Annotated[Identifier | None, Query()] = None,
) -> PageOut[WhoCanOut]:
    """Who may do `permission` on the resource (default: the org), by subject type and id."""
    resource = ResourceIn(type=resource_type, id=resource_id, team_id=team_id)
    found = questions.who_can(
        scope.ctx,
        scope.principal,
        scope.org,
        permission=permission,
        resource=resource,
        page=page,
    )
    return PageOut(
        items=[WhoCanOut(subject=_subject_out(s), via=d.via) for s, d in found.items],
        next_cursor=found.next_cursor,
    )


@router.get("/orgs/{org}/access/what-can", response_model=PageOut[WhatCanOut], tags=["access"])
def what_can(
    scope: OrgMember,
    page: PageDep,
    permission: PermissionQuery,
    resource_type: Annotated[str, Query(min_length=1, max_length=32)] = "team",
    subject_type: Annotated[str | None, Query(pattern="^(user|team|api_key)$")] = None,
    subject_id: Annotated[SubjectRef | None, Query()] = None,
) -> PageOut[WhatCanOut]:
    """The resources of a type on which the subject (default: the caller) may do `permission`."""
    from tenantry.access.schemas import SubjectIn

    subject = (
        SubjectIn.model_validate({"type": subject_type, "id": subject_id})
        if subject_type is not None and subject_id is not None
        else None
    )
    found = questions.what_can(
        scope.ctx,
        scope.principal,
        scope.org,
        subject=subject,
        permission=permission,
        resource_type=resource_type,
        page=page,
    )
    return PageOut(
        items=[WhatCanOut(resource=_resource_out(r), via=d.via) for r, d in found.items],
        next_cursor=found.next_cursor,
    )
