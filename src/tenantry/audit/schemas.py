"""Bodies of the audit endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tenantry.kit.schemas import Output


class AuditEventOut(Output):
    id: str
    org_id: str | None
    team_id: str | None
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    result: str
    ip: str | None
    user_agent: str | None
    request_id: str | None
    occurred_at: datetime
    summary: dict[str, Any]
