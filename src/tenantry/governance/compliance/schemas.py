"""Request and response bodies of compliance reports."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from tenantry.kit.schemas import Email, Input

FrameworkName = Literal["soc2", "gdpr", "hipaa"]


class ReportIn(Input):
    framework: FrameworkName
    period: str | None = Field(
        default=None, max_length=7, description="A month, YYYY-MM (UTC); or give from and to"
    )
    since: date | None = Field(default=None, alias="from", description="First day (UTC)")
    until: date | None = Field(default=None, alias="to", description="Last day, included")


class ScheduleIn(Input):
    frameworks: list[FrameworkName] = Field(
        max_length=3, description="Monthly reports of these frameworks; [] stops the schedule"
    )
    recipients: list[Email] = Field(
        default_factory=list, max_length=20, description="Emailed when a report is ready"
    )


class ReportListed(BaseModel):
    id: str
    framework: str
    period: str
    period_start: datetime
    period_end: datetime
    generated_at: datetime
    generated_by: str | None
    trigger: str
    digest: str
    summary: dict[str, Any]


class ReportOut(BaseModel):
    """The report as generated; `digest` is the SHA-256 of the canonical JSON of every other
    field but `signature` and `signature_algorithm`."""

    id: str
    org: dict[str, Any]
    framework: str
    framework_title: str
    period: dict[str, Any]
    generated_at: str
    generated_by: str | None
    trigger: str
    proves: list[str]
    does_not_prove: list[str]
    summary: dict[str, Any]
    sections: list[dict[str, Any]]
    digest: str
    signature: str
    signature_algorithm: str


class ScheduleOut(BaseModel):
    frameworks: list[str]
    recipients: list[str]
    next_run: datetime | None
    updated_at: datetime | None
