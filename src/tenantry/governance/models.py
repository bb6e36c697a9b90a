"""Tables of governance. Every tenant-owned table leads with `org_id`.

A policy is one row kept current plus one row per version (the snapshot each change made), so
the audit trail holds the diff and the versions can be read back. Approval requests and
violations are written by admission, in its transaction.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.kit.db import Base, JSONType, UTCDateTime
from tenantry.kit.stamps import track
from tenantry.metering.models import Quantity


def _org_fk() -> ForeignKey:
    return ForeignKey("organizations.id", ondelete="CASCADE")


class PolicyType(StrEnum):
    COST_CONTROL = "cost_control"
    MODEL_ACCESS = "model_access"
    DATA_HANDLING = "data_handling"
    USAGE = "usage"
    CUSTOM = "custom"


class PolicyStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    DISABLED = "disabled"


class Policy(Base):
    """A policy of an org (team_id "") or of a team and the teams under it."""

    __tablename__ = "governance_policies"
    __table_args__ = (Index("ix_governance_policies_org_id_team_id", "org_id", "team_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(_org_fk())
    team_id: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    type: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16))
    rules: Mapped[dict[str, Any]] = mapped_column(JSONType)
    exceptions: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    version: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# Policies decide admissions: a change bumps the org's version stamp, which drops every
# process's compiled policies of the org.
track(Policy)


class PolicyVersion(Base):
    """What a policy was at one version, as that change left it."""

    __tablename__ = "governance_policy_versions"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    policy_id: Mapped[str] = mapped_column(
        ForeignKey("governance_policies.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONType)
    changed_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GovernanceConfig(Base):
    """An org's (team_id "") or a team's governance settings: the time zone conditions read the
    time of day in, its data classification levels (`settings["data_classification"]`, checked
    by `governance.schemas.DataClassificationIn`), and seed 001's other sections kept as sent."""

    __tablename__ = "governance_configs"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# The time zone and the classification levels decide admissions.
track(GovernanceConfig, deciding=frozenset({"timezone", "settings"}))


class ModelAccessScope(StrEnum):
    ORG = "org"
    TEAM = "team"
    API_KEY = "api_key"


class ModelAccess(Base):
    """Seed 003's `ai_configuration` of an org (subject_id ""), a team (and the teams under it)
    or an API key: the models and providers allowed or denied, and the rate limits."""

    __tablename__ = "governance_model_access"

    org_id: Mapped[str] = mapped_column(_org_fk(), primary_key=True)
    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # {pattern: true (allow) | false (deny)}, as sent.
    models: Mapped[dict[str, bool]] = mapped_column(JSONType, default=dict)
    providers: Mapped[dict[str, bool]] = mapped_column(JSONType, default=dict)
    requests_per_minute: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tokens_per_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    concurrent_requests: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Kept as sent; nothing in admission reads them.
    safety_settings: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    updated_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# Model access decides admissions: a change drops every process's compiled rules of the org.
track(ModelAccess, deciding=frozenset({
    "models", "providers", "requests_per_minute", "tokens_per_day", "concurrent_requests",
}))  # fmt: skip


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    USED = "used"  # the approved admission was made: an approval is used once


class ApprovalRequest(Base):
    """An admission a policy sent for approval, with who may decide it."""

    __tablename__ = "governance_approvals"
    __table_args__ = (Index("ix_governance_approvals_org_id_status", "org_id", "status"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(_org_fk())
    team_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    api_key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    policy_ids: Mapped[list[str]] = mapped_column(JSONType)
    fingerprint: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict[str, Any]] = mapped_column(JSONType)  # what was asked, as seen
    estimated_cost: Mapped[Decimal | None] = mapped_column(Quantity(), nullable=True)
    approvers: Mapped[dict[str, Any]] = mapped_column(JSONType)  # users, roles
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ViolationKind(StrEnum):
    DENIED = "deny"
    APPROVAL = "require_approval"
    LOGGED = "log"


class Violation(Base):
    """A policy that matched an admission and denied it, sent it for approval, or logged it."""

    __tablename__ = "governance_violations"
    __table_args__ = (Index("ix_governance_violations_org_id_at", "org_id", "at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(_org_fk())
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    policy_id: Mapped[str] = mapped_column(String(40))
    policy_version: Mapped[int] = mapped_column(BigInteger)
    team_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    api_key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    kind: Mapped[str] = mapped_column(String(24))
    action: Mapped[str] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    values: Mapped[dict[str, Any]] = mapped_column(JSONType)
    approval_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
