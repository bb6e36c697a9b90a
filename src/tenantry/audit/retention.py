"""How long the audit trail keeps events: per plan, or an organization's own figure.

An org may set `settings.audit_retention_days` (1 to 3650) to keep its trail for a time of its
choosing; without it the plan decides. Account-level chains (a person's sign-ins and profile
changes, the `system` and `anonymous` chains) have no plan and keep a year. The worker
(`audit.tasks`) applies these figures; this module only says what they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

from tenantry.kit.errors import Unprocessable
from tenantry.plans.catalog import audit_retention_days

RETENTION_SETTING = "audit_retention_days"
MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 3650
ACCOUNT_RETENTION_DAYS = 365


def _is_valid_days(value: Any) -> TypeGuard[int]:
    # bool is an int in Python; `true` days is a mistake, not one day.
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and MIN_RETENTION_DAYS <= value <= MAX_RETENTION_DAYS
    )


def check_retention_setting(settings: Mapping[str, Any] | None) -> None:
    """Refuse an org's settings whose retention figure is not whole days in range (null or
    absent means: the plan's figure)."""
    if not settings or settings.get(RETENTION_SETTING) is None:
        return
    if not _is_valid_days(settings[RETENTION_SETTING]):
        raise Unprocessable(
            f"settings.{RETENTION_SETTING} must be a whole number of days from "
            f"{MIN_RETENTION_DAYS} to {MAX_RETENTION_DAYS}",
            code="invalid_retention",
        )


def org_retention_days(plan: str, settings: Mapping[str, Any] | None) -> int:
    """Days an org's events are kept: its own valid figure, else its plan's."""
    custom = (settings or {}).get(RETENTION_SETTING)
    if _is_valid_days(custom):
        return custom
    return audit_retention_days(plan)
