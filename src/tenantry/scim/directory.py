"""The SCIM resources of an org's directory: Users and Groups, read with filters, sorting and
pages, written by POST, PUT, PATCH and DELETE, each write checked against `If-Match` and
recorded as one audit event whose actor is the SCIM token.

Filters, sorting, PATCH and validation are `scim2-models`' own (its evaluation of a filter on a
resource is the reference); the common lookups directories make (`userName eq`, `externalId
eq`, `displayName eq`) narrow the rows by index first. Errors are `SCIMException`s, which the
HTTP layer answers as SCIM error bodies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from scim2_models import (
    Context,
    Error,
    InvalidFilterException,
    InvalidValueException,
    NotFoundException,
    PatchOp,
    PreconditionFailedException,
    SCIMException,
    SearchRequest,
    UniquenessException,
)
from scim2_models.path import CompareOperator, Comparison

from tenantry.audit import service as audit
from tenantry.kit.context import Ctx
from tenantry.kit.ids import new_id
from tenantry.scim import placement, repository
from tenantry.scim.models import ScimGroup, ScimUser
from tenantry.scim.resources import (
    DEFAULT_COUNT,
    MAX_COUNT,
    POLICY,
    GroupResource,
    UserResource,
    group_resource,
    stored_attributes,
    user_resource,
    version_tag,
)
from tenantry.scim.tokens import Directory, mapping_of

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


@dataclass(frozen=True)
class Written:
    """A resource after a write, as the response carries it."""

    body: dict[str, Any]
    version: str
    location: str


def _key(value: str) -> str:
    """userName and displayName compared as SCIM compares strings that are not caseExact."""
    return value.strip().casefold()


def _invalid(exc: ValidationError) -> SCIMException:
    first = Error.from_validation_errors(exc)[0]
    return SCIMException.from_error(first)


def _parse(model: Any, body: Mapping[str, Any], scim_ctx: Context) -> Any:
    try:
        return model.model_validate(body, scim_ctx=scim_ctx, scim_policy=POLICY)
    except ValidationError as exc:
        raise _invalid(exc) from None


def check_if_match(if_match: str | None, version: int) -> None:
    """An `If-Match` naming another version than the stored one: 412 (RFC 7644 §3.14)."""
    if if_match is None or if_match.strip() == "*":
        return
    tags = {tag.strip() for tag in if_match.split(",")}
    current = version_tag(version)
    if current not in tags and current.removeprefix("W/") not in tags:
        raise PreconditionFailedException(detail="The resource has changed since that version")


# ---- queries ----


def search_request(model: Any, params: Mapping[str, str]) -> Any:
    raw = {
        "filter": params.get("filter"),
        "sortBy": params.get("sortBy"),
        "sortOrder": params.get("sortOrder"),
        "startIndex": params.get("startIndex"),
        "count": params.get("count"),
        "attributes": params.get("attributes"),
        "excludedAttributes": params.get("excludedAttributes"),
    }
    try:
        return SearchRequest[model].model_validate(
            {k: v for k, v in raw.items() if v is not None}, scim_policy=POLICY
        )
    except ValidationError as exc:
        error = Error.from_validation_errors(exc)[0]
        loc = exc.errors()[0].get("loc", ())
        if "filter" in loc and error.scim_type != "invalidFilter":
            raise InvalidFilterException(detail=error.detail) from None
        raise SCIMException.from_error(error) from None


def _indexed_lookup(search: Any, names: dict[str, str]) -> tuple[str, str] | None:
    """(attribute, value) of a filter that is exactly `<indexed attribute> eq "<string>"`."""
    if search.filter is None:
        return None
    node = search.filter.ast
    if not isinstance(node, Comparison) or node.op != CompareOperator.eq:
        return None
    path = node.attr_path
    attr = names.get(str(path.attr).casefold())
    if attr is None or path.sub_attr or path.uri or not isinstance(node.value, str):
        return None
    return attr, node.value


def _page(search: Any, resources: list[Any]) -> dict[str, Any]:
    if search.filter is not None:
        resources = [r for r in resources if search.filter.match(r)]
    resources = search.sort(resources)
    start = max(search.start_index or 1, 1)
    count = DEFAULT_COUNT if search.count is None else min(search.count, MAX_COUNT)
    page = resources[start - 1 : start - 1 + count]
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": len(resources),
        "startIndex": start,
        "itemsPerPage": len(page),
        "Resources": [
            r.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=search) for r in page
        ],
    }


def dump(resource: Any, params: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = resource.model_dump(
        scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=params
    )
    return out


# ---- users ----


def _user_resources(ctx: Ctx, directory: Directory, rows: list[ScimUser], base: str) -> list[Any]:
    groups = repository.groups_of_members(
        ctx.session, org_id=directory.org_id, member_ids=[r.id for r in rows]
    )
    return [
        user_resource(
            id_=row.id,
            attributes=dict(row.attributes),
            groups=[(g.id, g.display_name) for g in groups[row.id]],
            base_url=base,
            created=row.created_at,
            modified=row.updated_at,
            version=row.version,
        )
        for row in rows
    ]


def list_users(
    ctx: Ctx, directory: Directory, params: Mapping[str, str], base: str
) -> dict[str, Any]:
    search = search_request(UserResource, params)
    lookup = _indexed_lookup(search, {"username": "userName", "externalid": "externalId"})
    if lookup is None:
        rows = repository.users_of(ctx.session, org_id=directory.org_id)
    else:
        attr, value = lookup
        rows = repository.users_where(
            ctx.session,
            org_id=directory.org_id,
            user_name_key=_key(value) if attr == "userName" else None,
            external_id=value if attr == "externalId" else None,
        )
    return _page(search, _user_resources(ctx, directory, rows, base))


def search_all(
    ctx: Ctx, directory: Directory, params: Mapping[str, str], base: str
) -> dict[str, Any]:
    """A search at the service's root: users and groups alike (RFC 7644 §3.4.3)."""
    search = search_request(UserResource | GroupResource, params)
    users = _user_resources(
        ctx, directory, repository.users_of(ctx.session, org_id=directory.org_id), base
    )
    groups = _group_resources(
        ctx, directory, repository.groups_of(ctx.session, org_id=directory.org_id), base
    )
    return _page(search, users + groups)


