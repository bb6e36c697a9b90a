"""Background work of enterprise sign-in: forgetting ended trips to identity providers and the
IDs of SAML assertions past their validity (a replay of one is refused by its time by then)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from tenantry.kit.db import Database
from tenantry.sso import repository

# An attempt is kept a while past its end, so a late answer reads as "ended", not "unknown".
KEEP_ENDED: Final = timedelta(hours=1)


def forget_ended(database: Database, *, now: datetime) -> int:
    with database.session(write=True) as session:
        removed = repository.purge_attempts(session, before=now - KEEP_ENDED)
        session.commit()
    return removed
