"""The worker's part: deliver what is due from the outbox.

A pass claims a batch of due deliveries (a short transaction; PostgreSQL's `SKIP LOCKED` lets
any number of workers share the outbox), sends them in parallel outside any transaction, then
records every outcome in one transaction: the delivery log, the next attempt after an
exponential backoff, and each endpoint's run of failures. An endpoint that failed
`webhooks_disable_after_failures` attempts in a row is disabled, with an audit event and, when
SMTP is configured, an email to the org's owners and admins (sent after the commit).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.config import Settings
from tenantry.kit.clock import Clock
from tenantry.kit.db import Database
from tenantry.kit.mail import Mailer, MailNotSent
from tenantry.tenancy import repository as tenancy_repository
from tenantry.webhooks import repository
from tenantry.webhooks.delivery import Job, Outcome, attempt
from tenantry.webhooks.models import DeliveryStatus, WebhookEndpoint
from tenantry.webhooks.secrets import SecretBox

log = logging.getLogger("tenantry.webhooks")

# A claim outlives the slowest attempt by this much before another worker may take it over.
CLAIM_MARGIN = timedelta(seconds=60)
# Batches per pass at most, so the worker's other tasks get their turn.
BATCHES_PER_PASS = 20


@dataclass
class DeliveryReport:
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0  # attempts that failed (a retry may follow)
    gave_up: int = 0  # deliveries whose last attempt failed
    disabled_endpoints: list[str] = field(default_factory=list)
    notices_sent: int = 0


@dataclass(frozen=True)
class Notice:
    org_id: str
    endpoint_id: str
    url: str
    failures: int
    recipients: list[str]


def retry_delay(settings: Settings, attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: base x 4^(attempts-1), capped."""
    seconds = settings.webhooks_retry_base_seconds * 4 ** (attempts - 1)
    return timedelta(seconds=min(seconds, settings.webhooks_retry_max_seconds))


def retry_schedule(settings: Settings) -> list[timedelta]:
    return [retry_delay(settings, n) for n in range(1, settings.webhooks_max_attempts)]


def _claim(database: Database, settings: Settings, *, now: datetime) -> list[Job]:
    until = now + timedelta(seconds=settings.webhooks_timeout_seconds) + CLAIM_MARGIN
    box = SecretBox(settings.server_secret())
    jobs: list[Job] = []
    with database.session(write=True) as session:
        rows = repository.unscoped_claim_due(
            session, now=now, until=until, limit=settings.webhooks_batch_size
        )
        endpoints = repository.unscoped_endpoints(session, [row.endpoint_id for row in rows])
        # What sending needs, read before the commit lets go of the rows.
        urls = {e.id: e.url for e in endpoints.values()}
        secrets = {e.id: box.open(e.secret_sealed, bound_to=e.id) for e in endpoints.values()}
        session.commit()
    for row in rows:
        jobs.append(
            Job(
                delivery_id=row.id,
                org_id=row.org_id,
                endpoint_id=row.endpoint_id,
                url=urls[row.endpoint_id],
                secret=secrets[row.endpoint_id],
                message_id=row.message_id,
                body=row.body,
                attempts=row.attempts,
            )
        )
    return jobs


def _send(
    client: httpx.Client, jobs: list[Job], settings: Settings, clock: Clock
) -> list[tuple[Job, Outcome]]:
    def one(job: Job) -> tuple[Job, Outcome]:
        return job, attempt(
            client,
            job,
            at=clock.now(),
            allow_private=settings.webhooks_allow_private_urls,
            timeout=settings.webhooks_timeout_seconds,
        )

    if len(jobs) == 1:
        return [one(jobs[0])]
    workers = min(settings.webhooks_concurrency, len(jobs))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook") as pool:
        return list(pool.map(one, jobs))


def _logged(job: Job, outcome: Outcome, settings: Settings) -> dict[str, Any]:
    """The delivery's log after this attempt, and when (if ever) it is tried again."""
    attempts = job.attempts + 1
    status, next_at = DeliveryStatus.PENDING, None
    if outcome.ok:
        status = DeliveryStatus.SUCCEEDED
    elif attempts >= settings.webhooks_max_attempts:
        status = DeliveryStatus.FAILED
    else:
        next_at = outcome.at + retry_delay(settings, attempts)
    return {
        "b_id": job.delivery_id,
        "b_attempts": job.attempts,
        "status": status,
        "attempts": attempts,
        "next_attempt_at": next_at,
        "last_attempt_at": outcome.at,
        "last_status_code": outcome.status_code,
        "last_response": outcome.response,
        "last_error": outcome.error,
        "last_duration_ms": outcome.duration_ms,
        "delivered_at": outcome.at if outcome.ok else None,
    }


