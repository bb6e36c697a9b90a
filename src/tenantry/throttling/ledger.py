"""The API's own requests, recorded as `api_calls` usage in batches.

A request that passed the rate limit and the daily quota is tallied here (microseconds, no
database work on its path): calls by the same caller (user, API key, team) to the same route in
the same minute are one usage event whose quantity is their count. The buffer is written through
`metering.recording.record_events` when it is due: the first request after
`api_calls_flush_seconds` (by the service's clock) or `api_calls_flush_size` tallies starts the
write beside itself and goes on without waiting, and the app writes what is left when it shuts
down. Starting at a request keeps every write off a request's own transaction and lock, and
makes the moment of a flush follow from the clock, not from a timer thread (tests that move a
FrozenClock see it start at a request, never in between, and `wait_written` tells when it is
done).

Why a tally and not an event per call: the write costs per event (the row, its rollup, the
counter), and a write runs beside the requests in the same process. One event per call cost
0.3 ms of CPU per call, most of an admission's own cost, and the writes, every few seconds,
held the interpreter for tens of milliseconds while admissions waited. A tally is exact for
every summary (by member, key, route, hour or day: a tally never spans a minute) and for the
daily quota's usage; what it does not keep is each call's own timestamp within its minute.

A due flush is written in chunks of `FLUSH_CHUNK` events, each a short transaction that takes
the write turn of SQLite like any writing request (`kit.http.write_gate`), so requests queue
behind one chunk at a time rather than behind the whole buffer, and never meet SQLite's lock in
its busy handler (which sleeps up to 100 ms per retry: the tail of admission latency).

Each tally gets its event id when it is opened and is never added to once it is taken for
writing, so writing it twice (a retry after a failed commit) records it once. What can be lost:
the calls of the last few seconds when a process is killed outright (SIGKILL, power loss). That
only undercounts usage, in the customer's favour, by seconds of traffic ($0.01 per 1,000 calls),
while the daily quota itself is enforced by the rate-limit store, which a crash does not touch.
Writing every GET through a database transaction instead would cost far more than it protects.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy.exc import IntegrityError

from tenantry.kit.db import Database
from tenantry.kit.ids import new_id
from tenantry.metering import recording

log = logging.getLogger("tenantry.throttling")
API_CALLS = "api_calls"
FLUSH_CHUNK = 50


class ApiCall(NamedTuple):
    """One counted request (a tuple: one is made per request)."""

    org_id: str
    at: datetime
    method: str
    route: str
    team_id: str | None = None
    user_id: str | None = None
    api_key_id: str | None = None


# The calls one tally counts: the caller, the route and the minute.
_TallyKey = tuple[str, str | None, str | None, str | None, str, str, datetime]


@dataclass
class Tally:
    """Calls of one caller to one route within one minute: one usage event once written."""

    event_id: str
    first: ApiCall  # its caller and route, and the time of its first call
    calls: int = 1

    def as_usage(self) -> recording.UsageEvent:
        call = self.first
        return recording.UsageEvent(
            event_id=self.event_id,
            meter=API_CALLS,
            quantity=Decimal(self.calls),
            timestamp=call.at,
            team_id=call.team_id,
            user_id=call.user_id,
            api_key_id=call.api_key_id,
            dimensions={"method": call.method, "route": call.route},
        )


class ApiCallLedger:
    """Buffered `api_calls` usage of one process, tallied per caller, route and minute."""

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
        self._max_buffered = max_buffered  # tallies: what the buffer's memory grows with
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        # Tallies still counting calls, oldest first; and tallies taken for a write that failed,
        # kept as they were (same ids, same counts) and written first next time.
        self._open: dict[_TallyKey, Tally] = {}
        self._failed: list[Tally] = []
        self._calls = 0
        self._oldest: datetime | None = None
        self.dropped = 0
        self._writes = 0  # writes started beside a request and not yet finished
        self._written = threading.Condition(self._lock)

    def record(self, call: ApiCall) -> None:
        key = (
            call.org_id,
            call.team_id,
            call.user_id,
            call.api_key_id,
            call.method,
            call.route,
            call.at.replace(second=0, microsecond=0),
        )
        with self._lock:
            tally = self._open.get(key)
            if tally is not None:
                tally.calls += 1
            elif self._events() >= self._max_buffered:
                # The database has been unreachable for a long while: keep memory bounded.
                self.dropped += 1
                return
            else:
                self._open[key] = Tally(new_id("call"), call)
                if self._oldest is None:
                    self._oldest = call.at
            self._calls += 1

    def pending(self) -> int:
        """Calls buffered and not written yet."""
        with self._lock:
            return self._calls

    def pending_events(self) -> int:
        """Usage events the buffered calls make (what a write costs)."""
        with self._lock:
            return self._events()

    def _events(self) -> int:
        """Tallies buffered, open or failed: the events a write would make (under the lock)."""
        return len(self._open) + len(self._failed)

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
            # By events, not calls: a write costs per tally, and one busy caller's thousand calls
            # are one row. Counting calls made a write (a few milliseconds of the interpreter,
            # beside the requests) every 1,000 calls for nothing: at 400 admissions/s each one
            # put 3-11 admissions over 5 ms.
            return self._events() >= self._flush_size or now - self._oldest >= self._flush_after

    def flush(self, at_most: int | None = None) -> int:
        """Write the buffered tallies (the oldest `at_most` of them, if given); returns how many
        calls were new. One flush at a time: a second caller returns at once rather than queue
        behind the first."""
        if not self._flushing.acquire(blocking=False):
            return 0
        try:
            with self._lock:
                tallies = self._take(at_most)
            return self._write(tallies)
        finally:
            self._flushing.release()

    def _take(self, at_most: int | None) -> list[Tally]:
        """The oldest tallies, out of the buffer (no call is added to them from now on)."""
        taken, self._failed = self._failed, []
        if at_most is not None and len(taken) > at_most:
            taken, self._failed = taken[:at_most], taken[at_most:]
        room = len(self._open) if at_most is None else max(0, at_most - len(taken))
        if room >= len(self._open):
            taken += self._open.values()
            self._open = {}
        else:
            for key in list(self._open)[:room]:
                taken.append(self._open.pop(key))
        self._calls -= sum(t.calls for t in taken)
        self._find_oldest()
        return taken

    def _find_oldest(self) -> None:
        """The first call of the buffered tallies (under the lock)."""
        left = [*self._failed, *self._open.values()]
        self._oldest = min((t.first.at for t in left), default=None)

    def _write(self, tallies: list[Tally]) -> int:
        by_org: dict[str, list[Tally]] = defaultdict(list)
        for tally in tallies:
            by_org[tally.first.org_id].append(tally)
        written = 0
        for org_id, org_tallies in by_org.items():
            # One transaction per org: an org deleted meanwhile loses only its own calls.
            try:
                with self._database.session(write=True) as session:
                    recorded = recording.record_events(
                        session, org_id, [t.as_usage() for t in org_tallies]
                    )
                    session.commit()
                written += sum(t.calls for t in org_tallies if t.event_id in recorded.inserted)
            except IntegrityError:
                calls = sum(t.calls for t in org_tallies)
                log.info("dropped %d api_calls of %s (organization gone)", calls, org_id)
            except Exception:
                calls = sum(t.calls for t in org_tallies)
                log.exception("could not record %d api_calls of %s; kept", calls, org_id)
                self._requeue(org_tallies)
        return written

    def _requeue(self, tallies: list[Tally]) -> None:
        with self._lock:
            self._failed[:0] = tallies
            self._calls += sum(t.calls for t in tallies)
            self._find_oldest()
