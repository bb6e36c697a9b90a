"""Writes of the register of data-subject requests (read by compliance reports)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from tenantry.kit.ids import new_id
from tenantry.privacy.models import DataSubjectRequest, RequestKind


def add_request(
    session: Session,
    *,
    org_id: str,
    kind: RequestKind,
    subject_id: str,
    requested_by: str | None,
    at: datetime,
) -> DataSubjectRequest:
    row = DataSubjectRequest(
        id=new_id("dsr"),
        org_id=org_id,
        kind=kind.value,
        subject_id=subject_id,
        requested_by=requested_by,
        at=at,
    )
    session.add(row)
    return row
