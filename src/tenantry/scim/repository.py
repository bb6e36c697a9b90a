"""Every query of SCIM provisioning, scoped by org. Token lookup by hash is the one unscoped
read: presenting the token is how a directory's org becomes known."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tenantry.identity.models import ApiKey
from tenantry.kit.pagination import Page, PageRequest, paginate
from tenantry.scim.models import (
    ScimGroup,
    ScimGroupMember,
    ScimSettings,
    ScimSuspension,
    ScimToken,
    ScimUser,
)

# ---- tokens ----


def unscoped_token_by_hash(session: Session, digest: str) -> ScimToken | None:
    return session.scalars(select(ScimToken).where(ScimToken.secret_hash == digest)).first()


def tokens_of(session: Session, *, org_id: str, page: PageRequest) -> Page[ScimToken]:
    query = select(ScimToken).where(ScimToken.org_id == org_id)
    return paginate(session, query, ScimToken.id, page)


def token_in_org(session: Session, *, org_id: str, token_id: str) -> ScimToken | None:
    found = session.get(ScimToken, token_id)
    return found if found is not None and found.org_id == org_id else None


def touch_token(session: Session, *, token_id: str, now: datetime) -> None:
    session.execute(update(ScimToken).where(ScimToken.id == token_id).values(last_used_at=now))


# ---- settings ----


def settings_of(session: Session, *, org_id: str) -> ScimSettings | None:
    return session.get(ScimSettings, org_id)


# ---- users ----


def users_of(session: Session, *, org_id: str) -> list[ScimUser]:
    query = select(ScimUser).where(ScimUser.org_id == org_id).order_by(ScimUser.created_at)
    return list(session.scalars(query.order_by(ScimUser.id)))


def users_where(
    session: Session, *, org_id: str, user_name_key: str | None, external_id: str | None
) -> list[ScimUser]:
    """The lookups directories make before every creation (`userName eq …`), by index."""
    query = select(ScimUser).where(ScimUser.org_id == org_id)
    if user_name_key is not None:
        query = query.where(ScimUser.user_name_key == user_name_key)
    if external_id is not None:
        query = query.where(ScimUser.external_id == external_id)
    return list(session.scalars(query.order_by(ScimUser.created_at, ScimUser.id)))


def user_in_org(session: Session, *, org_id: str, scim_id: str) -> ScimUser | None:
    found = session.get(ScimUser, scim_id)
    return found if found is not None and found.org_id == org_id else None


def users_by_ids(session: Session, *, org_id: str, ids: Iterable[str]) -> dict[str, ScimUser]:
    wanted = set(ids)
    if not wanted:
        return {}
    query = select(ScimUser).where(ScimUser.org_id == org_id, ScimUser.id.in_(wanted))
    return {u.id: u for u in session.scalars(query)}


def user_name_taken(session: Session, *, org_id: str, key: str, besides: str | None) -> bool:
    query = select(ScimUser.id).where(ScimUser.org_id == org_id, ScimUser.user_name_key == key)
    return any(found != besides for found in session.scalars(query))


def user_of_account(session: Session, *, org_id: str, user_id: str) -> ScimUser | None:
    query = select(ScimUser).where(ScimUser.org_id == org_id, ScimUser.user_id == user_id)
    return session.scalars(query).first()


# ---- groups ----


def groups_of(session: Session, *, org_id: str) -> list[ScimGroup]:
    query = select(ScimGroup).where(ScimGroup.org_id == org_id)
    return list(session.scalars(query.order_by(ScimGroup.created_at, ScimGroup.id)))


def groups_named(session: Session, *, org_id: str, key: str) -> list[ScimGroup]:
    query = select(ScimGroup).where(ScimGroup.org_id == org_id, ScimGroup.display_name_key == key)
    return list(session.scalars(query))


def group_in_org(session: Session, *, org_id: str, group_id: str) -> ScimGroup | None:
    found = session.get(ScimGroup, group_id)
    return found if found is not None and found.org_id == org_id else None


def group_name_taken(session: Session, *, org_id: str, key: str, besides: str | None) -> bool:
    return any(g.id != besides for g in groups_named(session, org_id=org_id, key=key))


def members_of(
    session: Session, *, org_id: str, group_ids: Iterable[str]
) -> dict[str, dict[str, str | None]]:
    """Group id -> its members' SCIM ids (in a stable order) and the display given with each."""
    wanted = set(group_ids)
    out: dict[str, dict[str, str | None]] = {g: {} for g in wanted}
    if not wanted:
        return out
    query = (
        select(ScimGroupMember.group_id, ScimGroupMember.member_id, ScimGroupMember.display)
        .where(ScimGroupMember.org_id == org_id, ScimGroupMember.group_id.in_(wanted))
        .order_by(ScimGroupMember.member_id)
    )
    for group_id, member_id, display in session.execute(query):
        out[group_id][member_id] = display
    return out


def groups_of_members(
    session: Session, *, org_id: str, member_ids: Iterable[str]
) -> dict[str, list[ScimGroup]]:
    """SCIM user id -> the groups they are in."""
    wanted = set(member_ids)
    out: dict[str, list[ScimGroup]] = {m: [] for m in wanted}
    if not wanted:
        return out
    query = (
        select(ScimGroupMember.member_id, ScimGroup)
        .join(ScimGroup, ScimGroup.id == ScimGroupMember.group_id)
        .where(ScimGroupMember.org_id == org_id, ScimGroupMember.member_id.in_(wanted))
        .order_by(ScimGroup.display_name_key)
    )
    for member_id, group in session.execute(query):
        out[member_id].append(group)
    return out


def set_members(
    session: Session, *, org_id: str, group_id: str, members: Mapping[str, str | None]
) -> None:
    session.execute(delete(ScimGroupMember).where(ScimGroupMember.group_id == group_id))
    for member_id in sorted(members):
        session.add(
            ScimGroupMember(
                group_id=group_id, member_id=member_id, org_id=org_id, display=members[member_id]
            )
        )
    session.flush()


# ---- suspensions and their effect on credentials ----


def is_suspended(session: Session, *, org_id: str, user_id: str) -> bool:
    return session.get(ScimSuspension, (org_id, user_id)) is not None


def suspend(session: Session, *, org_id: str, user_id: str, now: datetime) -> None:
    if not is_suspended(session, org_id=org_id, user_id=user_id):
        session.add(ScimSuspension(org_id=org_id, user_id=user_id, created_at=now))
        session.flush()


def lift_suspension(session: Session, *, org_id: str, user_id: str) -> None:
    session.execute(
        delete(ScimSuspension).where(
            ScimSuspension.org_id == org_id, ScimSuspension.user_id == user_id
        )
    )


def revoke_api_keys(session: Session, *, org_id: str, user_id: str, now: datetime) -> int:
    """The person's API keys of this org (never those they hold in other orgs)."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.org_id == org_id, ApiKey.created_by == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)
