"""The fast pass of chain verification: it can only say "every event checks out", never "this is
wrong" — any doubt sends `service.verify_chain` to its exact pass, which finds and names the fault.

Speed comes from two things the exact pass does not do:
- On SQLite the database writes each event's canonical array itself (`json_array`, with
  `json(summary)` to compact the stored summary), so Python reads one text per event and hashes
  it. This is sound: JSON strings decode to exactly one value, so if the database's text hashes to
  the stored hash, the columns hold exactly what was hashed. Where the database's JSON differs
  from the canonical bytes (an unusual escape, keys stored out of order), the hash misses and the
  exact pass, which encodes in Python, decides. On PostgreSQL, whose JSON text is not compact,
  the database writes each event as one line of `COPY ... (FORMAT csv)` whose quoting is JSON's
  (`_POSTGRES_COPY`), read with libpq's COPY calls: Python checks where the fields sit, re-encodes
  the summary and hashes the line's own bytes around it, with no Python object per column. The
  same soundness holds: what is hashed encodes the row's values one-to-one.
- A long chain is cut into spans of consecutive seqs checked by separate processes, each reading
  through its own connection, each span anchored on the `prev_hash` its first event carries; the
  parent then checks that every span starts where the previous one ended. Each span process is a
  fresh interpreter that imports only this module (`_check_in_processes`), which is safe inside
  the threaded API server, and only for chains long enough to repay its start-up.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

_SORTED = orjson.OPT_SORT_KEYS
# Rows are fetched a few hundred at a time and dropped: rows that pile up survive into the garbage
# collector's older generations, whose collections then walk the whole heap again and again.
_BATCH = 500
# Fewer events than this per span do not repay starting a process (about 0.1 s each).
MIN_SPAN = 150_000

_SQLITE_RECORDS = """
SELECT seq, CAST(json_array(chain_id, seq, id, org_id, team_id, actor_type, actor_id, action,
                            target_type, target_id, result, request_id,
                            substr(occurred_at, 1, 10) || 'T' || substr(occurred_at, 12) || 'Z',
                            json(summary), personal_digest, prev_hash) AS BLOB),
       prev_hash, hash
FROM audit_events WHERE chain_id = ? AND seq > ? AND seq <= ? ORDER BY seq
"""
# PostgreSQL hands each event over as one line of COPY's CSV, laid out so that most of the
# canonical array is already there: CSV with `\` as its escape writes a quoted string exactly as
# JSON does (`"` and `\` escaped, every other character as itself), `null` stands for NULL, and a
# number is written bare. Python cuts the line at fixed places instead of decoding every column.
# The three 64-character hex fields come first, so they sit at fixed offsets, then seq..occurred_at
# in canonical order, then the summary, the one part Python must re-encode (jsonb's text has
# spaces and its own key order).
_POSTGRES_COPY = """
COPY (SELECT personal_digest, prev_hash, hash, seq, id, org_id, team_id, actor_type, actor_id,
             action, target_type, target_id, result, request_id,
             to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
               AS occurred_at, summary
      FROM audit_events WHERE chain_id = {} AND seq > {} AND seq <= {} ORDER BY seq)
TO STDOUT (FORMAT csv, QUOTE '"', ESCAPE '\\', NULL 'null',
           FORCE_QUOTE (personal_digest, prev_hash, hash, id, org_id, team_id, actor_type, actor_id,
                        action, target_type, target_id, result, request_id, occurred_at, summary))
