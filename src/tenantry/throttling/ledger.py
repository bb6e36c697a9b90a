"""The API's own requests, recorded as `api_calls` usage in batches.

A request that passed the rate limit and the daily quota is appended here (microseconds, no
database work on its path); the batch is written through `metering.service.record_usage_batch`
when it is due: the first request after `api_calls_flush_seconds` (by the service's clock) or
`api_calls_flush_size` calls starts the write beside itself and goes on without waiting, and the
app writes what is left when it shuts down. Starting at a request keeps every write off a
request's own transaction and lock, and makes the moment of a flush follow from the clock, not
from a timer thread (tests that move a FrozenClock see it start at a request, never in between,
and `wait_written` tells when it is done).

A due flush is written in chunks of `FLUSH_CHUNK` calls, each a short transaction that takes
the write turn of SQLite like any writing request (`kit.http.write_gate`), so requests queue
behind one chunk at a time rather than behind the whole buffer, and never meet SQLite's lock in
its busy handler (which sleeps up to 100 ms per retry: the tail of admission latency).

Each call carries its own event id, so writing a batch twice (a retry after a failed commit)
records it once. What can be lost: the calls of the last few seconds when a process is killed
outright (SIGKILL, power loss). That only undercounts usage, in the customer's favour, by
seconds of traffic ($0.01 per 1,000 calls), while the daily quota itself is enforced by the
rate-limit store, which a crash does not touch. Writing every GET through a database
transaction instead would cost far more than it protects.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.exc import IntegrityError

from tenantry.kit.db import Database
from tenantry.metering import service as metering

log = logging.getLogger("tenantry.throttling")
API_CALLS = "api_calls"
FLUSH_CHUNK = 50
ONE = Decimal(1)


@dataclass(frozen=True)
class ApiCall:
    event_id: str
    org_id: str
    at: datetime
    method: str
    route: str
    team_id: str | None = None
    user_id: str | None = None
    api_key_id: str | None = None

    def as_usage(self) -> metering.UsageEvent:
        return metering.UsageEvent(
            event_id=self.event_id,
            meter=API_CALLS,
            quantity=ONE,
            timestamp=self.at,
            team_id=self.team_id,
            user_id=self.user_id,
            api_key_id=self.api_key_id,
            dimensions={"method": self.method, "route": self.route},
        )


class ApiCallLedger:
    """Buffered `api_calls` usage of one process."""

    def __init__(
        self,
        database: Database,
        *,
        flush_after: timedelta,
        flush_size: int,
        max_buffered: int = 200_000,
    ) -> None:
        self._database = database
        self._flush_after = flush_after
        self._flush_size = flush_size
        self._max_buffered = max_buffered
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._calls: list[ApiCall] = []
        self._oldest: datetime | None = None
        self.dropped = 0
        self._writes = 0  # writes started beside a request and not yet finished
        self._written = threading.Condition(self._lock)

    def record(self, call: ApiCall) -> None:
        with self._lock:
            if len(self._calls) >= self._max_buffered:
                # The database has been unreachable for a long while: keep memory bounded.
                self.dropped += 1
                return
            if not self._calls:
                self._oldest = call.at
            self._calls.append(call)

    def pending(self) -> int:
        with self._lock:
            return len(self._calls)

    def begin_write(self) -> None:
        """A write of the buffer has started beside the requests (`limiter.RateLimitHeaders`)."""
        with self._lock:
            self._writes += 1

    def end_write(self) -> None:
        with self._written:
            self._writes -= 1
            self._written.notify_all()

    def wait_written(self, timeout: float) -> bool:
        """Wait until no started write is still running (shutdown, tests); False on timeout."""
        with self._written:
            return self._written.wait_for(lambda: self._writes == 0, timeout)

    def due(self, now: datetime) -> bool:
        with self._lock:
            if not self._calls or self._oldest is None:
                return False
            return len(self._calls) >= self._flush_size or now - self._oldest >= self._flush_after

    def flush(self, at_most: int | None = None) -> int:
        """Write the buffered calls (the oldest `at_most` of them, if given); returns how many
        were new. One flush at a time: a second caller returns at once rather than queue behind
        the first."""
        if not self._flushing.acquire(blocking=False):
            return 0
        try:
            with self._lock:
                if at_most is None or at_most >= len(self._calls):
                    calls, self._calls = self._calls, []
                else:
                    calls, self._calls = self._calls[:at_most], self._calls[at_most:]
                self._oldest = min((c.at for c in self._calls), default=None)
            return self._write(calls)
        finally:
            self._flushing.release()

    def _write(self, calls: list[ApiCall]) -> int:
        by_org: dict[str, list[ApiCall]] = defaultdict(list)
        for call in calls:
            by_org[call.org_id].append(call)
        written = 0
        for org_id, org_calls in by_org.items():
            # One transaction per org: an org deleted meanwhile loses only its own calls.
            try:
                with self._database.session(write=True) as session:
                    written += metering.record_usage_batch(
                        session, org_id, [c.as_usage() for c in org_calls]
                    )
                    session.commit()
            except IntegrityError:
                log.info("dropped %d api_calls of %s (organization gone)", len(org_calls), org_id)
            except Exception:
                log.exception("could not record %d api_calls of %s; kept", len(org_calls), org_id)
                self._requeue(org_calls)
        return written

    def _requeue(self, calls: list[ApiCall]) -> None:
        with self._lock:
            self._calls[:0] = calls
            self._oldest = min((c.at for c in self._calls), default=None)
