"""The background worker: the periodic work no request does by itself.

Each pass (`run_once`) runs every task once, in order: audit retention purges (per plan, see
`audit.retention`), periodic audit checkpoints for chains that moved, forgetting expired
`Idempotency-Key` records, sweeping expired run leases, expiring unsettled admission
reservations, recording expired grants, forgetting ended SSO sign-in attempts, detecting
anomalies of daily LLM spend, purging recorded LLM calls past their data classification level's
retention period, billing (period invoices, then automatic payments), the last month's
scheduled compliance reports, and delivering
due webhooks (`webhooks.tasks`, last, so the events of this pass go out in it). `run` repeats
passes every `interval` seconds until stopped.

Any number of workers may run against one database: every task works one chain (or one batch)
per transaction under the locks the request path uses, so two passes at once do each thing once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tenantry.access import tasks as access_tasks
from tenantry.audit import tasks as audit_tasks
from tenantry.audit.service import Notary
from tenantry.billing import tasks as billing_tasks
from tenantry.billing.providers import PaymentProvider, provider_from_settings
from tenantry.config import Settings
from tenantry.governance import tasks as governance_tasks
from tenantry.governance.compliance import tasks as compliance_tasks
from tenantry.kit import files, idempotency
from tenantry.kit.clock import Clock, SystemClock
from tenantry.kit.db import Database
from tenantry.kit.mail import Mailer
from tenantry.metering import tasks as metering_tasks
from tenantry.spend import tasks as spend_tasks
from tenantry.sso import tasks as sso_tasks
from tenantry.tenancy import scope as tenancy_scope
from tenantry.throttling import tasks as throttling_tasks
from tenantry.webhooks import tasks as webhook_tasks

log = logging.getLogger("tenantry.worker")


@dataclass(frozen=True)
class WorkerReport:
    started_at: datetime
    retention: audit_tasks.RetentionReport
    checkpoints: audit_tasks.CheckpointReport
    expired_idempotency_records: int
    leases: throttling_tasks.LeaseSweepReport = field(
        default_factory=throttling_tasks.LeaseSweepReport
    )
    reservations: metering_tasks.ReservationSweepReport = field(
        default_factory=metering_tasks.ReservationSweepReport
    )
    expired_grants: access_tasks.ExpiryReport = field(default_factory=access_tasks.ExpiryReport)
    billing: billing_tasks.BillingReport = field(default_factory=billing_tasks.BillingReport)
    sso_attempts_forgotten: int = 0
    anomalies: spend_tasks.AnomalyReport = field(default_factory=spend_tasks.AnomalyReport)
    classified_calls: governance_tasks.RetentionReport = field(
        default_factory=governance_tasks.RetentionReport
    )
    compliance: compliance_tasks.ScheduleReport = field(
        default_factory=compliance_tasks.ScheduleReport
    )
    # A receiver's failures are the delivery log's business, not a failed pass.
    webhooks: webhook_tasks.DeliveryReport = field(default_factory=webhook_tasks.DeliveryReport)

    @property
    def failed(self) -> bool:
        return bool(
            self.retention.failed_chains
            or self.checkpoints.failed_chains
            or self.leases.failed_orgs
            or self.reservations.failed_reservations
            or self.expired_grants.failed
            or self.billing.failed
            or self.anomalies.failed_orgs
            or self.classified_calls.failed_orgs
            or self.compliance.failed
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["started_at"] = self.started_at.isoformat()
        return out


def _forget_expired_idempotency(database: Database, settings: Settings, *, now: datetime) -> int:
    with database.session(write=True) as session:
        removed = idempotency.delete_expired(
            session, now=now, ttl=timedelta(seconds=settings.idempotency_ttl_seconds)
        )
        session.commit()
    return removed


def run_once(
    settings: Settings,
    *,
    clock: Clock | None = None,
    database: Database | None = None,
    payments: PaymentProvider | None = None,
) -> WorkerReport:
    """One pass of every task. Pass `database` to share an engine; otherwise one is opened
    from the settings and closed again."""
    clock = clock or SystemClock()
    db = database or Database(
        settings.resolved_database_url(), pool_size=settings.database_pool_size
    )
    try:
        notary = Notary(settings.server_secret())
        started = clock.now()
        retention = audit_tasks.purge_expired(
            db, notary, now=started, org_terms=tenancy_scope.org_terms
        )
        # After the purges, so a chain's periodic checkpoint signs the head they left.
        checkpoints = audit_tasks.checkpoint_moved(db, notary, now=clock.now())
        expired = _forget_expired_idempotency(db, settings, now=clock.now())
        leases = throttling_tasks.purge_expired_leases(db, now=clock.now())
        reservations = metering_tasks.expire_reservations(db, now=clock.now())
        # One `grant.expired` event per grant that expired (they stopped working on their own).
        expired_grants = access_tasks.record_expired_grants(db, now=clock.now())
        sso_forgotten = sso_tasks.forget_ended(db, now=clock.now())
        spend_anomalies = spend_tasks.detect_anomalies(db, now=clock.now())
        classified_calls = governance_tasks.purge_classified_calls(db, now=clock.now())
        # Period invoices, then automatic payments of what is due.
        billing = billing_tasks.run(
            db, settings, payments or provider_from_settings(settings), now=clock.now()
        )
        # The last month's scheduled compliance reports, before delivery, so their
        # `compliance.report_ready` events go out in this pass.
        compliance = compliance_tasks.run_schedules(
            db, notary, now=clock.now(), mailer=Mailer.from_settings(settings)
        )
        webhooks = webhook_tasks.deliver_due(db, settings, clock=clock)
    finally:
        if database is None:
            db.dispose()
    return WorkerReport(
        started,
        retention,
        checkpoints,
        expired,
        leases=leases,
        reservations=reservations,
        expired_grants=expired_grants,
        billing=billing,
        sso_attempts_forgotten=sso_forgotten,
        anomalies=spend_anomalies,
        classified_calls=classified_calls,
        compliance=compliance,
        webhooks=webhooks,
    )


def _between_passes(
    settings: Settings, db: Database, clock: Clock, stop: threading.Event, interval: float
) -> None:
    """Wait `interval` seconds (less when stopped), delivering due webhooks every
    `webhooks_poll_seconds` meanwhile: an event should reach its receiver within seconds, not at
    the next pass."""
    deadline = time.monotonic() + interval
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or stop.wait(min(settings.webhooks_poll_seconds, remaining)):
            return
        try:
            webhook_tasks.deliver_due(db, settings, clock=clock)
        except Exception:
            log.exception("webhook delivery failed")


def run(
    settings: Settings,
    *,
    interval: float,
    clock: Clock | None = None,
    database: Database | None = None,
    stop: threading.Event | None = None,
    on_report: Callable[[WorkerReport], None] | None = None,
    passes: int | None = None,
) -> int:
    """Run a pass every `interval` seconds until `stop` is set (or `passes` passes are done),
    delivering due webhooks in between; returns the number of passes. A pass that raises is
    logged and the loop goes on: the next pass retries whatever it left undone."""
    stop = stop or threading.Event()
    if database is None:
        files.secure_install(settings.data_dir, settings.resolved_database_url())
    db = database or Database(
        settings.resolved_database_url(), pool_size=settings.database_pool_size
    )
    done = 0
    try:
        while not stop.is_set() and (passes is None or done < passes):
            try:
                report = run_once(settings, clock=clock, database=db)
            except Exception:
                log.exception("worker pass failed")
            else:
                if on_report is not None:
                    on_report(report)
            done += 1
            if passes is not None and done >= passes:
                break
            _between_passes(settings, db, clock or SystemClock(), stop, interval)
    finally:
        if database is None:
            db.dispose()
    return done