def _disable(session: Session, endpoint: WebhookEndpoint, *, now: datetime) -> None:
    endpoint.enabled = False
    endpoint.disabled_reason, endpoint.disabled_at, endpoint.updated_at = "failing", now, now
    audit.append(
        session,
        now=now,
        org_id=endpoint.org_id,
        actor_type="system",
        actor_id=None,
        action="webhook.disabled",
        result="success",
        subject_id=None,
        personal=audit.Personal(),
        target_type="webhook",
        target_id=endpoint.id,
        summary={"reason": "failing", "consecutive_failures": endpoint.consecutive_failures},
    )


def _record(
    database: Database,
    settings: Settings,
    results: list[tuple[Job, Outcome]],
    report: DeliveryReport,
    *,
    now: datetime,
) -> list[Notice]:
    notices: list[Notice] = []
    logged: list[dict[str, Any]] = []
    with database.session(write=True) as session:
        by_endpoint: dict[tuple[str, str], list[tuple[Job, Outcome]]] = {}
        for job, outcome in results:
            by_endpoint.setdefault((job.org_id, job.endpoint_id), []).append((job, outcome))
        # Endpoints locked in id order, so two workers recording at once cannot deadlock.
        for org_id, endpoint_id in sorted(by_endpoint, key=lambda key: key[1]):
            endpoint = repository.endpoint(
                session, org_id=org_id, endpoint_id=endpoint_id, lock=True
            )
            if endpoint is None:  # removed meanwhile, its deliveries with it
                continue
            for job, outcome in sorted(by_endpoint[(org_id, endpoint_id)], key=lambda p: p[1].at):
                logged.append(_logged(job, outcome, settings))
                report.attempted += 1
                if outcome.ok:
                    report.succeeded += 1
                    endpoint.consecutive_failures = 0
                    continue
                report.failed += 1
                report.gave_up += logged[-1]["status"] == DeliveryStatus.FAILED
                endpoint.consecutive_failures += 1
            limit = settings.webhooks_disable_after_failures
            if endpoint.enabled and endpoint.consecutive_failures >= limit:
                _disable(session, endpoint, now=now)
                report.disabled_endpoints.append(endpoint.id)
                recipients = tenancy_repository.admin_emails(session, org_id=org_id)
                notices.append(
                    Notice(
                        org_id, endpoint.id, endpoint.url, endpoint.consecutive_failures, recipients
                    )
                )
        repository.record_attempts(session, logged)
        session.commit()
    return notices


def _notify(mailer: Mailer | None, notices: Iterable[Notice]) -> int:
    """Email each disabled endpoint's org admins; without SMTP the audit event is the notice."""
    if mailer is None:
        return 0
    sent = 0
    for notice in notices:
        text = (
            f"The webhook endpoint {notice.endpoint_id} ({notice.url}) of your organization "
            f"failed {notice.failures} delivery attempts in a row and has been disabled.\n\n"
            "Its pending deliveries wait. Fix the receiver, then enable the endpoint again "
            f"(tenantry webhook enable {notice.org_id} {notice.endpoint_id}, or PATCH it with "
            "enabled: true) "
            "and redeliver what failed.\n"
        )
        for to in notice.recipients:
            try:
                mailer.send(to=to, subject="Webhook endpoint disabled after failures", text=text)
                sent += 1
            except MailNotSent:
                log.warning("could not send the webhook-disabled notice to %s", to)
    return sent


def deliver_due(
    database: Database,
    settings: Settings,
    *,
    clock: Clock,
    client: httpx.Client | None = None,
    mailer: Mailer | None = None,
    batches: int = BATCHES_PER_PASS,
) -> DeliveryReport:
    """Deliver every due delivery (up to `batches` batches), recording each attempt."""
    report = DeliveryReport()
    own_client = client is None
    http = client or httpx.Client(
        limits=httpx.Limits(max_connections=settings.webhooks_concurrency * 2)
    )
    mailer = mailer or Mailer.from_settings(settings)
    try:
        for _ in range(batches):
            jobs = _claim(database, settings, now=clock.now())
            if not jobs:
                break
            results = _send(http, jobs, settings, clock)
            notices = _record(database, settings, results, report, now=clock.now())
            report.notices_sent += _notify(mailer, notices)
    finally:
        if own_client:
            http.close()
    return report
