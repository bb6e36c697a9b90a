#!/usr/bin/env python3
"""Verify a Tenantry audit export (NDJSON) with nothing but the Python standard library.

    python verify_audit_export.py EXPORT.ndjson [--public-key tenantry-audit.pem] [--json]

Prints `OK ...` and exits 0 when the export is intact, else the first bad sequence number, what
is wrong with it, and exits 1. Give the server's public key (GET /api/v1/audit/public-key, saved
as a PEM file) to check that Tenantry made the file; without it the key named in the export is
used, which shows only that the file is consistent, since whoever rewrote it could have signed it
with a key of their own.

What is checked, line by line in constant memory:
- each event's hash: SHA-256 over the UTF-8 bytes of the JSON array of its fields (in FIELDS
  order, no spaces, keys sorted, non-ASCII as itself) and the hash of the event before it; seqs
  gapless from the header's start_seq, the first linking to its start_hash;
- each checkpoint's Ed25519 signature over ["tenantry-audit-checkpoint", chain_id, seq, hash,
  created_at, purged_through], and that it signs the hash of the event it follows; when the
  export starts after seq 1 (events purged by retention), a purge checkpoint must vouch for it;
- the trailer's signature over ["tenantry-audit-export", chain_id, last_seq, last_hash,
  exported_at], and that the events end exactly where it says, as many as it counts.

A filtered export (header "filtered": true) holds some events only: each is checked against its
own hash, and the chain linking them cannot be. Personal details ("ip", "user_agent",
"personal") are outside the hash, so that erasing them leaves the chain intact.

Ed25519 verification (RFC 8032) is written out below in plain integer arithmetic, so the script
needs no third-party package; it is slow (milliseconds per signature), which is fine for the
handful of signatures an export holds. It gives the same verdicts as
`tenantry audit verify --file` (tenantry.audit.offline).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any

FORMAT = "tenantry-audit-export/1"
GENESIS = "0" * 64
FIELDS = (
    "chain_id", "seq", "id", "org_id", "team_id", "actor_type", "actor_id", "action",
    "target_type", "target_id", "result", "request_id", "occurred_at", "summary",
    "personal_digest", "prev_hash",
)  # fmt: skip


class Bad(Exception):
    """The first thing wrong: a seq, a kind and a sentence."""

    def __init__(self, seq: int, kind: str, detail: str) -> None:
        super().__init__(f"seq {seq}: {kind}: {detail}")
        self.seq, self.kind, self.detail = seq, kind, detail


# ---- Ed25519 (RFC 8032, section 5.1), verification only ----

Q = 2**255 - 19  # the field prime
L = 2**252 + 27742317777372353535851937790883648493  # the order of the base point
D = -121665 * pow(121666, Q - 2, Q) % Q
SQRT_M1 = pow(2, (Q - 1) // 4, Q)
Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z


def _add(p: Point, q: Point) -> Point:
    a = (p[1] - p[0]) * (q[1] - q[0]) % Q
    b = (p[1] + p[0]) * (q[1] + q[0]) % Q
    c = 2 * p[3] * q[3] * D % Q
    d = 2 * p[2] * q[2] % Q
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % Q, g * h % Q, f * g % Q, e * h % Q)


def _times(n: int, p: Point) -> Point:
    total: Point = (0, 1, 1, 0)
    while n:
        if n & 1:
            total = _add(total, p)
        p = _add(p, p)
        n >>= 1
    return total


def _x_of(y: int, sign: int) -> int | None:
    if y >= Q:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, Q - 2, Q) % Q
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (Q + 3) // 8, Q)
    if (x * x - x2) % Q:
        x = x * SQRT_M1 % Q
    if (x * x - x2) % Q:
        return None
    return Q - x if (x & 1) != sign else x


def _decode(data: bytes) -> Point | None:
    y = int.from_bytes(data, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _x_of(y, sign)
    return None if x is None else (x, y, 1, x * y % Q)


def _encode(p: Point) -> bytes:
    z = pow(p[2], Q - 2, Q)
    x, y = p[0] * z % Q, p[1] * z % Q
    return (y | (x & 1) << 255).to_bytes(32, "little")


BASE = _decode((4 * pow(5, Q - 2, Q) % Q).to_bytes(32, "little"))


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` is `public`'s over `message`: [s]B - [h]A must encode to R."""
    if len(public) != 32 or len(signature) != 64 or BASE is None:
        return False
    a = _decode(public)
    s = int.from_bytes(signature[32:], "little")
    if a is None or s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    minus_a: Point = (Q - a[0], a[1], a[2], Q - a[3])
    return _encode(_add(_times(s, BASE), _times(h, minus_a))) == signature[:32]


