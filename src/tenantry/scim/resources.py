"""The SCIM face of the rows: users and groups as `scim2-models` resources, the service's
description (ServiceProviderConfig, ResourceTypes, Schemas) and how it reads what directories
send (`POLICY`). Pure: no database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from scim2_models import (
    URN,
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    EnterpriseUser,
    ETag,
    Filter,
    Group,
    GroupMember,
    GroupMembership,
    Meta,
    Pagination,
    Patch,
    ResourceType,
    ScimPolicy,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
    User,
)

UserResource = User[EnterpriseUser]
GroupResource = Group

# At most this many resources in one page of a list (`count` above it is lowered to it).
MAX_COUNT = 500
DEFAULT_COUNT = 100

# What directories send beyond the strict reading of the RFCs: Entra ID's `remove` with the
# members to drop in `value`, its `replace` on a filter that matches nothing (meaning "add
# it"), and attributes of schemas this service does not hold (ignored, not refused).
POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.ignore,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)

CONFIG = ServiceProviderConfig(
    patch=Patch(supported=True),
    bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
    filter=Filter(supported=True, max_results=MAX_COUNT),
    change_password=ChangePassword(supported=False),
    sort=Sort(supported=True),
    etag=ETag(supported=True),
    pagination=Pagination(cursor=False, index=True, default_pagination_method="index"),
    authentication_schemes=[
        AuthenticationScheme(
            type=AuthenticationScheme.Type.oauthbearertoken,
            name="Bearer token",
            description="A SCIM token an admin of the organization created in Tenantry",
            primary=True,
        )
    ],
)

PROVIDER = ScimProvider(
    models=[User, EnterpriseUser, Group],
    resource_types=[
        ResourceType.from_resource(UserResource),
        ResourceType.from_resource(GroupResource),
    ],
    config=CONFIG,
    policy=POLICY,
)

USER_SCHEMA = str(User.__schema__)
GROUP_SCHEMA = str(Group.__schema__)
ENTERPRISE_SCHEMA = str(EnterpriseUser.__schema__)


def version_tag(version: int) -> str:
    return f'W/"{version}"'


def _meta(
    kind: str, *, base_url: str, id_: str, created: datetime, modified: datetime, version: int
) -> Meta:
    return Meta(
        resource_type=kind,
        created=created,
        last_modified=modified,
        location=f"{base_url}/{kind}s/{id_}",
        version=version_tag(version),
    )


def user_resource(
    *,
    id_: str,
    attributes: dict[str, Any],
    groups: list[tuple[str, str]],
    base_url: str,
    created: datetime,
    modified: datetime,
    version: int,
) -> Any:
    """A stored user as the resource it is; `groups` are (id, displayName) of its groups."""
    user = UserResource.model_validate(attributes, scim_policy=POLICY)
    user.id = id_
    user.groups = [
        GroupMembership(
            value=group_id, display=name, ref=f"{base_url}/Groups/{group_id}", type="direct"
        )
        for group_id, name in groups
    ] or None
    user.meta = _meta(
        "User", base_url=base_url, id_=id_, created=created, modified=modified, version=version
    )
    return user


def group_resource(
    *,
    id_: str,
    display_name: str,
    external_id: str | None,
    members: list[tuple[str, str]],
    base_url: str,
    created: datetime,
    modified: datetime,
    version: int,
) -> Any:
    """A stored group; `members` are (id, display) of its users."""
    group = GroupResource(
        id=id_,
        display_name=display_name,
        external_id=external_id,
        members=[
            GroupMember(value=member_id, display=display or None, type="User").model_copy(
                update={"ref": f"{base_url}/Users/{member_id}"}
            )
            for member_id, display in members
        ]
        or None,
    )
    group.meta = _meta(
        "Group", base_url=base_url, id_=id_, created=created, modified=modified, version=version
    )
    return group


def stored_attributes(user: Any) -> dict[str, Any]:
    """What is kept of a user resource: everything the directory wrote, but not what the
    service owns (id, meta) or derives (groups)."""
    dumped = cast(dict[str, Any], user.model_dump(mode="json", by_alias=True, exclude_none=True))
    for owned in ("id", "meta", "groups"):
        dumped.pop(owned, None)
    return dumped


def schema_urns() -> list[URN]:
    return [URN(USER_SCHEMA), URN(ENTERPRISE_SCHEMA), URN(GROUP_SCHEMA)]
