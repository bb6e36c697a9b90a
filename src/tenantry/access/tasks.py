"""Background work of access control: one `grant.expired` audit event per grant that expired.

An expired grant stops giving access at its instant by itself (decisions compare `expires_at`
with the clock); this task only writes the record. Each grant is claimed (`expiry_recorded_at`)
in the transaction that appends its event, so two workers at once record it once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from tenantry.access import repository
from tenantry.audit import service as audit
from tenantry.kit.db import Database

log = logging.getLogger("tenantry.access")

BATCH = 200
EXPIRED_ACTION = "grant.expired"


@dataclass
class ExpiryReport:
    recorded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def record_expired_grants(db: Database, *, now: datetime, limit: int = 10_000) -> ExpiryReport:
    """Append one `grant.expired` event (actor: system) for each grant expired by `now`."""
    report = ExpiryReport()
    seen = 0
    while seen < limit:
        with db.session(write=True) as session:
            due = repository.unscoped_expired_unrecorded(session, now=now, limit=BATCH)
            pending = [(g.org_id, g.team_id, g.id, g.describe()) for g in due]
        if not pending:
            break
        seen += len(pending)
        for org_id, team_id, grant_id, summary in pending:
            try:
                if _record_one(
                    db, org_id=org_id, team_id=team_id, grant_id=grant_id, summary=summary, now=now
                ):
                    report.recorded.append(grant_id)
            except Exception:
                log.exception("could not record the expiry of grant %s", grant_id)
                report.failed.append(grant_id)
        if len(pending) < BATCH or report.failed:
            break
    return report


def _record_one(
    db: Database,
    *,
    org_id: str,
    team_id: str,
    grant_id: str,
    summary: dict[str, object],
    now: datetime,
) -> bool:
    with db.session(write=True) as session:
        if not repository.claim_expiry(session, org_id=org_id, grant_id=grant_id, now=now):
            session.rollback()
            return False  # another worker recorded it
        audit.append(
            session,
            now=now,
            org_id=org_id,
            team_id=team_id,
            actor_type="system",
            actor_id=None,
            action=EXPIRED_ACTION,
            result="success",
            subject_id=None,
            personal=audit.Personal(),
            target_type="grant",
            target_id=grant_id,
            summary={"change": "expired", **summary},
        )
        session.commit()
    return True
