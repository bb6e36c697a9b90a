"""Cursor pagination over id-ordered queries: stable order, opaque cursors, a capped `limit`."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from tenantry.kit.errors import BadRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    def after_id(self) -> str | None:
        if not self.cursor:
            return None
        try:
            return base64.urlsafe_b64decode(self.cursor.encode() + b"==").decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest("The cursor is not valid", code="invalid_cursor") from exc


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def paginate(
    session: Session, query: Select[Any], id_column: InstrumentedAttribute[str], page: PageRequest
) -> Page[Any]:
    """Rows ordered by id ascending (ids are time-sortable), `limit` at a time, after the cursor."""
    after = page.after_id()
    if after is not None:
        query = query.where(id_column > after)
    rows = list(session.scalars(query.order_by(id_column).limit(page.limit + 1)))
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    next_cursor = encode_cursor(getattr(rows[-1], id_column.key)) if more and rows else None
    return Page(items=rows, next_cursor=next_cursor)


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


async def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PageRequest:
    # Async although it does nothing to wait for: FastAPI runs a sync dependency in a worker
    # thread, and the hop there and back costs more than building the value.
    return PageRequest(limit=limit, cursor=cursor)


PageDep = Annotated[PageRequest, Depends(page_request)]
