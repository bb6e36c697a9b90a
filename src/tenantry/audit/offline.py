"""Verifying an exported audit trail without the server: `tenantry audit verify --file EXPORT`.

An NDJSON export is read a line at a time, in constant memory; a JSON export is one document and
is read whole. What is checked (the format is described in `tenantry.audit.export`):

- the chain, with `chain.verify_events`, from the header's `start_seq`/`start_hash`; when the
  export starts after seq 1 (a retention purge), a signed purge checkpoint must vouch for that
  start, or the first events could simply have been dropped;
- every checkpoint's Ed25519 signature, and that it signs the hash of the event it follows;
- the trailer: its signature over (chain, last seq, last hash, export time), and that the events
  end exactly where it says, with as many as it counts. No trailer means a cut file.

The public key is the caller's (the server's `GET /api/v1/audit/public-key`, kept apart from the
file) or else the one the header names. A key read from the file itself only shows that the file
is consistent: whoever rewrote the file could have signed it with a key of their own. The verdict
says which key was used.

A filtered export holds some events only, so the links between them cannot be checked: each
event's own hash is, and the verdict says the chain was not. Fault kinds are those of
`chain.Fault`; `scripts/verify_audit_export.py` is the same check in the standard library alone,
and gives the same verdicts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from tenantry.audit import chain
from tenantry.audit.chain import Fault

KeySource = Literal["given", "export"]
KEY_FROM_EXPORT_NOTE = (
    "The public key was read from the export itself: this shows the file is consistent, not who "
    "made it. Give the server's key (GET /api/v1/audit/public-key) to check its origin."
)
FILTERED_NOTE = (
    "This is a filtered export: each event's own hash was checked, the chain linking them was not."
)


@dataclass(frozen=True)
class ExportVerdict:
    """The outcome, shaped like the server's verdict: ok, or the first bad seq and what is wrong."""

    ok: bool
    fault: Fault | None
    chain_id: str | None = None
    filtered: bool = False
    chain_checked: bool = False
    key_source: KeySource | None = None
    events_checked: int = 0
    first_seq: int | None = None
    last_seq: int = 0
    checkpoints_checked: int = 0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entry:
    """One record of an export, or a line that is not one (`value` None)."""

    where: str  # "line 12", "events[3]": for people reading the verdict
    value: dict[str, Any] | None
    at_end: bool = False  # an unreadable last line: the file was cut in the middle of it


@dataclass(frozen=True)
class Header:
    chain_id: str
    filtered: bool
    start_seq: int
    start_hash: str
    public_key_pem: str
    exported_at: str


class Unverifiable(Exception):
    """The input is not an export this verifier can read; the message says why."""


# ---- reading ----


