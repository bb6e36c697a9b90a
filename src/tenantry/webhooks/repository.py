"""Every query of outbound webhooks, each scoped to an org, except the worker's claim of due
deliveries, which is across tenants by design (named `unscoped_`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from tenantry.kit.pagination import Page, PageRequest, paginate
from tenantry.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint


def endpoints_of(session: Session, *, org_id: str) -> list[WebhookEndpoint]:
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.org_id == org_id)
            .order_by(WebhookEndpoint.id)
        )
    )


def enabled_endpoints(session: Session, *, org_id: str) -> list[WebhookEndpoint]:
    return list(
        session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.org_id == org_id, WebhookEndpoint.enabled.is_(True)
            )
        )
    )


def endpoint(
    session: Session, *, org_id: str, endpoint_id: str, lock: bool = False
) -> WebhookEndpoint | None:
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.org_id == org_id, WebhookEndpoint.id == endpoint_id
    )
    if lock:
        query = query.with_for_update()
    return session.scalars(query).first()


def delivery(
    session: Session, *, org_id: str, endpoint_id: str, delivery_id: str
) -> WebhookDelivery | None:
    return session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.org_id == org_id,
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.id == delivery_id,
        )
    ).first()


def deliveries(
    session: Session,
    *,
    org_id: str,
    endpoint_id: str,
    page: PageRequest,
    status: str | None = None,
) -> Page[WebhookDelivery]:
    query = select(WebhookDelivery).where(
        WebhookDelivery.org_id == org_id, WebhookDelivery.endpoint_id == endpoint_id
    )
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return paginate(session, query, WebhookDelivery.id, page)


def add_deliveries(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(WebhookDelivery), list(rows))


@dataclass(frozen=True)
class Claimed:
    id: str
    org_id: str
    endpoint_id: str
    message_id: str
    body: str
    attempts: int


def unscoped_claim_due(
    session: Session, *, now: datetime, until: datetime, limit: int
) -> list[Claimed]:
    """Up to `limit` pending deliveries whose attempt is due, over every org (the worker serves
    them all), each claimed until `until` so no other worker takes it meanwhile. PostgreSQL
    skips rows another worker holds; SQLite's writers take turns."""
    d = WebhookDelivery
    query = (
        select(d.id, d.org_id, d.endpoint_id, d.message_id, d.body, d.attempts)
        .join(WebhookEndpoint, WebhookEndpoint.id == d.endpoint_id)
        .where(
            d.status == DeliveryStatus.PENDING,
            d.next_attempt_at <= now,
            WebhookEndpoint.enabled.is_(True),
        )
        .order_by(d.next_attempt_at, d.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=d, skip_locked=True)
    rows = [Claimed(*row) for row in session.execute(query)]
    if rows:
        session.execute(
            update(d).where(d.id.in_([row.id for row in rows])).values(next_attempt_at=until),
            execution_options={"synchronize_session": False},
        )
    return rows


def record_attempts(session: Session, attempts: Sequence[dict[str, Any]]) -> None:
    """Write each attempt's outcome on its delivery, in one statement executed for all; a
    delivery already moved on by another worker (its attempt count changed) is left alone."""
    if not attempts:
        return
    d = cast(Table, WebhookDelivery.__table__)
    statement = (
        update(d)
        .where(
            d.c.id == bindparam("b_id"),
            d.c.attempts == bindparam("b_attempts"),
            d.c.status == DeliveryStatus.PENDING,
        )
        .values(
            {
                name: bindparam(name)
                for name in (
                    "status",
                    "attempts",
                    "next_attempt_at",
                    "last_attempt_at",
                    "last_status_code",
                    "last_response",
                    "last_error",
                    "last_duration_ms",
                    "delivered_at",
                )
            }
        )
    )
    session.execute(statement, list(attempts), execution_options={"synchronize_session": False})


def unscoped_endpoints(session: Session, endpoint_ids: Sequence[str]) -> dict[str, WebhookEndpoint]:
    """The endpoints of claimed deliveries (each delivery names its org's own endpoint)."""
    if not endpoint_ids:
        return {}
    found = session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.id.in_(list(set(endpoint_ids))))
    )
    return {row.id: row for row in found}
