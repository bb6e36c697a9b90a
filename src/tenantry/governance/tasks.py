"""Background work of governance: purging recorded LLM calls of a data classification level once
its `retention_period_days` have passed (`governance.classification.purge_due`).

One org per transaction, each purge audited; a second worker at the same time deletes nothing
the first did not (a deleted call is gone for both), so passes may overlap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from tenantry.governance import classification, repository
from tenantry.kit.db import Database

log = logging.getLogger("tenantry.worker")


@dataclass
class RetentionReport:
    orgs: int = 0
    calls_purged: int = 0
    failed_orgs: list[str] = field(default_factory=list)


def purge_classified_calls(database: Database, *, now: datetime) -> RetentionReport:
    report = RetentionReport()
    with database.session(write=False) as session:
        org_ids = repository.unscoped_orgs_with_config(session)
    for org_id in org_ids:
        try:
            with database.session(write=True) as session:
                purged = classification.purge_due(session, org_id=org_id, now=now)
                session.commit()
            report.orgs += 1
            report.calls_purged += sum(purged.values())
        except Exception:
            log.exception("purging the classified LLM calls of %s failed", org_id)
            report.failed_orgs.append(org_id)
    return report