def _user_row(ctx: Ctx, directory: Directory, scim_id: str) -> ScimUser:
    row = repository.user_in_org(ctx.session, org_id=directory.org_id, scim_id=scim_id)
    if row is None:
        raise NotFoundException(detail=f"User {scim_id} not found")
    return row


def get_user(
    ctx: Ctx, directory: Directory, scim_id: str, params: Mapping[str, str], base: str
) -> Written:
    row = _user_row(ctx, directory, scim_id)
    search = search_request(UserResource, params)
    resource = _user_resources(ctx, directory, [row], base)[0]
    return Written(dump(resource, search), version_tag(row.version), resource.meta.location)


def _written_user(ctx: Ctx, directory: Directory, row: ScimUser, base: str) -> Written:
    resource = _user_resources(ctx, directory, [row], base)[0]
    return Written(dump(resource), version_tag(row.version), resource.meta.location)


def _store_user(ctx: Ctx, directory: Directory, row: ScimUser, resource: Any) -> None:
    attributes = stored_attributes(resource)
    user_name = str(resource.user_name or "").strip()
    if not user_name:
        raise InvalidValueException(detail="userName is required")
    key = _key(user_name)
    if repository.user_name_taken(ctx.session, org_id=directory.org_id, key=key, besides=row.id):
        raise UniquenessException(detail=f"userName {user_name!r} is taken in this organization")
    row.user_name, row.user_name_key = user_name, key
    row.external_id = resource.external_id
    row.active = resource.active is not False
    row.attributes = attributes


def create_user(ctx: Ctx, directory: Directory, body: Mapping[str, Any], base: str) -> Written:
    resource = _parse(UserResource, body, Context.RESOURCE_CREATION_REQUEST)
    now = ctx.clock.now()
    row = ScimUser(
        id=new_id("scu"),
        org_id=directory.org_id,
        user_id=None,
        version=1,
        created_at=now,
        updated_at=now,
    )
    _store_user(ctx, directory, row, resource)
    ctx.session.add(row)
    ctx.session.flush()
    summary = placement.place(ctx, org_id=directory.org_id, row=row)
    _audit(ctx, directory, "scim.user_created", "scim_user", row.id, summary)
    return _written_user(ctx, directory, row, base)


def _changed_user(
    ctx: Ctx, directory: Directory, row: ScimUser, resource: Any, base: str
) -> Written:
    was_active = row.active
    _store_user(ctx, directory, row, resource)
    row.version += 1
    row.updated_at = ctx.clock.now()
    ctx.session.flush()
    summary = placement.place(ctx, org_id=directory.org_id, row=row)
    if was_active != row.active:
        action = "scim.user_reactivated" if row.active else "scim.user_deactivated"
    else:
        action = "scim.user_updated"
    _audit(ctx, directory, action, "scim_user", row.id, summary)
    return _written_user(ctx, directory, row, base)


