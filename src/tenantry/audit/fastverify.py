"""The fast pass of chain verification: it can only say "every event checks out", never "this is
wrong" — any doubt sends `service.verify_chain` to its exact pass, which finds and names the fault.

Speed comes from two things the exact pass does not do:
- On SQLite the database writes each event's canonical array itself (`json_array`, with
  `json(summary)` to compact the stored summary), so Python reads one text per event and hashes
  it. This is sound: JSON strings decode to exactly one value, so if the database's text hashes to
  the stored hash, the columns hold exactly what was hashed. Where the database's JSON differs
  from the canonical bytes (an unusual escape, keys stored out of order), the hash misses and the
  exact pass, which encodes in Python, decides. On PostgreSQL, whose JSON text is not compact,
  Python encodes the columns as the exact pass does (building the text in SQL was measured slower).
- A long chain is cut into spans of consecutive seqs checked by separate processes, each reading
  through its own connection, each span anchored on the `prev_hash` its first event carries; the
  parent then checks that every span starts where the previous one ended. Processes are started
  with `spawn`, which is safe inside the threaded API server, and only for chains long enough to
  repay their start-up.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson

_SORTED = orjson.OPT_SORT_KEYS
_BATCH = 50_000
# Fewer events than this per span do not repay starting a process (about 0.2 s each).
MIN_SPAN = 150_000

_SQLITE_RECORDS = """
SELECT seq, json_array(chain_id, seq, id, org_id, team_id, actor_type, actor_id, action,
                       target_type, target_id, result, request_id,
                       substr(occurred_at, 1, 10) || 'T' || substr(occurred_at, 12) || 'Z',
                       json(summary), personal_digest, prev_hash),
       prev_hash, hash
FROM audit_events WHERE chain_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?
"""
_POSTGRES_ROWS = """
SELECT seq, chain_id, seq, id, org_id, team_id, actor_type, actor_id, action, target_type,
       target_id, result, request_id,
       to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       summary::text, personal_digest, prev_hash, hash
FROM audit_events WHERE chain_id = %s AND seq > %s AND seq <= %s ORDER BY seq LIMIT %s
"""


@dataclass(frozen=True)
class Source:
    """Where a span reads from: a SQLite file or a PostgreSQL conninfo (picklable)."""

    dialect: str  # "sqlite" | "postgresql"
    target: str  # the file path, or the libpq conninfo


@dataclass(frozen=True)
class Span:
    """What checking the events with seq in (after_seq, through_seq] found."""

    after_seq: int
    through_seq: int
    clean: bool  # every event present, in order, linked to the one before and matching its hash
    first_prev: str | None  # the prev_hash the span's first event carries
    last_hash: str | None
    hashes_at: dict[int, str]  # the stored hashes at the seqs asked for (checkpoints)


def _sqlite_records(source: Source, chain_id: str, after: int, through: int) -> Iterator[Any]:
    connection = sqlite3.connect(f"file:{source.target}?mode=ro", uri=True)
    try:
        while True:
            rows = connection.execute(
                _SQLITE_RECORDS, (chain_id, after, through, _BATCH)
            ).fetchall()
            for seq, record, prev, stored in rows:
                yield seq, record.encode(), prev, stored
            if len(rows) < _BATCH:
                return
            after = rows[-1][0]
    finally:
        connection.close()


def _postgres_records(source: Source, chain_id: str, after: int, through: int) -> Iterator[Any]:
    import psycopg

    loads, dumps = orjson.loads, orjson.dumps
    with psycopg.connect(source.target) as connection, connection.cursor() as cursor:
        while True:
            cursor.execute(_POSTGRES_ROWS, (chain_id, after, through, _BATCH))
            rows = cursor.fetchall()
            for row in rows:
                summary = loads(row[14]) if row[14] is not None else None
                fields = (*row[1:14], summary, row[15], row[16])
                try:
                    record = dumps(fields, option=_SORTED)
                except orjson.JSONEncodeError:
                    record = b"\x00"  # no encoder of the chain could have written this value
                yield row[0], record, row[16], row[17]
            if len(rows) < _BATCH:
                return
            after = rows[-1][0]


def check_span(
    source: Source, chain_id: str, after_seq: int, through_seq: int, want: frozenset[int]
) -> Span:
    try:
        return _check_span(source, chain_id, after_seq, through_seq, want)
    except Exception:
        # The fast pass only ever proves; anything it cannot read (SQLite refuses a summary that
        # is not JSON, say) is left to the exact pass, which reports it or raises it.
        return Span(after_seq, through_seq, False, None, None, {})


def _check_span(
    source: Source, chain_id: str, after_seq: int, through_seq: int, want: frozenset[int]
) -> Span:
    read = _sqlite_records if source.dialect == "sqlite" else _postgres_records
    expected, expected_prev = after_seq + 1, None
    first_prev: str | None = None
    hashes_at: dict[int, str] = {}
    # The hot loop: copying a blank SHA-256 state is cheaper than creating one.
    blank = hashlib.sha256()
    for seq, record, prev, stored in read(source, chain_id, after_seq, through_seq):
        if seq != expected or (expected_prev is not None and prev != expected_prev):
            return Span(after_seq, through_seq, False, first_prev, None, hashes_at)
        hasher = blank.copy()
        hasher.update(record)
        if hasher.hexdigest() != stored:
            return Span(after_seq, through_seq, False, first_prev, None, hashes_at)
        if expected_prev is None:
            first_prev = prev
        if seq in want:
            hashes_at[seq] = stored
        expected, expected_prev = seq + 1, stored
    clean = expected == through_seq + 1
    return Span(after_seq, through_seq, clean, first_prev, expected_prev, hashes_at)


def source_of(url: Any) -> Source | None:
    """The fast pass's view of a SQLAlchemy URL, or None where it cannot read on its own (an
    in-memory SQLite database exists only inside its connection)."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = url.database
        return Source("sqlite", os.path.abspath(path)) if path and path != ":memory:" else None
    if backend == "postgresql":
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return Source("postgresql", conninfo)
    return None


def spans(after_seq: int, through_seq: int, parts: int) -> list[tuple[int, int]]:
    total = through_seq - after_seq
    bounds = [after_seq + total * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i] < bounds[i + 1]]


def chain_checks_out(
    source: Source,
    *,
    chain_id: str,
    start_seq: int,
    start_hash: str,
    through_seq: int,
    checkpoint_hashes: dict[int, Sequence[str]],
    workers: int,
    min_span: int = MIN_SPAN,
) -> bool:
    """True when every event from start_seq through through_seq is present, in order, linked
    from start_hash and matching its hash, and every checkpoint in that range signed the hash
    found at its seq. False means only "not proven here": the exact pass decides."""
    total = through_seq - start_seq + 1
    if total <= 0:
        return False
    parts = max(1, min(workers, total // max(min_span, 1)))
    want = frozenset(checkpoint_hashes)
    ranges = spans(start_seq - 1, through_seq, parts)
    if len(ranges) == 1:
        found = [check_span(source, chain_id, ranges[0][0], ranges[0][1], want)]
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(len(ranges), mp_context=context) as pool:
            futures = [pool.submit(check_span, source, chain_id, a, b, want) for a, b in ranges]
            found = [future.result() for future in futures]
    link = start_hash
    hashes: dict[int, str] = {}
    for span in found:
        if not span.clean or span.first_prev != link or span.last_hash is None:
            return False
        link = span.last_hash
        hashes.update(span.hashes_at)
    return all(
        hashes.get(seq) == signed
        for seq, signed_all in checkpoint_hashes.items()
        for signed in signed_all
    )