"""
# Offsets in a line: "digest" 0..65, "prev" 67..132, "hash" 134..199, seq from 201.
_QUOTES = (67, 132, 134, 199)
_HEX64 = re.compile(rb"[0-9a-f]{64}")


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
        cursor = connection.execute(_SQLITE_RECORDS, (chain_id, after, through))
        # The record comes as a BLOB: its UTF-8 bytes, with no decoding and encoding again.
        while rows := cursor.fetchmany(_BATCH):
            yield from rows
    finally:
        connection.close()


def _postgres_copy(source: Source, chain_id: str, after: int, through: int) -> Any:
    """A connection with the span's COPY started (`_POSTGRES_COPY`); the caller reads it with
    libpq's own calls (a line is one call, where psycopg's Copy object costs several) and closes
    it, never commits: it may be left mid-COPY."""
    import psycopg
    from psycopg import pq, sql

    connection = psycopg.connect(source.target, autocommit=True)
    try:
        # A plain ordered scan gains nothing from JIT compilation, which costs a few hundred ms.
        connection.execute("SET jit = off")
        connection.execute("SET client_encoding = 'UTF8'")
        query = sql.SQL(_POSTGRES_COPY).format(
            sql.Literal(chain_id), sql.Literal(after), sql.Literal(through)
        )
        connection.pgconn.send_query(query.as_bytes(connection))
        started = connection.pgconn.get_result()
        if started is None or started.status != pq.ExecStatus.COPY_OUT:
            raise RuntimeError("COPY did not start")
    except BaseException:
        connection.close()
        raise
    return connection


def _check_postgres_span(
    source: Source, chain_id: str, after_seq: int, through_seq: int, want: frozenset[int]
) -> Span:
    """A span read as COPY lines (see `_POSTGRES_COPY`). Each line is accepted only when its
    fields sit exactly where expected: quotes at the fixed offsets, with the link and the stored
    hash compared as 64 hex digits, pin the digest, prev and hash fields; the seq is compared as
    text; the summary is decoded and encoded canonically. What gets hashed is then the canonical
    array of the row's own values, or text with a raw control character, which no canonical
    array holds (so it cannot match a hash the chain made)."""
    from psycopg import pq

    unclean = Span(after_seq, through_seq, False, None, None, {})
    connection = _postgres_copy(source, chain_id, after_seq, through_seq)
    try:
        get = connection.pgconn.get_copy_data
        size, data = get(0)
        if size < 0:
            return Span(after_seq, through_seq, after_seq == through_seq, None, None, {})
        line = bytes(data)
        if _HEX64.fullmatch(line, 68, 132) is None:
            return unclean
        prev = line[68:132]
        first_prev = prev.decode()
        opening = b"[" + orjson.dumps(chain_id) + b","
        expected = after_seq + 1
        hashes_at: dict[int, str] = {}
        blank, loads, dumps, join = hashlib.sha256(), orjson.loads, orjson.dumps, b"".join
        while size >= 0:
            line = bytes(data)
            if (
                line[67] != 34
                or line[132] != 34
                or line[134] != 34
                or line[199] != 34
                or line[68:132] != prev
            ):
                return unclean
            number = b"%d," % expected
            if not line.startswith(number, 201):
                return unclean
            # The summary is the last field, a CSV string holding jsonb's text; inside it every
            # `"` is escaped, so its opening quote is the last one that follows a comma.
            at = line.rindex(b',"{')
            summary = dumps(loads(loads(line[at + 1 : -1])), option=_SORTED)
            hasher = blank.copy()
            hasher.update(join((opening, line[201:at], b",", summary, b",", line[:133], b"]")))
            stored = line[135:199]
            if hasher.hexdigest().encode() != stored:
                return unclean
            if want and expected in want:
                hashes_at[expected] = stored.decode()
            prev, expected = stored, expected + 1
            size, data = get(0)
        finished = connection.pgconn.get_result()
        if finished is None or finished.status != pq.ExecStatus.COMMAND_OK:
            return unclean
    finally:
        connection.close()
    clean = expected == through_seq + 1
    return Span(after_seq, through_seq, clean, first_prev, prev.decode(), hashes_at)


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
    if source.dialect == "postgresql":
        return _check_postgres_span(source, chain_id, after_seq, through_seq, want)
    read = _sqlite_records
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


# What a span process runs: read a pickled (source, chain_id, after_seq, through_seq, want) from
# stdin, write the pickled Span to stdout.
_SPAN_PROCESS = "from tenantry.audit.fastverify import span_process; span_process()"


def span_process() -> None:
    """The entry point of a span process (`_check_in_processes`)."""
    # Written by the parent, through a pipe (never argv, which would show a password to `ps`).
    source, chain_id, after_seq, through_seq, want = pickle.loads(sys.stdin.buffer.read())  # noqa: S301
    span = check_span(source, chain_id, after_seq, through_seq, want)
    sys.stdout.buffer.write(pickle.dumps(span))


def _check_in_processes(
    source: Source, chain_id: str, ranges: list[tuple[int, int]], want: frozenset[int]
) -> list[Span]:
    """Each span in a fresh interpreter that imports this module and nothing else (about 0.1 s to
    start). multiprocessing would import the caller's main module in every new process (the API
    server, the benchmark: half a second, and a heap the garbage collector then walks), and
    `fork` is unsafe in a threaded server. The children inherit `sys.path`, so they import the
    same code as this process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    children = []
    try:
        for after_seq, through_seq in ranges:
            child = subprocess.Popen(  # noqa: S603 - our own interpreter running our own module
                [sys.executable, "-c", _SPAN_PROCESS],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
            children.append(child)
            assert child.stdin is not None
            child.stdin.write(pickle.dumps((source, chain_id, after_seq, through_seq, want)))
            child.stdin.close()
    except OSError:
        # No interpreter to start (an embedded Python) or a child gone at once: nothing proven
        # here, and the exact pass decides in this process.
        for child in children:
            child.kill()
            child.wait()
        return [Span(a, b, False, None, None, {}) for a, b in ranges]
    found = []
    for child, (after_seq, through_seq) in zip(children, ranges, strict=True):
        assert child.stdout is not None
        out = child.stdout.read()
        child.stdout.close()
        if child.wait() == 0 and out:
            found.append(pickle.loads(out))  # noqa: S301 - written by our own child process
        else:
            found.append(Span(after_seq, through_seq, False, None, None, {}))
    return found


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
        found = _check_in_processes(source, chain_id, ranges, want)
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
