"""Tables of compliance reports: the reports as generated (their JSON kept whole, so a report
reads back exactly as it was signed) and each org's monthly schedule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.kit.db import Base, JSONType, UTCDateTime


def _org_fk() -> ForeignKey:
    return ForeignKey("organizations.id", ondelete="CASCADE")


class ComplianceReport(Base):
    __tablename__ = "compliance_reports"
    __table_args__ = (
        Index("ix_compliance_reports_org_id_generated_at", "org_id", "generated_at"),
        Index("uq_compliance_reports_org_id_schedule_key", "org_id", "schedule_key", unique=True),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(_org_fk())
    framework: Mapped[str] = mapped_column(String(16))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    generated_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    trigger: Mapped[str] = mapped_column(String(16))  # manual | schedule
    # Set only on scheduled reports ("<framework>:<YYYY-MM>"): unique per org, so two workers
    # at once make a month's scheduled report once. Manual reports leave it NULL.
    schedule_key: Mapped[str | None] = mapped_column(String(32), nullable=True)
    digest: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)


class ComplianceSchedule(Base):
    """Which frameworks' reports an org gets each month, and who is emailed."""

    __tablename__ = "compliance_schedules"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    frameworks: Mapped[list[str]] = mapped_column(JSONType)
    recipients: Mapped[list[str]] = mapped_column(JSONType)
    updated_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