def replace_user(
    ctx: Ctx,
    directory: Directory,
    scim_id: str,
    body: Mapping[str, Any],
    base: str,
    *,
    if_match: str | None,
) -> Written:
    row = _user_row(ctx, directory, scim_id)
    check_if_match(if_match, row.version)
    resource = _parse(UserResource, body, Context.RESOURCE_REPLACEMENT_REQUEST)
    return _changed_user(ctx, directory, row, resource, base)


def patch_user(
    ctx: Ctx,
    directory: Directory,
    scim_id: str,
    body: Mapping[str, Any],
    base: str,
    *,
    if_match: str | None,
) -> Written:
    row = _user_row(ctx, directory, scim_id)
    check_if_match(if_match, row.version)
    resource = _user_resources(ctx, directory, [row], base)[0]
    patch = _parse(PatchOp[UserResource], body, Context.RESOURCE_PATCH_REQUEST)
    if not _apply(patch, resource):
        return _written_user(ctx, directory, row, base)
    return _changed_user(ctx, directory, row, resource, base)


def _apply(patch: Any, resource: Any) -> bool:
    try:
        return bool(patch.patch(resource, POLICY))
    except ValidationError as exc:
        raise _invalid(exc) from None


def delete_user(ctx: Ctx, directory: Directory, scim_id: str, *, if_match: str | None) -> None:
    row = _user_row(ctx, directory, scim_id)
    check_if_match(if_match, row.version)
    summary = placement.deprovision(ctx, org_id=directory.org_id, row=row)
    ctx.session.delete(row)
    ctx.session.flush()
    _audit(ctx, directory, "scim.user_deleted", "scim_user", row.id, summary)


# ---- groups ----


def _group_resources(ctx: Ctx, directory: Directory, rows: list[ScimGroup], base: str) -> list[Any]:
    members = repository.members_of(
        ctx.session, org_id=directory.org_id, group_ids=[g.id for g in rows]
    )
    users = repository.users_by_ids(
        ctx.session, org_id=directory.org_id, ids={m for ids in members.values() for m in ids}
    )
    return [
        group_resource(
            id_=row.id,
            display_name=row.display_name,
            external_id=row.external_id,
            members=[
                (m, display or _display(users[m]))
                for m, display in members[row.id].items()
                if m in users
            ],
            base_url=base,
            created=row.created_at,
            modified=row.updated_at,
            version=row.version,
        )
        for row in rows
    ]


def _display(row: ScimUser) -> str:
    return str(row.attributes.get("displayName") or row.user_name)


def list_groups(
    ctx: Ctx, directory: Directory, params: Mapping[str, str], base: str
) -> dict[str, Any]:
    search = search_request(GroupResource, params)
    lookup = _indexed_lookup(search, {"displayname": "displayName"})
    if lookup is None:
        rows = repository.groups_of(ctx.session, org_id=directory.org_id)
    else:
        rows = repository.groups_named(ctx.session, org_id=directory.org_id, key=_key(lookup[1]))
    return _page(search, _group_resources(ctx, directory, rows, base))


def _group_row(ctx: Ctx, directory: Directory, group_id: str) -> ScimGroup:
    row = repository.group_in_org(ctx.session, org_id=directory.org_id, group_id=group_id)
    if row is None:
        raise NotFoundException(detail=f"Group {group_id} not found")
    return row


def get_group(
    ctx: Ctx, directory: Directory, group_id: str, params: Mapping[str, str], base: str
) -> Written:
    row = _group_row(ctx, directory, group_id)
    search = search_request(GroupResource, params)
    resource = _group_resources(ctx, directory, [row], base)[0]
    return Written(dump(resource, search), version_tag(row.version), resource.meta.location)


def _written_group(ctx: Ctx, directory: Directory, row: ScimGroup, base: str) -> Written:
    resource = _group_resources(ctx, directory, [row], base)[0]
    return Written(dump(resource), version_tag(row.version), resource.meta.location)


def _member_ids(ctx: Ctx, directory: Directory, resource: Any) -> dict[str, str | None]:
    wanted: dict[str, str | None] = {}
    for member in resource.members or []:
        if member.type is not None and str(member.type).casefold() == "group":
            raise InvalidValueException(detail="Groups of groups are not supported")
        if not member.value:
            raise InvalidValueException(detail="A member names a user by its id in `value`")
        wanted[str(member.value)] = member.display
    found = repository.users_by_ids(ctx.session, org_id=directory.org_id, ids=wanted)
    unknown = sorted(set(wanted) - set(found))
    if unknown:
        raise InvalidValueException(detail=f"No user {', '.join(unknown)} in this directory")
    return wanted