# The DER prefix of an Ed25519 SubjectPublicKeyInfo, the body of a "PUBLIC KEY" PEM block.
SPKI_ED25519 = bytes.fromhex("302a300506032b6570032100")


def public_key_of(pem: str) -> bytes:
    body = "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))
    try:
        der = base64.b64decode(body, validate=True)
    except ValueError:
        raise Bad(0, "malformed", "the public key cannot be read") from None
    if len(der) != 44 or not der.startswith(SPKI_ED25519):
        raise Bad(0, "malformed", "the public key is not an Ed25519 key")
    return der[12:]


def genuine(public: bytes, message: bytes, signature: Any) -> bool:
    try:
        raw = bytes.fromhex(signature)
    except (TypeError, ValueError):
        return False
    return ed25519_verify(public, message, raw)


# ---- the export ----


def canonical(values: list[Any]) -> bytes:
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def as_int(value: Any) -> int | None:
    """An integer of the JSON (true and false are not integers here, unlike in Python)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def records(lines: Iterable[bytes]) -> Iterator[tuple[str, dict[str, Any] | None, bool]]:
    """(where, record or None when unreadable, whether it is the last line); blank lines skipped."""
    numbered = ((n, line) for n, line in enumerate(lines, start=1) if line.strip())
    current = next(numbered, None)
    while current is not None:
        following = next(numbered, None)
        try:
            value = json.loads(current[1])
        except ValueError:
            value = None
        value = value if isinstance(value, dict) else None
        yield f"line {current[0]}", value, value is None and following is None
        current = following


class Walk:
    """One pass over the export, top to bottom."""

    def __init__(self, header: dict[str, Any], public: bytes) -> None:
        self.header, self.public = header, public
        self.chain_id: str = header["chain_id"]
        self.start_seq: int = header["start_seq"]
        self.start_hash: str = header["start_hash"]
        self.filtered: bool = header["filtered"]
        self.last_seq, self.last_hash = self.start_seq - 1, self.start_hash
        self.anchored = self.start_seq == 1
        self.count, self.checkpoints = 0, 0
        self.first_seq: int | None = None
        self.trailer: dict[str, Any] | None = None
        self.faults: list[Bad] = []

    def unanchored(self) -> Bad:
        return Bad(
            self.start_seq - 1,
            "bad_checkpoint",
            f"the export starts at seq {self.start_seq} but no signed purge checkpoint vouches "
            f"for seq {self.start_seq - 1} with hash {self.start_hash}",
        )

    def checkpoint(self, where: str, cp: dict[str, Any]) -> None:
        seq, digest, cp_id = as_int(cp.get("seq")), as_text(cp.get("hash")), cp.get("id")
        purged = as_int(cp.get("purged_through"))
        created_at, chain_id = as_text(cp.get("created_at")), as_text(cp.get("chain_id"))
        if seq is None or digest is None or purged is None:
            raise Bad(self.last_seq + 1, "bad_checkpoint", f"{where}: a checkpoint lacks a field")
        if created_at is None or chain_id is None:
            raise Bad(seq, "bad_checkpoint", f"{where}: a checkpoint lacks a field")
        message = canonical(
            ["tenantry-audit-checkpoint", chain_id, seq, digest, created_at, purged]
        )
        if not genuine(self.public, message, cp.get("signature")):
            raise Bad(seq, "bad_checkpoint", f"checkpoint {cp_id} has a bad signature")
        if chain_id != self.chain_id:
            raise Bad(seq, "bad_checkpoint", f"checkpoint {cp_id} is of chain {chain_id}")
        if seq < self.start_seq:
            if seq == self.start_seq - 1 and purged == seq:
                self.anchored = self.anchored or digest == self.start_hash
        elif self.filtered:
            if seq == self.last_seq and digest != self.last_hash:
                raise Bad(seq, "bad_checkpoint", f"checkpoint {cp_id} signed another hash at {seq}")
        elif seq > self.last_seq:
            raise Bad(
                self.last_seq + 1,
                "missing_event",
                f"seq {self.last_seq + 1} is missing (checkpoint {cp_id} signs seq {seq})",
            )
        elif seq < self.last_seq:
            raise Bad(seq, "bad_checkpoint", f"checkpoint {cp_id} of seq {seq} is out of place")
        elif digest != self.last_hash:
            raise Bad(seq, "bad_checkpoint", f"checkpoint {cp_id} signed another hash at {seq}")
        self.checkpoints += 1

    def rows(
        self, pending: Iterator[tuple[str, dict[str, Any] | None, bool]]
    ) -> Iterator[list[Any]]:
        """Event rows (FIELDS + hash); other records are checked on the way. A problem is noted
        in `faults` and ends the rows."""
        for where, value, at_end in pending:
            try:
                if self.trailer is not None:
                    raise Bad(self.last_seq + 1, "bad_trailer", f"{where} follows the trailer")
                if value is None:
                    if at_end:  # a cut last line: the missing trailer tells
                        return
                    raise Bad(self.last_seq + 1, "changed_content", f"{where} is not a record")
                kind = value.get("type")
                if kind == "event":
                    if not self.anchored:
                        raise self.unanchored()
                    try:
                        row = [value[name] for name in FIELDS] + [value["hash"]]
                    except KeyError:
                        row = None
                    if row is None or as_int(row[1]) is None:
                        raise Bad(self.last_seq + 1, "changed_content", f"{where} lacks a field")
                    yield row
                elif kind == "checkpoint":
                    self.checkpoint(where, value)
                elif kind == "trailer":
                    self.trailer = value
                else:
                    raise Bad(self.last_seq + 1, "changed_content", f"{where} is of no known type")
            except Bad as bad:
                self.faults.append(bad)
                return

    def advance(self, seq: int, digest: str) -> None:
        self.last_seq, self.last_hash = seq, digest
        self.count += 1
        self.first_seq = seq if self.first_seq is None else self.first_seq

    def chain(self, pending: Iterator[tuple[str, dict[str, Any] | None, bool]]) -> None:
        """Each event must carry the next seq, match its hash and link to the one before."""
        rows = self.rows(pending)
        for row in rows:
            seq, prev, stored = row[1], row[15], row[16]
            expected = self.last_seq + 1
            if seq != expected:
                if seq < expected:
                    raise Bad(seq, "reordered", f"seq {seq} appears after seq {expected - 1}")
                following = next(rows, None)
                if following is not None and following[1] == expected:
                    raise Bad(expected, "reordered", f"seq {seq} appears before {expected}")
                raise Bad(expected, "missing_event", f"seq {expected} is missing")
            try:
                intact = hashlib.sha256(canonical(row[:16])).hexdigest() == stored
            except (TypeError, ValueError) as exc:
                detail = f"an event holds an invalid value: {exc}"
                raise Bad(expected, "changed_content", detail) from None
            if not intact or prev != self.last_hash:
                kind = "changed_content" if prev == self.last_hash else "reordered"
                raise Bad(seq, kind, f"event {row[2]} at seq {seq}: {kind.replace('_', ' ')}")
            self.advance(seq, stored)

    def some_events(self, pending: Iterator[tuple[str, dict[str, Any] | None, bool]]) -> None:
        """A filtered export: each event against its own hash, seqs increasing."""
        for row in self.rows(pending):
            seq, event_id = row[1], row[2]
            if row[0] != self.chain_id:
                raise Bad(seq, "changed_content", f"event {event_id} is of chain {row[0]}")
            if seq <= self.last_seq:
                raise Bad(seq, "reordered", f"seq {seq} appears after seq {self.last_seq}")
            try:
                intact = hashlib.sha256(canonical(row[:16])).hexdigest() == row[16]
            except (TypeError, ValueError):
                intact = False
            if not intact:
                raise Bad(seq, "changed_content", f"event {event_id} at seq {seq}: changed content")
            self.advance(seq, row[16])

    def check_trailer(self) -> None:
        if self.trailer is None:
            detail = f"the export ends after seq {self.last_seq} without its trailer"
            raise Bad(self.last_seq + 1, "truncated_tail", detail)
        last_seq, last_hash = as_int(self.trailer.get("last_seq")), self.trailer.get("last_hash")
        count = as_int(self.trailer.get("count"))
        if last_seq is None or not isinstance(last_hash, str) or count is None:
            raise Bad(self.last_seq + 1, "bad_trailer", "the trailer lacks a field")
        message = canonical(
            [
                "tenantry-audit-export",
                self.chain_id,
                last_seq,
                last_hash,
                self.header["exported_at"],
            ]
        )
        if not genuine(self.public, message, self.trailer.get("signature")):
            raise Bad(last_seq, "bad_trailer", "the trailer has a bad signature")
        if last_seq > self.last_seq:
            raise Bad(
                self.last_seq + 1,
                "truncated_tail",
                f"events after seq {self.last_seq} are missing (the trailer signs seq {last_seq})",
            )
        if last_seq < self.last_seq:
            raise Bad(last_seq + 1, "bad_trailer", f"events follow seq {last_seq}, the signed end")
        if last_hash != self.last_hash:
            raise Bad(last_seq, "bad_trailer", f"the trailer signed another hash at seq {last_seq}")
        if count != self.count:
            raise Bad(
                last_seq, "bad_trailer", f"the trailer counts {count} events, not {self.count}"
            )


def read_header(entry: tuple[str, dict[str, Any] | None, bool] | None) -> dict[str, Any]:
    header = entry[1] if entry is not None else None
    if header is None or header.get("type") != "header":
        raise Bad(0, "malformed", "the export does not begin with its header")
    if header.get("format") != FORMAT:
        raise Bad(0, "malformed", f"unknown export format {header.get('format')!r}")
    start_seq = as_int(header.get("start_seq"))
    fine = (
        isinstance(header.get("chain_id"), str)
        and start_seq is not None
        and start_seq >= 1
        and isinstance(header.get("start_hash"), str)
        and isinstance(header.get("public_key_pem"), str)
        and isinstance(header.get("exported_at"), str)
        and isinstance(header.get("filtered"), bool)
    )
    if not fine:
        raise Bad(0, "malformed", "the header lacks a field or holds one of the wrong type")
    return header


def verify(lines: Iterable[bytes], public_key_pem: str | None) -> dict[str, Any]:
    """The verdict: {"ok", "fault": {"seq", "kind", "detail"} or null, and what was checked}."""
    pending = records(lines)
    try:
        header = read_header(next(pending, None))
        public = public_key_of(public_key_pem or header["public_key_pem"])
    except Bad as bad:
        fault = {"seq": bad.seq, "kind": bad.kind, "detail": bad.detail}
        return {"ok": False, "fault": fault}
    walk = Walk(header, public)
    try:
        if walk.filtered:
            walk.some_events(pending)
        else:
            walk.chain(pending)
    except Bad as bad:
        walk.faults.append(bad)
    if not walk.faults and not walk.anchored:
        walk.faults.append(walk.unanchored())
    if not walk.faults:
        try:
            walk.check_trailer()
        except Bad as bad:
            walk.faults.append(bad)
    first = min(walk.faults, key=lambda bad: bad.seq) if walk.faults else None
    return {
        "ok": first is None,
        "fault": {"seq": first.seq, "kind": first.kind, "detail": first.detail} if first else None,
        "chain_id": walk.chain_id,
        "filtered": walk.filtered,
        "chain_checked": not walk.filtered,
        "key_source": "given" if public_key_pem else "export",
        "events_checked": walk.count,
        "first_seq": walk.first_seq,
        "last_seq": walk.last_seq,
        "checkpoints_checked": walk.checkpoints,
    }


def describe(verdict: dict[str, Any]) -> str:
    fault = verdict["fault"]
    if fault is not None:
        return f"FAILED at seq {fault['seq']}: {fault['kind']}: {fault['detail']}"
    span = f"seq {verdict['first_seq']}-{verdict['last_seq']}" if verdict["first_seq"] else "none"
    lines = [
        f"OK: chain {verdict['chain_id']}, {verdict['events_checked']} events ({span}), "
        f"{verdict['checkpoints_checked']} checkpoints, trailer signature valid"
    ]
    if verdict["filtered"]:
        lines.append("Filtered export: each event's own hash was checked, not the chain.")
    if verdict["key_source"] == "export":
        lines.append(
            "Key: the one named in the export, which shows the file is consistent, not who made "
            "it; pass --public-key with the server's key to check its origin."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a Tenantry audit export (NDJSON).")
    parser.add_argument("export", help="the .ndjson file, or - for stdin")
    parser.add_argument("--public-key", help="the server's audit public key, a PEM file")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    args = parser.parse_args(argv)
    pem = None
    if args.public_key:
        with open(args.public_key, encoding="utf-8") as file:
            pem = file.read()
    if args.export == "-":
        verdict = verify(sys.stdin.buffer, pem)
    else:
        with open(args.export, "rb") as file:
            verdict = verify(file, pem)
    print(json.dumps(verdict, indent=2) if args.json else describe(verdict))
    return 0 if verdict["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
