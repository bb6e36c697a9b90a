"""Background work of the audit trail: retention purges and periodic checkpoints.

Each chain is handled in a transaction of its own, committed before the next: one chain's failure
leaves the others done, and no transaction holds more than one chain's head. The head's row lock
(taken first by `purge_before` and `checkpoint_if_moved`) serializes the work with appends and with
other workers, so any number of workers may run these tasks at once: the second to reach a chain
finds its old events gone and its head already signed, and does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.audit.retention import ACCOUNT_RETENTION_DAYS, org_retention_days
from tenantry.kit.db import Database
from tenantry.kit.ids import has_prefix

log = logging.getLogger("tenantry.worker")

# Each org's plan and settings by id: what its chain's retention depends on. Given by the worker
# (tenancy owns the orgs; the trail sits below it, so it does not read them itself).
OrgTerms = Callable[[Session, list[str]], dict[str, tuple[str, Mapping[str, Any]]]]


@dataclass
class RetentionReport:
    chains: int = 0
    purged_events: int = 0
    # Chains that lost events this run; each got a signed `purge` checkpoint.
    purged_chains: list[str] = field(default_factory=list)
    failed_chains: list[str] = field(default_factory=list)


@dataclass
class CheckpointReport:
    chains: int = 0
    checkpointed_chains: list[str] = field(default_factory=list)
    failed_chains: list[str] = field(default_factory=list)


def retention_days(session: Session, chain_ids: list[str], org_terms: OrgTerms) -> dict[str, int]:
    """Days each chain keeps its events: an org's chain by its settings or plan; every other
    chain (a person's, `system`, `anonymous`, a deleted org's last event) a year."""
    org_ids = [chain_id for chain_id in chain_ids if has_prefix(chain_id, "org")]
    terms = org_terms(session, org_ids)
    days: dict[str, int] = {}
    for chain_id in chain_ids:
        found = terms.get(chain_id)
        days[chain_id] = org_retention_days(*found) if found is not None else ACCOUNT_RETENTION_DAYS
    return days


def purge_expired(
    database: Database, notary: audit.Notary, *, now: datetime, org_terms: OrgTerms
) -> RetentionReport:
    """Delete every chain's events older than its retention, through the purge path (a permit
    the append-only trigger accepts) and with a signed checkpoint anchoring what remains."""
    with database.session(write=False) as session:
        chain_ids = audit.chain_ids(session)
        days = retention_days(session, chain_ids, org_terms)
        cutoffs = {chain_id: now - timedelta(days=days[chain_id]) for chain_id in chain_ids}
        # Read without locks, to take no chain's lock in vain; confirmed under the lock.
        due = [
            c for c in chain_ids if audit.has_events_before(session, chain_id=c, cutoff=cutoffs[c])
        ]
    report = RetentionReport(chains=len(chain_ids))
    for chain_id in due:
        cutoff = cutoffs[chain_id]
        try:
            with database.session(write=True) as session:
                purged = audit.purge_before(
                    session, notary, chain_id=chain_id, cutoff=cutoff, now=now
                )
                session.commit()
        except Exception:
            log.exception("audit retention failed for chain %s", chain_id)
            report.failed_chains.append(chain_id)
            continue
        if purged:
            report.purged_events += purged
            report.purged_chains.append(chain_id)
    return report


def checkpoint_moved(
    database: Database, notary: audit.Notary, *, now: datetime
) -> CheckpointReport:
    """Sign the head of every chain that gained events since its last checkpoint."""
    with database.session(write=False) as session:
        chain_ids = audit.chain_ids(session)
        moved = audit.chains_ahead_of_checkpoints(session)
    report = CheckpointReport(chains=len(chain_ids))
    for chain_id in moved:
        try:
            with database.session(write=True) as session:
                made = audit.checkpoint_if_moved(session, notary, chain_id=chain_id, now=now)
                session.commit()
        except Exception:
            log.exception("audit checkpoint failed for chain %s", chain_id)
            report.failed_chains.append(chain_id)
            continue
        if made is not None:
            report.checkpointed_chains.append(chain_id)
    return report
