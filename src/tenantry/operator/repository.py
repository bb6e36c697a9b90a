"""Queries of the operator domain. Unscoped by design: operators see every tenant."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from tenantry.identity.models import User
from tenantry.kit.pagination import Page, PageRequest, paginate
from tenantry.operator.models import Operator
from tenantry.tenancy.models import Organization, OrgMembership


def operator(session: Session, user_id: str) -> Operator | None:
    return session.get(Operator, user_id)


def operators(session: Session) -> list[tuple[Operator, User]]:
    rows = session.execute(
        select(Operator, User).join(User, User.id == Operator.user_id).order_by(User.email)
    ).all()
    return [(o, u) for o, u in rows]


def tenants(
    session: Session,
    page: PageRequest,
    *,
    q: str | None = None,
    status: str | None = None,
    plan: str | None = None,
) -> Page[Organization]:
    query = select(Organization)
    if q:
        like = f"%{q.lower()}%"
        query = query.where(
            or_(
                func.lower(Organization.name).like(like),
                Organization.slug.like(like),
                Organization.id == q,
            )
        )
    if status:
        query = query.where(Organization.status == status)
    if plan:
        query = query.where(Organization.plan == plan)
    return paginate(session, query, Organization.id, page)


def member_counts(session: Session, org_ids: list[str]) -> dict[str, int]:
    if not org_ids:
        return {}
    rows = session.execute(
        select(OrgMembership.org_id, func.count())
        .where(OrgMembership.org_id.in_(org_ids))
        .group_by(OrgMembership.org_id)
    ).all()
    return {str(org_id): int(n) for org_id, n in rows}
