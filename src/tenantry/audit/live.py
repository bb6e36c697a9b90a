"""The live audit stream: one chain's events as Server-Sent Events, resumable by sequence number.

Each event is a frame `id: <seq>`, `event: audit`, `data: <the event>`, the event as an NDJSON
export writes it (without its "type"): the list endpoint's fields, with `occurred_at` in the
chain's canonical form, so a follower can check each hash and link as it arrives.

A client that reconnects sends the last `id` it saw as `Last-Event-ID` and continues with the
next seq. Appends to a chain take its head's lock, so seqs are gapless and commit in order: a
reader never sees seq N+1 before N, and a resumed stream has no gap and no duplicate.

New events are found by polling the database, a fresh read session per poll in a worker thread,
so an idle stream holds no connection. A comment line is sent when the stream has been quiet for
`HEARTBEAT_SECONDS`: it keeps proxies from closing the connection, and writing it reveals a client
that has gone away.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
from starlette.concurrency import run_in_threadpool

from tenantry.audit import repository
from tenantry.audit.export import event_record
from tenantry.audit.repository import EventFilters
from tenantry.kit.db import Database

POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0
BATCH = 200
HEARTBEAT = b": keep-alive\n\n"
MAX_SEQ = 2**63 - 1


def frame(record: dict[str, Any]) -> bytes:
    data = orjson.dumps({name: value for name, value in record.items() if name != "type"})
    return b"id: %d\nevent: audit\ndata: %s\n\n" % (record["seq"], data)


# How one event is written into the stream: the API's JSON `frame`, or another face's (the
# dashboard's live view sends each event as a table row).
Render = Callable[[dict[str, Any]], bytes]


@dataclass(frozen=True)
class Feed:
    """What one stream sends: events of `chain_id` after `after_seq`, at most `max_events` of
    them; with `follow`, new events as they are written, else only those already there."""

    db: Database
    chain_id: str
    after_seq: int = 0
    # Only the events that match (a team's stream); seqs stay the chain's, so resuming works the
    # same and a filtered stream simply skips the seqs it does not show.
    filters: EventFilters = field(default_factory=EventFilters)
    max_events: int | None = None
    follow: bool = True
    poll_seconds: float = POLL_SECONDS
    heartbeat_seconds: float = HEARTBEAT_SECONDS
    render: Render = frame


def read_after(
    db: Database,
    *,
    chain_id: str,
    after_seq: int,
    limit: int,
    filters: EventFilters = EventFilters(),
    render: Render = frame,
) -> list[tuple[int, bytes]]:
    """(seq, frame) of the next `limit` events after `after_seq` that match `filters` (blocking:
    run it in a thread)."""
    with db.session(write=False) as session:
        batches = repository.export_rows(
            session,
            chain_id=chain_id,
            filters=filters,
            after_seq=after_seq,
            through_seq=MAX_SEQ,
            batch=limit,
        )
        records = [event_record(row) for row in next(batches, [])]
        return [(record["seq"], render(record)) for record in records]


def _wanted(feed: Feed, sent: int) -> int:
    return BATCH if feed.max_events is None else min(BATCH, feed.max_events - sent)


async def frames(feed: Feed) -> AsyncGenerator[bytes, None]:
    """The stream's body. Ends after `max_events`, when caught up without `follow`, or when the
    server cancels it because the client disconnected."""
    after, sent = feed.after_seq, 0
    quiet_since = time.monotonic()
    while True:
        wanted = _wanted(feed, sent)
        batch = await run_in_threadpool(
            read_after,
            feed.db,
            chain_id=feed.chain_id,
            after_seq=after,
            limit=wanted,
            filters=feed.filters,
            render=feed.render,
        )
        if batch:
            after = batch[-1][0]
            sent += len(batch)
            yield b"".join(data for _, data in batch)
            quiet_since = time.monotonic()
            if feed.max_events is not None and sent >= feed.max_events:
                return
            if len(batch) == wanted:
                continue  # more may be waiting: no pause while catching up
        if not feed.follow:
            return
        if time.monotonic() - quiet_since >= feed.heartbeat_seconds:
            yield HEARTBEAT
            quiet_since = time.monotonic()
        await anyio.sleep(feed.poll_seconds)