def _int(value: Any) -> int | None:
    """An integer of the JSON (true and false are not integers here, unlike in Python)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _object(text: str | bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def ndjson_entries(lines: Iterable[bytes | str]) -> Iterator[Entry]:
    """Records of an NDJSON export; blank lines are skipped."""
    numbered = ((n, line) for n, line in enumerate(lines, start=1) if line.strip())
    current = next(numbered, None)
    while current is not None:
        following = next(numbered, None)
        number, line = current
        value = _object(line)
        yield Entry(f"line {number}", value, at_end=value is None and following is None)
        current = following


def json_entries(document: Any) -> Iterator[Entry]:
    """Records of a JSON export in NDJSON order: each checkpoint after the event it signs."""
    if not isinstance(document, dict):
        yield Entry("document", None)
        return
    header = document.get("header")
    yield Entry("header", header if isinstance(header, dict) else None)
    events = document.get("events")
    checkpoints = document.get("checkpoints")
    if not isinstance(events, list) or not isinstance(checkpoints, list):
        yield Entry("document", None)
        return

    def seq_of(item: Any) -> int:
        seq = _int(item.get("seq")) if isinstance(item, dict) else None
        return -1 if seq is None else seq

    pending = sorted(enumerate(checkpoints), key=lambda pair: seq_of(pair[1]))
    for index, event in enumerate(events):
        while pending and seq_of(pending[0][1]) < seq_of(event):
            n, cp = pending.pop(0)
            yield Entry(f"checkpoints[{n}]", cp if isinstance(cp, dict) else None)
        yield Entry(f"events[{index}]", event if isinstance(event, dict) else None)
    for n, cp in pending:
        yield Entry(f"checkpoints[{n}]", cp if isinstance(cp, dict) else None)
    trailer = document.get("trailer")
    if trailer is not None:
        yield Entry("trailer", trailer if isinstance(trailer, dict) else None)


def _header(entry: Entry | None) -> Header:
    value = entry.value if entry is not None else None
    if value is None or value.get("type") != "header":
        raise Unverifiable("the export does not begin with its header")
    if value.get("format") != chain.EXPORT_FORMAT:
        raise Unverifiable(f"unknown export format {value.get('format')!r}")
    chain_id, start_seq, start_hash = (
        _text(value.get("chain_id")),
        _int(value.get("start_seq")),
        _text(value.get("start_hash")),
    )
    pem, exported_at = _text(value.get("public_key_pem")), _text(value.get("exported_at"))
    filtered = value.get("filtered")
    if (
        chain_id is None
        or start_seq is None
        or start_seq < 1
        or start_hash is None
        or pem is None
        or exported_at is None
        or not isinstance(filtered, bool)
    ):
        raise Unverifiable("the header lacks a field or holds one of the wrong type")
    return Header(chain_id, filtered, start_seq, start_hash, pem, exported_at)


def _public_key(pem: str) -> Ed25519PublicKey:
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise Unverifiable(f"the public key cannot be read: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise Unverifiable("the public key is not an Ed25519 key")
    return key


def _genuine(key: Ed25519PublicKey, message: bytes, signature: Any) -> bool:
    try:
        key.verify(bytes.fromhex(signature), message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


# ---- checking ----


@dataclass
class _Walk:
    """State of one verification as it reads the export from top to bottom."""

    header: Header
    key: Ed25519PublicKey
    last_seq: int
    last_hash: str
    anchored: bool
    count: int = 0
    first_seq: int | None = None
    checkpoints: int = 0
    trailer: Entry | None = None
    faults: list[Fault] = field(default_factory=list)

    def stop(self, seq: int, kind: str, detail: str) -> None:
        self.faults.append(Fault(seq, kind, detail))

    def advance(self, seq: int, digest: str) -> None:
        self.last_seq, self.last_hash = seq, digest
        self.count += 1
        self.first_seq = seq if self.first_seq is None else self.first_seq


def _checkpoint_fault(walk: _Walk, entry: Entry) -> Fault | None:
    """A checkpoint must be signed with the key, name this chain, and sign the hash of the event
    it follows; one of a purged seq may instead vouch for where the export starts."""
    cp = entry.value or {}
    seq, digest, cp_id = _int(cp.get("seq")), _text(cp.get("hash")), cp.get("id")
    purged_through = _int(cp.get("purged_through"))
    created_at, chain_id = _text(cp.get("created_at")), _text(cp.get("chain_id"))
    if seq is None or digest is None or purged_through is None:
        return Fault(
            walk.last_seq + 1, "bad_checkpoint", f"{entry.where}: a checkpoint lacks a field"
        )
    if created_at is None or chain_id is None:
        return Fault(seq, "bad_checkpoint", f"{entry.where}: a checkpoint lacks a field")
    message = chain.checkpoint_message(
        chain_id=chain_id,
        seq=seq,
        hash=digest,
        created_at=created_at,
        purged_through=purged_through,
    )
    if not _genuine(walk.key, message, cp.get("signature")):
        return Fault(seq, "bad_checkpoint", f"checkpoint {cp_id} has a bad signature")
    if chain_id != walk.header.chain_id:
        return Fault(seq, "bad_checkpoint", f"checkpoint {cp_id} is of chain {chain_id}")
    header = walk.header
    if seq < header.start_seq:
        if seq == header.start_seq - 1 and purged_through == seq:
            walk.anchored = walk.anchored or digest == header.start_hash
        return None
    if header.filtered:
        if seq == walk.last_seq and digest != walk.last_hash:
            return Fault(seq, "bad_checkpoint", f"checkpoint {cp_id} signed another hash at {seq}")
        return None
    if seq > walk.last_seq:
        return Fault(
            walk.last_seq + 1,
            "missing_event",
            f"seq {walk.last_seq + 1} is missing (checkpoint {cp_id} signs seq {seq})",
        )
    if seq < walk.last_seq:
        return Fault(seq, "bad_checkpoint", f"checkpoint {cp_id} of seq {seq} is out of place")
    if digest != walk.last_hash:
        return Fault(seq, "bad_checkpoint", f"checkpoint {cp_id} signed another hash at {seq}")
    return None


def _event_row(entry: Entry) -> list[Any] | None:
    try:
        row = chain.event_row(entry.value or {})
    except KeyError:
        return None
    return row if _int(row[1]) is not None else None


def _rows(walk: _Walk, entries: Iterator[Entry]) -> Iterator[list[Any]]:
    """The event rows of the export, checking the other records on the way; stops at the first
    problem, noted in `walk.faults`."""
    for entry in entries:
        if walk.trailer is not None:
            walk.stop(walk.last_seq + 1, "bad_trailer", f"{entry.where} follows the trailer")
            return
        if entry.value is None:
            if not entry.at_end:  # a cut last line is told by the missing trailer
                walk.stop(walk.last_seq + 1, "changed_content", f"{entry.where} is not a record")
            return
        kind = entry.value.get("type")
        if kind == "event":
            if not walk.anchored:
                walk.stop(*_unanchored(walk.header))
                return
            row = _event_row(entry)
            if row is None:
                walk.stop(walk.last_seq + 1, "changed_content", f"{entry.where} lacks a field")
                return
            yield row
        elif kind == "checkpoint":
            fault = _checkpoint_fault(walk, entry)
            if fault is not None:
                walk.faults.append(fault)
                return
            walk.checkpoints += 1
        elif kind == "trailer":
            walk.trailer = entry
        else:
            walk.stop(walk.last_seq + 1, "changed_content", f"{entry.where} is of no known type")
            return


def _unanchored(header: Header) -> tuple[int, str, str]:
    return (
        header.start_seq - 1,
        "bad_checkpoint",
        f"the export starts at seq {header.start_seq} but no signed purge checkpoint vouches "
        f"for seq {header.start_seq - 1} with hash {header.start_hash}",
    )


def _walk_chain(walk: _Walk, entries: Iterator[Entry]) -> None:
    steps = chain.verify_events(
        _rows(walk, entries), start_seq=walk.header.start_seq, start_hash=walk.header.start_hash
    )
    try:
        for step in steps:
            if isinstance(step, Fault):
                walk.faults.append(step)
                return
            walk.advance(*step)
    except TypeError as exc:  # a value the canonical encoding refuses (an integer beyond 64 bits)
        walk.stop(walk.last_seq + 1, "changed_content", f"an event holds an invalid value: {exc}")


def _walk_filtered(walk: _Walk, entries: Iterator[Entry]) -> None:
    """Each event against its own hash, in increasing seq: the links between them are not
    there to check."""
    for row in _rows(walk, entries):
        seq, event_id = row[1], row[2]
        if row[0] != walk.header.chain_id:
            walk.stop(seq, "changed_content", f"event {event_id} is of chain {row[0]}")
            return
        if seq <= walk.last_seq:
            walk.stop(seq, "reordered", f"seq {seq} appears after seq {walk.last_seq}")
            return
        try:
            intact = chain.event_hash(row[:16]) == row[16]
        except TypeError:
            intact = False
        if not intact:
            walk.stop(seq, "changed_content", f"event {event_id} at seq {seq}: changed content")
            return
        walk.advance(seq, row[16])


def _trailer_fault(walk: _Walk) -> Fault | None:
    """The trailer signs where the export ends; the events must end exactly there."""
    if walk.trailer is None:
        detail = f"the export ends after seq {walk.last_seq} without its trailer"
        return Fault(walk.last_seq + 1, "truncated_tail", detail)
    trailer = walk.trailer.value or {}
    last_seq, last_hash = _int(trailer.get("last_seq")), _text(trailer.get("last_hash"))
    count = _int(trailer.get("count"))
    if last_seq is None or last_hash is None or count is None:
        return Fault(walk.last_seq + 1, "bad_trailer", "the trailer lacks a field")
    message = chain.export_message(
        chain_id=walk.header.chain_id,
        last_seq=last_seq,
        last_hash=last_hash,
        exported_at=walk.header.exported_at,
    )
    if not _genuine(walk.key, message, trailer.get("signature")):
        return Fault(last_seq, "bad_trailer", "the trailer has a bad signature")
    if last_seq > walk.last_seq:
        return Fault(
            walk.last_seq + 1,
            "truncated_tail",
            f"events after seq {walk.last_seq} are missing (the trailer signs seq {last_seq})",
        )
    if last_seq < walk.last_seq:
        return Fault(last_seq + 1, "bad_trailer", f"events follow seq {last_seq}, the signed end")
    if last_hash != walk.last_hash:
        return Fault(last_seq, "bad_trailer", f"the trailer signed another hash at seq {last_seq}")
    if count != walk.count:
        return Fault(
            last_seq, "bad_trailer", f"the trailer counts {count} events, not {walk.count}"
        )
    return None


def verify_entries(entries: Iterable[Entry], *, public_key_pem: str | None = None) -> ExportVerdict:
    """Verify an export given as its records (see `ndjson_entries`, `json_entries`)."""
    pending = iter(entries)
    try:
        header = _header(next(pending, None))
        key = _public_key(public_key_pem or header.public_key_pem)
    except Unverifiable as exc:
        return ExportVerdict(ok=False, fault=Fault(0, "malformed", str(exc)))
    source: KeySource = "given" if public_key_pem else "export"
    walk = _Walk(
        header=header,
        key=key,
        last_seq=header.start_seq - 1,
        last_hash=header.start_hash,
        anchored=header.start_seq == 1,
    )
    if header.filtered:
        _walk_filtered(walk, pending)
    else:
        _walk_chain(walk, pending)
    if not walk.faults and not walk.anchored:
        walk.stop(*_unanchored(header))
    if not walk.faults:
        trailer_fault = _trailer_fault(walk)
        if trailer_fault is not None:
            walk.faults.append(trailer_fault)
    # The chain walk may read one record ahead before it reports; the earliest seq is the answer.
    fault = min(walk.faults, key=lambda f: f.seq) if walk.faults else None
    notes = [FILTERED_NOTE] if header.filtered else []
    if source == "export":
        notes.append(KEY_FROM_EXPORT_NOTE)
    elif not _same_key(key, header.public_key_pem):
        notes.append("The export names another public key than the one given.")
    return ExportVerdict(
        ok=fault is None,
        fault=fault,
        chain_id=header.chain_id,
        filtered=header.filtered,
        chain_checked=not header.filtered,
        key_source=source,
        events_checked=walk.count,
        first_seq=walk.first_seq,
        last_seq=walk.last_seq,
        checkpoints_checked=walk.checkpoints,
        notes=tuple(notes),
    )


def _same_key(key: Ed25519PublicKey, pem: str) -> bool:
    try:
        return _public_key(pem).public_bytes_raw() == key.public_bytes_raw()
    except Unverifiable:
        return False


def verify_file(path: str | Path, *, public_key_pem: str | None = None) -> ExportVerdict:
    """Verify an NDJSON or JSON export file; NDJSON is streamed line by line."""
    with open(path, "rb") as file:
        opening = _object(file.readline())
        file.seek(0)
        if opening is not None and opening.get("type") == "header":
            return verify_entries(ndjson_entries(file), public_key_pem=public_key_pem)
        text = file.read()
    try:
        document = json.loads(text)
    except ValueError as exc:
        # A JSON export begins with `{` and ends with `}`: the start without the end is a file
        # cut short.
        kept = text.strip()
        cut = kept.startswith(b"{") and not kept.endswith(b"}")
        kind = "truncated_tail" if cut else "malformed"
        return ExportVerdict(ok=False, fault=Fault(0, kind, f"not a readable export: {exc}"))
    return verify_entries(json_entries(document), public_key_pem=public_key_pem)
