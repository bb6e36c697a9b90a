"""The hash chain's encoding, as pure functions with nothing but the standard library's meaning.

An event's hash is SHA-256 over the UTF-8 bytes of one JSON array (no spaces, object keys
sorted, non-ASCII characters as themselves):

    [chain_id, seq, id, org_id, team_id, actor_type, actor_id, action, target_type, target_id,
     result, request_id, occurred_at, summary, personal_digest, prev_hash]

`occurred_at` is ISO 8601 UTC with microseconds and a `Z`; absent values are `null`; the first
event of a chain has `prev_hash` = 64 zeros. JSON's own quoting makes the encoding delimiter-safe:
no value can imitate a field boundary. This is exactly
`json.dumps(fields, ensure_ascii=False, separators=(",", ":"), sort_keys=True)`; orjson produces
the same bytes faster, and `docs/audit.md` has a standalone verifier using only `json`.

A checkpoint signs (Ed25519) the same kind of array: ["tenantry-audit-checkpoint", chain_id, seq,
hash, created_at, purged_through]. An export's trailer signs ["tenantry-audit-export", chain_id,
last_seq, last_hash, exported_at], both times written as `timestamp` writes them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS_HASH = "0" * 64
FIELDS = (
    "chain_id", "seq", "id", "org_id", "team_id", "actor_type", "actor_id", "action",
    "target_type", "target_id", "result", "request_id", "occurred_at", "summary",
    "personal_digest", "prev_hash",
)  # fmt: skip
_SORTED = orjson.OPT_SORT_KEYS


def timestamp(moment: datetime) -> str:
    # Times the service makes are UTC already; astimezone would cost more than the formatting.
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    # isoformat is several times faster than strftime (every append and export writes one) and
    # writes the same text, "+00:00" aside, for every year strftime writes with four digits.
    if utc.year >= 1000:
        return utc.isoformat(timespec="microseconds")[:-6] + "Z"
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(fields: Sequence[Any]) -> bytes:
    return orjson.dumps(list(fields), option=_SORTED)


def event_hash(fields: Sequence[Any]) -> str:
    return hashlib.sha256(orjson.dumps(list(fields), option=_SORTED)).hexdigest()


def personal_digest(
    key: bytes, *, ip: str | None, user_agent: str | None, details: dict[str, Any]
) -> str:
    return hmac.new(key, canonical([ip, user_agent, details]), hashlib.sha256).hexdigest()


def personal_record(*, ip: str | None, user_agent: str | None, details: dict[str, Any]) -> bytes:
    """What a personal digest covers: the canonical array [ip, user_agent, details]."""
    return canonical([ip, user_agent, details])


def signed_digest(signer: Any, record: bytes) -> str:
    """`personal_digest` of a `personal_record`, with an HMAC state already keyed with the
    person's key (see `repository.subject_signer`): the same value as `personal_digest`."""
    mac = signer.copy()
    mac.update(record)
    return str(mac.hexdigest())


def checkpoint_message(
    *, chain_id: str, seq: int, hash: str, created_at: datetime | str, purged_through: int
) -> bytes:
    """What a checkpoint's signature covers. `created_at` may be given as the text an export
    carries, so a verifier signs over exactly the bytes it read."""
    when = created_at if isinstance(created_at, str) else timestamp(created_at)
    return canonical(["tenantry-audit-checkpoint", chain_id, seq, hash, when, purged_through])


EXPORT_FORMAT = "tenantry-audit-export/1"


def export_message(*, chain_id: str, last_seq: int, last_hash: str, exported_at: str) -> bytes:
    """What an export's trailer signature covers: the chain, the last event exported and the
    moment of export (as written in the header), so the file cannot be cut or extended unseen."""
    return canonical(["tenantry-audit-export", chain_id, last_seq, last_hash, exported_at])


def event_row(record: dict[str, Any]) -> list[Any]:
    """An exported event as `FIELDS` + [hash], the shape `verify_events` walks (KeyError when a
    field is absent)."""
    return [record[name] for name in FIELDS] + [record["hash"]]


def storable_summary(value: Any) -> Any:
    """Summaries hold strings, integers, booleans, null, lists and objects only: floats would
    encode differently across JSON libraries and break verification by third parties."""
    if isinstance(value, dict):
        return {str(k): storable_summary(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_summary(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


@dataclass(frozen=True)
class Fault:
    """The first thing wrong with a chain."""

    seq: int
    # changed_content | missing_event | reordered | truncated_tail | bad_checkpoint; exports add
    # bad_trailer (the signed end of an export disagrees) and malformed (not an export at all).
    kind: str
    detail: str


def verify_events(
    rows: Iterable[Sequence[Any]], *, start_seq: int = 1, start_hash: str = GENESIS_HASH
) -> Iterator[tuple[int, str] | Fault]:
    """Walk rows given as `FIELDS` + [hash], in stored order. Yields (seq, hash) for each good
    event and stops at the first Fault."""
    expected_seq, expected_prev = start_seq, start_hash
    pending = iter(rows)
    # The hot loop of verification: copying a blank SHA-256 state is about twice as fast as
    # creating one (OpenSSL looks the algorithm up on every new object).
    blank, dumps = hashlib.sha256(), orjson.dumps
    for row in pending:
        seq, prev, stored = row[1], row[15], row[16]
        if seq != expected_seq:
            if seq < expected_seq:
                yield Fault(seq, "reordered", f"seq {seq} appears after seq {expected_seq - 1}")
                return
            following = next(pending, None)
            if following is not None and following[1] == expected_seq:
                yield Fault(expected_seq, "reordered", f"seq {seq} appears before {expected_seq}")
            else:
                yield Fault(expected_seq, "missing_event", f"seq {expected_seq} is missing")
            return
        hasher = blank.copy()
        try:
            hasher.update(dumps(row[:16], option=_SORTED))
        except orjson.JSONEncodeError:
            # A stored value no encoder of the chain could have written (e.g. a 65-bit integer).
            hasher.update(b"\x00")
        if hasher.hexdigest() != stored or prev != expected_prev:
            # Content that no longer matches its hash, in its right place, was edited; content
            # that does not follow its predecessor was moved (or its link was edited).
            kind = "changed_content" if prev == expected_prev else "reordered"
            yield Fault(seq, kind, f"event {row[2]} at seq {seq}: {kind.replace('_', ' ')}")
            return
        yield seq, stored
        expected_seq, expected_prev = seq + 1, stored
