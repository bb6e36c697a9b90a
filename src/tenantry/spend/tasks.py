"""Background work of spend: detecting anomalies of daily cost (`spend.anomalies`).

Each pass checks yesterday and today so far for every org that spent in the last two days, one
org per transaction. An anomaly is one row per subject and day under a unique key, so two
workers at once (or a pass that runs again) raise each anomaly once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tenantry.kit.db import Database
from tenantry.spend import anomalies, repository

log = logging.getLogger("tenantry.worker")


@dataclass
class AnomalyReport:
    orgs: int = 0
    raised: int = 0
    failed_orgs: list[str] = field(default_factory=list)


def detect_anomalies(database: Database, *, now: datetime) -> AnomalyReport:
    report = AnomalyReport()
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    with database.session(write=False) as session:
        org_ids = repository.unscoped_orgs_with_spend(session, since=yesterday)
    for org_id in org_ids:
        try:
            with database.session(write=True) as session:
                for day in (yesterday, today):
                    found = anomalies.detect(session, org_id=org_id, day=day, now=now)
                    report.raised += len(found)
                session.commit()
            report.orgs += 1
        except Exception:
            log.exception("detecting the spend anomalies of %s failed", org_id)
            report.failed_orgs.append(org_id)
    return report
