"""Tables of the operator domain: who the deployment's operators are."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.kit.db import Base, UTCDateTime


class Operator(Base):
    """A user the deployment made an operator (`tenantry operator add`)."""

    __tablename__ = "operators"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Who made them one: "cli" (the deployment's shell) or an operator's user id.
    added_by: Mapped[str] = mapped_column(String(40), default="cli")
