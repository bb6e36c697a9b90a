"""The register of data-subject requests an org answered: one row per org and request, written
in the request's transaction. It outlives the person (an erased account's id stays as the
pseudonymous subject), so an org can show which requests it answered and when."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.kit.db import Base, UTCDateTime


class RequestKind(StrEnum):
    EXPORT = "export"
    ERASURE = "erasure"


class DataSubjectRequest(Base):
    __tablename__ = "privacy_requests"
    __table_args__ = (Index("ix_privacy_requests_org_id_at", "org_id", "at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    # No foreign key: an erasure deletes the account the row names.
    subject_id: Mapped[str] = mapped_column(String(40))
    requested_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
