"""Exports of one chain of the audit trail as NDJSON, JSON or CSV, streamed with flat memory.

An export is read in one snapshot (a single read transaction; REPEATABLE READ on PostgreSQL) up to
the chain's head as it was when the export began, `BATCH` events at a time, each batch written
out before the next is read. NDJSON is the format to verify offline:

    {"type":"header", "format":"tenantry-audit-export/1", "chain_id", "filtered", "start_seq",
     "start_hash", "public_key_pem", "exported_at", ...}
    {"type":"event", <chain.FIELDS>, "hash", "ip", "user_agent", "personal"}      one per event
    {"type":"checkpoint", "id", "chain_id", "seq", "hash", "created_at", ...}     one per checkpoint
    {"type":"trailer", "count", "last_seq", "last_hash", "signature"}

A checkpoint line comes right after the event it signs (those of purged seqs right after the
header), so a verifier can check each one as it reads, in constant memory. The trailer's signature
covers `chain.export_message`, so a cut, extended or re-chained file is detected. `ip`,
`user_agent` and `personal` sit outside the hash: they are personal details that erasure removes.
JSON holds the same parts in one document ({"header", "events", "checkpoints", "trailer"}).
CSV is for spreadsheets: one row per event, nothing to verify with, and every cell that a
spreadsheet would run as a formula neutralized.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson
from sqlalchemy.orm import Session

from tenantry.audit import chain, repository
from tenantry.audit.models import AuditCheckpoint
from tenantry.audit.repository import EventFilters
from tenantry.audit.service import Notary
from tenantry.kit.clock import Clock
from tenantry.kit.db import Database

ExportFormat = Literal["ndjson", "json", "csv"]
MEDIA_TYPES: dict[str, str] = {
    "ndjson": "application/x-ndjson",
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
}
BATCH = 100
CSV_COLUMNS = (*chain.FIELDS, "hash", "ip", "user_agent", "personal")
# A spreadsheet runs a cell starting with one of these as a formula (`=HYPERLINK(...)`, `@SUM`,
# `+cmd|...`); tab and carriage return can hide such a start from a casual look.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Plan:
    """What one export holds, fixed when it begins."""

    chain_id: str
    filters: EventFilters
    through_seq: int  # the chain's head when the export began: later events wait for the next one
    start_seq: int
    start_hash: str
    exported_at: str
    header: dict[str, Any]
    checkpoints: list[dict[str, Any]]


@dataclass
class Tally:
    """The end of what has been written so far, for the trailer."""

    last_seq: int
    last_hash: str
    count: int = 0

    def add(self, record: dict[str, Any]) -> None:
        self.last_seq, self.last_hash, self.count = record["seq"], record["hash"], self.count + 1


@dataclass(frozen=True)
class ExportRequest:
    chain_id: str
    format: ExportFormat = "ndjson"
    filters: EventFilters = field(default_factory=EventFilters)


def filename(slug: str, fmt: ExportFormat, moment: datetime) -> str:
    return f"audit-{slug}-{moment.strftime('%Y%m%dT%H%M%SZ')}.{fmt}"


def chunks(
    db: Database, notary: Notary, clock: Clock, request: ExportRequest
) -> Generator[bytes, None, None]:
    """The export as byte chunks, about one batch of events each. It reads with a session of its
    own: the request's session is given back before a streamed body begins."""
    session = _snapshot_session(db)
    try:
        plan = _plan(session, notary, clock, request)
        batches = _event_batches(session, plan)
        yield from WRITERS[request.format](plan, batches, notary.sign)
    finally:
        session.close()


def _snapshot_session(db: Database) -> Session:
    session = db.session(write=False)
    if db.dialect == "postgresql":
        # Every batch from one snapshot: a purge or append committed meanwhile cannot make the
        # export inconsistent. SQLite's read transaction in WAL mode is a snapshot already.
        session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )
    return session


def _plan(session: Session, notary: Notary, clock: Clock, request: ExportRequest) -> Plan:
    chain_id, filters = request.chain_id, request.filters
    head = repository.head_of(session, chain_id=chain_id)
    through = head.seq if head is not None else 0
    anchor = repository.latest_purge_checkpoint(session, chain_id=chain_id)
    start_seq, start_hash = 1, chain.GENESIS_HASH
    if anchor is not None:
        start_seq, start_hash = anchor.purged_through + 1, anchor.hash
    exported_at = chain.timestamp(clock.now())
    checkpoints = [
        checkpoint_record(cp)
        for cp in repository.checkpoints_of(session, chain_id=chain_id)
        if cp.seq <= through
    ]
    header = {
        "type": "header",
        "format": chain.EXPORT_FORMAT,
        "chain_id": chain_id,
        "filtered": filters != EventFilters(),
        "filters": _filters_record(filters),
        "start_seq": start_seq,
        "start_hash": start_hash,
        "public_key_pem": notary.public_key_pem,
        "exported_at": exported_at,
    }
    return Plan(chain_id, filters, through, start_seq, start_hash, exported_at, header, checkpoints)


