"""Background work of metering: expiring reservations that were never settled.

Admission already expires an org's overdue reservations lazily before it reserves, so a
forgotten reservation never blocks an org that keeps asking; the sweep frees the holds of orgs
that stopped asking (so quota listings show them released). Each reservation is expired in a
transaction of its own through the same conditional status change settle uses, so a sweep, a
settle and another worker racing for one reservation release its holds exactly once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from tenantry.kit.db import Database
from tenantry.metering import admission, repository

log = logging.getLogger("tenantry.worker")
RESERVATIONS_PER_PASS = 1000


@dataclass
class ReservationSweepReport:
    expired_reservations: int = 0
    failed_reservations: list[str] = field(default_factory=list)


def expire_reservations(database: Database, *, now: datetime) -> ReservationSweepReport:
    report = ReservationSweepReport()
    with database.session(write=False) as session:
        overdue = repository.unscoped_overdue_reservations(
            session, now=now, limit=RESERVATIONS_PER_PASS
        )
    for org_id, reservation_id, holds in overdue:
        try:
            with database.session(write=True) as session:
                if admission.expire(session, org_id, reservation_id, holds, now=now):
                    report.expired_reservations += 1
                session.commit()
        except Exception:
            log.exception("expiring reservation %s failed", reservation_id)
            report.failed_reservations.append(reservation_id)
    return report