def _store_group(ctx: Ctx, directory: Directory, row: ScimGroup, resource: Any) -> set[str]:
    """Writes the group and its members; returns the members."""
    name = str(resource.display_name or "").strip()
    if not name:
        raise InvalidValueException(detail="displayName is required")
    key = _key(name)
    if repository.group_name_taken(ctx.session, org_id=directory.org_id, key=key, besides=row.id):
        raise UniquenessException(detail=f"A group named {name!r} exists in this organization")
    members = _member_ids(ctx, directory, resource)
    row.display_name, row.display_name_key = name, key
    row.external_id = resource.external_id
    ctx.session.add(row)
    ctx.session.flush()
    repository.set_members(ctx.session, org_id=directory.org_id, group_id=row.id, members=members)
    return set(members)


def _replace_members(ctx: Ctx, directory: Directory, people: Iterable[str]) -> dict[str, Any]:
    """Re-place the people whose groups changed; what each one's placement changed."""
    rows = repository.users_by_ids(ctx.session, org_id=directory.org_id, ids=people)
    rules = mapping_of(ctx.session, org_id=directory.org_id)
    out: dict[str, Any] = {}
    for scim_id in sorted(rows):
        row = rows[scim_id]
        if row.active:  # a deactivated person stays deprovisioned, whatever their groups
            out[scim_id] = placement.place(ctx, org_id=directory.org_id, row=row, rules=rules)
    return out


def create_group(ctx: Ctx, directory: Directory, body: Mapping[str, Any], base: str) -> Written:
    resource = _parse(GroupResource, body, Context.RESOURCE_CREATION_REQUEST)
    now = ctx.clock.now()
    row = ScimGroup(
        id=new_id("scg"), org_id=directory.org_id, version=1, created_at=now, updated_at=now
    )
    after = _store_group(ctx, directory, row, resource)
    summary = {"members": len(after), "people": _replace_members(ctx, directory, after)}
    _audit(ctx, directory, "scim.group_created", "scim_group", row.id, summary)
    return _written_group(ctx, directory, row, base)


def _changed_group(
    ctx: Ctx, directory: Directory, row: ScimGroup, resource: Any, base: str
) -> Written:
    old_members = set(
        repository.members_of(ctx.session, org_id=directory.org_id, group_ids=[row.id])[row.id]
    )
    renamed = _key(str(resource.display_name or "")) != row.display_name_key
    after = _store_group(ctx, directory, row, resource)
    row.version += 1
    row.updated_at = ctx.clock.now()
    # A renamed group may match other rules: everyone in it is placed again.
    touched = (old_members | after) if renamed else (old_members ^ after)
    summary = {
        "added": len(after - old_members),
        "removed": len(old_members - after),
        "renamed": renamed,
        "people": _replace_members(ctx, directory, touched),
    }
    _audit(ctx, directory, "scim.group_updated", "scim_group", row.id, summary)
    return _written_group(ctx, directory, row, base)


def replace_group(
    ctx: Ctx,
    directory: Directory,
    group_id: str,
    body: Mapping[str, Any],
    base: str,
    *,
    if_match: str | None,
) -> Written:
    row = _group_row(ctx, directory, group_id)
    check_if_match(if_match, row.version)
    resource = _parse(GroupResource, body, Context.RESOURCE_REPLACEMENT_REQUEST)
    return _changed_group(ctx, directory, row, resource, base)


def patch_group(
    ctx: Ctx,
    directory: Directory,
    group_id: str,
    body: Mapping[str, Any],
    base: str,
    *,
    if_match: str | None,
) -> Written:
    row = _group_row(ctx, directory, group_id)
    check_if_match(if_match, row.version)
    resource = _group_resources(ctx, directory, [row], base)[0]
    patch = _parse(PatchOp[GroupResource], body, Context.RESOURCE_PATCH_REQUEST)
    if not _apply(patch, resource):
        return _written_group(ctx, directory, row, base)
    return _changed_group(ctx, directory, row, resource, base)


def delete_group(ctx: Ctx, directory: Directory, group_id: str, *, if_match: str | None) -> None:
    row = _group_row(ctx, directory, group_id)
    check_if_match(if_match, row.version)
    members = repository.members_of(ctx.session, org_id=directory.org_id, group_ids=[row.id])[
        row.id
    ]
    ctx.session.delete(row)
    ctx.session.flush()
    summary = {"members": len(members), "people": _replace_members(ctx, directory, members)}
    _audit(ctx, directory, "scim.group_deleted", "scim_group", row.id, summary)


def _audit(
    ctx: Ctx, directory: Directory, action: str, kind: str, target: str, summary: dict[str, Any]
) -> None:
    audit.record(
        ctx,
        None,
        org_id=directory.org_id,
        target_type=kind,
        target_id=target,
        summary=summary,
        action=action,
        actor=directory.actor,
    )