def _filters_record(filters: EventFilters) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in vars(filters).items():
        if value is not None:
            found[name] = chain.timestamp(value) if isinstance(value, datetime) else str(value)
    return found


def _event_batches(session: Session, plan: Plan) -> Iterator[list[dict[str, Any]]]:
    for rows in repository.export_rows(
        session,
        chain_id=plan.chain_id,
        filters=plan.filters,
        after_seq=plan.start_seq - 1,
        through_seq=plan.through_seq,
        batch=BATCH,
    ):
        yield [event_record(row) for row in rows]


_OCCURRED_AT = chain.FIELDS.index("occurred_at")


def event_record(row: Sequence[Any]) -> dict[str, Any]:
    """An event as an export line (from a row of `repository.export_rows`): the hashed fields in
    `chain.FIELDS` order, the hash, then the personal details, outside the hash so that erasing
    them leaves the chain intact."""
    record: dict[str, Any] = {"type": "event"}
    record.update(zip(chain.FIELDS, row[:16], strict=True))
    record["occurred_at"] = chain.timestamp(row[_OCCURRED_AT])
    record["hash"], record["ip"], record["user_agent"] = row[16], row[17], row[18]
    record["personal"] = row[19] or None
    return record


def checkpoint_record(cp: AuditCheckpoint) -> dict[str, Any]:
    return {
        "type": "checkpoint",
        "id": cp.id,
        "chain_id": cp.chain_id,
        "seq": cp.seq,
        "hash": cp.hash,
        "created_at": chain.timestamp(cp.created_at),
        "reason": cp.reason,
        "purged_through": cp.purged_through,
        "signature": cp.signature,
    }


def _trailer(plan: Plan, tally: Tally, sign: Callable[[bytes], str]) -> dict[str, Any]:
    message = chain.export_message(
        chain_id=plan.chain_id,
        last_seq=tally.last_seq,
        last_hash=tally.last_hash,
        exported_at=plan.exported_at,
    )
    return {
        "type": "trailer",
        "count": tally.count,
        "last_seq": tally.last_seq,
        "last_hash": tally.last_hash,
        "signature": sign(message),
    }


def _line(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record) + b"\n"


Batches = Iterator[list[dict[str, Any]]]
Writer = Callable[[Plan, Batches, Callable[[bytes], str]], Iterator[bytes]]


def write_ndjson(plan: Plan, batches: Batches, sign: Callable[[bytes], str]) -> Iterator[bytes]:
    yield _line(plan.header)
    pending = iter(plan.checkpoints)
    upcoming = next(pending, None)
    tally = Tally(plan.start_seq - 1, plan.start_hash)
    for batch in batches:
        out = bytearray()
        for record in batch:
            # A checkpoint goes right after the event it signs: before the first later event.
            while upcoming is not None and upcoming["seq"] < record["seq"]:
                out += _line(upcoming)
                upcoming = next(pending, None)
            out += _line(record)
            tally.add(record)
        yield bytes(out)
    rest = bytearray()
    while upcoming is not None:
        rest += _line(upcoming)
        upcoming = next(pending, None)
    yield bytes(rest) + _line(_trailer(plan, tally, sign))


def write_json(plan: Plan, batches: Batches, sign: Callable[[bytes], str]) -> Iterator[bytes]:
    yield b'{"header":' + orjson.dumps(plan.header) + b',\n"events":['
    tally = Tally(plan.start_seq - 1, plan.start_hash)
    separator = b"\n"
    for batch in batches:
        for record in batch:
            tally.add(record)
        yield separator + b",\n".join(orjson.dumps(record) for record in batch)
        separator = b",\n"
    checkpoints = b",\n".join(orjson.dumps(cp) for cp in plan.checkpoints)
    trailer = orjson.dumps(_trailer(plan, tally, sign))
    yield b'\n],\n"checkpoints":[\n' + checkpoints + b'\n],\n"trailer":' + trailer + b"}\n"


def neutralize(cell: str) -> str:
    """A cell a spreadsheet would evaluate as a formula, made plain text by a leading `'`."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    else:
        text = str(value)
    return neutralize(text)


def write_csv(plan: Plan, batches: Batches, sign: Callable[[bytes], str]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue().encode()
    for batch in batches:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([csv_cell(record[name]) for name in CSV_COLUMNS] for record in batch)
        yield buffer.getvalue().encode()


WRITERS: dict[str, Writer] = {"ndjson": write_ndjson, "json": write_json, "csv": write_csv}
