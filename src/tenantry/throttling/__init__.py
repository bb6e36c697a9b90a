"""Throttling: rate limits (GCRA, in-process or Redis) and concurrent-run leases.

Importing the package registers its leases as the live count of the `concurrent_runs` quota."""

from datetime import datetime

from sqlalchemy.orm import Session

from tenantry.metering.quotas import register_live_source
from tenantry.throttling import repository


def _live_leases(session: Session, org_id: str, now: datetime) -> int:
    return repository.count_active_leases(session, org_id=org_id, now=now)


register_live_source("concurrent_runs", _live_leases)
