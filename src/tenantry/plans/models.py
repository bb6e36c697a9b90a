"""Tables of the plans domain: an org's custom plan (overrides of its catalog plan)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String
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


class CatalogPlanRow(Base):
    """A plan of the catalog as the deployment's operators edited it. The shipped catalog
    (`plans.catalog.PLANS`) is the default of every plan with no row here."""

    __tablename__ = "plan_catalog"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    monthly_price: Mapped[str] = mapped_column(String(32))
    yearly_price: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    # quota key -> {"limit": "10" | null, "enforcement": "hard" | "soft"}
    quotas: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    rate_limits: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    overage_rates: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    audit_retention_days: Mapped[int] = mapped_column(Integer)
    upgrade_to: Mapped[str | None] = mapped_column(String(32), nullable=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CatalogVersion(Base):
    """One row: bumped with every edit of the catalog, so every process rebuilds what it
    derived from the catalog on its next read of it."""

    __tablename__ = "plan_catalog_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
