"""Background work of throttling: sweeping expired run leases.

An acquire already ignores (and deletes) its org's expired leases, so the sweep is not what
frees a slot; it keeps the table small for orgs that stopped acquiring. Each org is swept in a
transaction of its own under the same gate row an acquire locks, so sweeps and acquires (and
several workers) never count or delete a lease twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from tenantry.kit.db import Database
from tenantry.throttling import repository, service

log = logging.getLogger("tenantry.worker")
ORGS_PER_PASS = 1000


@dataclass
class LeaseSweepReport:
    orgs: int = 0
    expired_leases: int = 0
    failed_orgs: list[str] = field(default_factory=list)


def purge_expired_leases(database: Database, *, now: datetime) -> LeaseSweepReport:
    report = LeaseSweepReport()
    with database.session(write=False) as session:
        org_ids = repository.unscoped_orgs_with_expired_leases(
            session, now=now, limit=ORGS_PER_PASS
        )
    for org_id in org_ids:
        try:
            with database.session(write=True) as session:
                report.expired_leases += service.purge_expired_leases(
                    session, org_id=org_id, now=now
                )
                session.commit()
            report.orgs += 1
        except Exception:
            log.exception("sweeping the expired leases of %s failed", org_id)
            report.failed_orgs.append(org_id)
    return report
