"""Tables of the plans domain: an org's custom plan (overrides of its catalog plan)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.kit.db import Base, JSONType, UTCDateTime
from tenantry.kit.stamps import track


class PlanOverride(Base):
    """An org's custom plan: its catalog plan with these quotas, rate limits and rates."""

    __tablename__ = "plan_overrides"

    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    quotas: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    rate_limits: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    overage_rates: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def as_overrides(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "quotas": self.quotas or {},
            "rate_limits": self.rate_limits or {},
            "overage_rates": self.overage_rates or {},
        }


# An org's custom plan decides its admissions (see `kit.stamps`).
track(PlanOverride)
