"""The questions anyone may put to the engine: check, explain, who-can, what-can.

A member may always ask about themselves (an API key about itself); asking about someone else
needs `grant:read` where the resource is (the org, or the resource's team).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenantry.access import repository
from tenantry.access.schemas import ResourceIn, SubjectIn
from tenantry.authz.catalog import Permission, is_known_permission
from tenantry.authz.engine import (
    EVERY,
    ORG_RESOURCE,
    TEAM_RESOURCE,
    Decision,
    Explanation,
    KeyData,
    Resource,
    Snapshot,
    Subject,
)
from tenantry.authz.principal import Principal
from tenantry.authz.resources import has_valid_shape, is_known_type, resolver_of
from tenantry.authz.service import authorize, key_of, policy
from tenantry.identity.models import ApiKey
from tenantry.kit.context import Ctx
from tenantry.kit.errors import NotFound, Unprocessable
from tenantry.kit.pagination import Page, PageRequest, encode_cursor
from tenantry.tenancy.models import Organization

T = TypeVar("T")


@dataclass(frozen=True)
class Question:
    snapshot: Snapshot
    subject: Subject
    key: KeyData | None
    permission: Permission
    resource: Resource


def permission_of(value: str) -> Permission:
    if not is_known_permission(value):
        raise Unprocessable(f"Unknown permission {value!r}", code="unknown_permission")
    return Permission(value)


def _caller(principal: Principal) -> tuple[Subject, KeyData | None]:
    key = key_of(principal)
    if key is not None:
        return Subject("api_key", key.id), key
    return Subject("user", principal.user_id), None


def _key_data(key: ApiKey) -> KeyData:
    """An API key as the engine sees it (permissions this version does not know are dropped)."""
    permissions = (
        frozenset(Permission(p) for p in key.permissions if is_known_permission(p))
        if key.permissions is not None
        else None
    )
    return KeyData(key.id, key.created_by, key.team_id, permissions)


def subject_of(
    ctx: Ctx, org: Organization, snapshot: Snapshot, subject: SubjectIn | None, caller: Principal
) -> tuple[Subject, KeyData | None]:
    """The subject asked about (the caller by default); 404 for one that is not of this org."""
    if subject is None:
        return _caller(caller)
    missing = NotFound("No such subject in this organization", code="subject_not_found")
    if subject.type == "user":
        user_id = subject.id
        if "@" in subject.id:
            user = repository.member_by_ref(ctx.session, org_id=org.id, ref=subject.id)
            user_id = user.id if user is not None else ""
        if user_id not in snapshot.org_roles:
            raise missing
        return Subject("user", user_id), None
    if subject.type == "team":
        if subject.id not in snapshot.teams or not snapshot.sees_team(caller.user_id, subject.id):
            raise missing
        return Subject("team", subject.id), None
    key = repository.live_api_key(
        ctx.session, org_id=org.id, key_id=subject.id, now=ctx.clock.now()
    )
    if key is None:
        raise missing
    return Subject("api_key", key.id), _key_data(key)


def resource_of(
    ctx: Ctx, org: Organization, snapshot: Snapshot, resource: ResourceIn | None
) -> Resource:
    """The resource asked about (the org by default); 404 for one that is not of this org."""
    if resource is None or resource.type == ORG_RESOURCE:
        if resource is not None and resource.id not in (None, org.id, org.slug):
            raise NotFound("Organization not found")
        return Resource(ORG_RESOURCE, org.id)
    if resource.type == TEAM_RESOURCE:
        if resource.id is None:
            raise Unprocessable("resource.id is required for a team", code="resource_required")
        if resource.id not in snapshot.teams:
            raise NotFound("Team not found")
        return Resource(TEAM_RESOURCE, resource.id)
    if not is_known_type(resource.type):
        raise Unprocessable(
            f"Unknown resource type {resource.type!r}", code="unknown_resource_type"
        )
    if resource.id is None:
        raise Unprocessable("resource.id is required for this type", code="resource_required")
    if resource.id != EVERY and not has_valid_shape(resource.type, resource.id):
        raise Unprocessable(
            f"{resource.id!r} is not the id of a {resource.type}", code="invalid_resource_id"
        )
    if resource.team_id is not None and resource.team_id not in snapshot.teams:
        raise NotFound("Team not found")
    resolver = resolver_of(resource.type)
    owner = (
        resolver(ctx.session, org.id, resource.id)
        if resolver is not None and resource.id != EVERY
        else snapshot.resource_team.get((resource.type, resource.id))
    )
    if resolver is not None and resource.id != EVERY and owner is None:
        raise NotFound(f"{resource.type.capitalize()} not found")
    if owner is not None and resource.team_id not in (None, owner):
        raise Unprocessable(
            "The resource belongs to another team than the one named", code="resource_team_mismatch"
        )
    team_id = owner or resource.team_id
    if team_id is None:
        raise Unprocessable(
            f"Name the team that owns this {resource.type} (resource.team_id)",
            code="resource_team_unknown",
        )
    return Resource(resource.type, resource.id, team_id)


def _may_ask(ctx: Ctx, principal: Principal, org: Organization, question: Question) -> None:
    """Anyone may ask about themselves; about others, with grant:read where the resource is."""
    caller, _ = _caller(principal)
    if question.subject == caller:
        return
    team_id = question.snapshot.team_of(question.resource)
    if question.resource.type == ORG_RESOURCE or team_id is None:
        authorize(ctx.session, principal, Permission.GRANT_READ, org_id=org.id)
    else:
        authorize(ctx.session, principal, Permission.GRANT_READ, org_id=org.id, team_id=team_id)


def question(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    *,
    subject: SubjectIn | None,
    permission: str,
    resource: ResourceIn | None,
) -> Question:
    snapshot = policy(ctx.session, org.id)
    asked = Question(
        snapshot,
        *subject_of(ctx, org, snapshot, subject, principal),
        permission_of(permission),
        resource_of(ctx, org, snapshot, resource),
    )
    _may_ask(ctx, principal, org, asked)
    return asked


def check(ctx: Ctx, asked: Question) -> Decision:
    return asked.snapshot.check(
        asked.subject, asked.permission, asked.resource, ctx.clock.now(), asked.key
    )


def explain(ctx: Ctx, asked: Question) -> Explanation:
    return asked.snapshot.explain(
        asked.subject, asked.permission, asked.resource, ctx.clock.now(), asked.key
    )


# ---- lists ----


def page_of(items: list[T], key: Callable[[T], str], page: PageRequest) -> Page[T]:
    """A page of an in-memory list sorted by `key`, with the same cursors as database pages."""
    after = page.after_id()
    if after is not None:
        items = [item for item in items if key(item) > after]
    chunk = items[: page.limit]
    more = len(items) > page.limit
    return Page(items=chunk, next_cursor=encode_cursor(key(chunk[-1])) if more and chunk else None)


def _subject_key(entry: tuple[Subject, Decision]) -> str:
    return f"{entry[0].type}:{entry[0].id}"


def who_can(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    *,
    permission: str,
    resource: ResourceIn | None,
    page: PageRequest,
) -> Page[tuple[Subject, Decision]]:
    """Every user, team and API key (one holding grants of its own) that may do it, by type
    and id. API keys without grants act for their creators, who are listed."""
    snapshot = policy(ctx.session, org.id)
    wanted = permission_of(permission)
    target = resource_of(ctx, org, snapshot, resource)
    team_id = snapshot.team_of(target)
    if target.type != ORG_RESOURCE and team_id is not None:
        authorize(ctx.session, principal, Permission.GRANT_READ, org_id=org.id, team_id=team_id)
    now = ctx.clock.now()
    subjects = snapshot.subjects()
    key_ids = [s.id for s in subjects if s.type == "api_key"]
    keys = {
        k.id: _key_data(k)
        for k in repository.live_api_keys(ctx.session, org_id=org.id, key_ids=key_ids, now=now)
    }
    found: list[tuple[Subject, Decision]] = []
    for subject in subjects:
        key = keys.get(subject.id) if subject.type == "api_key" else None
        if subject.type == "api_key" and key is None:
            continue  # revoked or expired: it can do nothing
        decision = snapshot.check(subject, wanted, target, now, key)
        if decision.allowed:
            found.append((subject, decision))
    return page_of(found, _subject_key, page)


def _resource_key(entry: tuple[Resource, Decision]) -> str:
    resource = entry[0]
    return f"{resource.team_id or ''}/{resource.type}/{resource.id}"


def what_can(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    *,
    subject: SubjectIn | None,
    permission: str,
    resource_type: str,
    page: PageRequest,
) -> Page[tuple[Resource, Decision]]:
    """The resources of a type on which the subject may do it: teams; for a team-owned type,
    `*` in each team where it may act on every resource of the type, and each resource a
    grant names."""
    snapshot = policy(ctx.session, org.id)
    asked_subject, key = subject_of(ctx, org, snapshot, subject, principal)
    wanted = permission_of(permission)
    caller, _ = _caller(principal)
    if asked_subject != caller:
        authorize(ctx.session, principal, Permission.GRANT_READ, org_id=org.id)
    if resource_type == ORG_RESOURCE:
        candidates = [Resource(ORG_RESOURCE, org.id)]
    elif resource_type == TEAM_RESOURCE or is_known_type(resource_type):
        candidates = snapshot.resources_of_type(resource_type)
    else:
        raise Unprocessable(
            f"Unknown resource type {resource_type!r}", code="unknown_resource_type"
        )
    now = ctx.clock.now()
    found: list[tuple[Resource, Decision]] = []
    for candidate in candidates:
        decision = snapshot.check(asked_subject, wanted, candidate, now, key)
        if decision.allowed:
            found.append((candidate, decision))
    found.sort(key=_resource_key)
    return page_of(found, _resource_key, page)
