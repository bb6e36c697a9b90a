"""Offline verification of exports: `tenantry.audit.offline` and the standalone script.

Every tampering of an export (a flipped byte, a deleted, swapped or appended line, a cut file, a
forged signature, a rewritten and re-signed chain) is found at the right seq with the right kind,
and the standard-library script `scripts/verify_audit_export.py` gives the same verdict as the
package. Its pure-Python Ed25519 agrees with `cryptography`'s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import PASSWORD, Factory, Tenant
from support.audit_support import (
    SCRIPT,
    export_body,
    lines_of,
    outcome,
    script_outcome,
    script_verdict,
    seed_events,
    server_key,
    write_lines,
)
from tenantry.audit import chain, offline, service
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.kit.security import public_key_pem


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verify_audit_export", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = _load_script()


# ---- the script's Ed25519 against cryptography's ----


def test_rfc8032_test_vector_1() -> None:
    secret = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
        "1cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    key = Ed25519PrivateKey.from_private_bytes(secret)
    assert key.public_key().public_bytes_raw() == public
    assert key.sign(b"") == signature
    assert script.ed25519_verify(public, b"", signature)
    assert not script.ed25519_verify(public, b"x", signature)


def _cryptography_says(public: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _flip(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


@pytest.mark.parametrize("size", [0, 1, 64, 1000])
def test_pure_python_ed25519_agrees_with_cryptography(size: int) -> None:
    key = Ed25519PrivateKey.generate()
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    public = key.public_key().public_bytes_raw()
    message = os.urandom(size)
    signature = key.sign(message)
    order = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(signature[32:], "little")
    cases = {
        "genuine": (public, message, signature),
        "R changed": (public, message, _flip(signature, 3)),
        "S changed": (public, message, _flip(signature, 40)),
        "S + L (not canonical)": (
            public,
            message,
            signature[:32] + (s + order).to_bytes(32, "little"),
        ),
        "other message": (public, message + b"!", signature),
        "other key": (other, message, signature),
        "cut signature": (public, message, signature[:63]),
    }
    for name, (pub, msg, sig) in cases.items():
        expected = name == "genuine"
        if len(sig) == 64:
            assert _cryptography_says(pub, msg, sig) is expected, name
        assert script.ed25519_verify(pub, msg, sig) is expected, name


def test_script_reads_the_servers_pem() -> None:
    notary = service.Notary("some-server-secret-" + "x" * 30)
    raw = notary.public_key.public_bytes_raw()
    assert script.public_key_of(notary.public_key_pem) == raw
    with pytest.raises(script.Bad):
        script.public_key_of("-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----")


# ---- an export to tamper with ----


@pytest.fixture
def exported(
    client: TestClient, factory: Factory, database: Database, clock: FrozenClock, tmp_path: Path
) -> tuple[Tenant, bytes]:
    """An NDJSON export of a chain of 15 events with a checkpoint at seq 12:
    header, events 1-12, checkpoint, events 13-15, trailer."""
    tenant = factory.tenant("Tamper Proof")
    seed_events(database, clock, org_id=tenant.org_id, count=10)
    resp = client.post(f"/api/v1/orgs/{tenant.org_id}/audit-checkpoints", headers=tenant.headers)
    assert resp.status_code == 201, resp.text
    seed_events(database, clock, org_id=tenant.org_id, count=3)
    body = export_body(client, tenant)
    kinds = [(r["type"], r.get("seq")) for r in lines_of(body)]
    assert kinds == [
        ("header", None),
        *[("event", n) for n in range(1, 13)],
        ("checkpoint", 12),
        *[("event", n) for n in range(13, 16)],
        ("trailer", None),
    ]
    return tenant, body


def _line_of(lines: list[bytes], kind: str, seq: int | None = None) -> int:
    for index, line in enumerate(lines):
        record = json.loads(line)
        if record["type"] == kind and (seq is None or record.get("seq") == seq):
            return index
    raise AssertionError(f"no {kind} {seq}")


def flip_a_byte_of_an_event(lines: list[bytes]) -> bytes:
    index = _line_of(lines, "event", 5)
    at = lines[index].index(b'"team.updated"') + len(b'"team.update')
    lines[index] = _flip(lines[index], at)  # team.updated -> team.updatee
    return b"".join(lines)


def flip_a_byte_that_breaks_the_line(lines: list[bytes]) -> bytes:
    index = _line_of(lines, "event", 7)
    lines[index] = _flip(lines[index], 0)  # "{" -> "z"
    return b"".join(lines)


def delete_an_event(lines: list[bytes]) -> bytes:
    del lines[_line_of(lines, "event", 6)]
    return b"".join(lines)


def delete_the_event_a_checkpoint_signs(lines: list[bytes]) -> bytes:
    del lines[_line_of(lines, "event", 12)]
    return b"".join(lines)


def swap_two_events(lines: list[bytes]) -> bytes:
    a, b = _line_of(lines, "event", 8), _line_of(lines, "event", 9)
    lines[a], lines[b] = lines[b], lines[a]
    return b"".join(lines)


def cut_the_tail(lines: list[bytes]) -> bytes:
    return b"".join(lines[: _line_of(lines, "event", 14)])


def cut_in_the_middle_of_a_line(lines: list[bytes]) -> bytes:
    index = _line_of(lines, "event", 14)
    return b"".join(lines[:index]) + lines[index][:50]


def drop_the_trailer(lines: list[bytes]) -> bytes:
    return b"".join(lines[:-1])


def drop_the_last_event_but_keep_the_trailer(lines: list[bytes]) -> bytes:
    del lines[_line_of(lines, "event", 15)]
    return b"".join(lines)


def _edit(lines: list[bytes], index: int, change: Callable[[dict[str, Any]], None]) -> bytes:
    record = json.loads(lines[index])
    change(record)
    lines[index] = json.dumps(record).encode() + b"\n"
    return b"".join(lines)


def _forge(signature: str) -> str:
    return ("1" if signature[0] != "1" else "2") + signature[1:]


def forge_the_checkpoint_signature(lines: list[bytes]) -> bytes:
    def forge(cp: dict[str, Any]) -> None:
        cp["signature"] = _forge(cp["signature"])

    return _edit(lines, _line_of(lines, "checkpoint"), forge)


def move_the_checkpoint(lines: list[bytes]) -> bytes:
    line = lines.pop(_line_of(lines, "checkpoint"))
    lines.insert(_line_of(lines, "event", 13) + 1, line)
    return b"".join(lines)


def forge_the_trailer_signature(lines: list[bytes]) -> bytes:
    def forge(trailer: dict[str, Any]) -> None:
        trailer["signature"] = _forge(trailer["signature"])

    return _edit(lines, _line_of(lines, "trailer"), forge)


def append_an_event_after_the_trailer(lines: list[bytes]) -> bytes:
    return b"".join([*lines, lines[_line_of(lines, "event", 15)]])


def change_a_personal_detail(lines: list[bytes]) -> bytes:
    def change(event: dict[str, Any]) -> None:
        event["ip"] = "203.0.113.99"

    return _edit(lines, _line_of(lines, "event", 3), change)


def drop_the_header(lines: list[bytes]) -> bytes:
    return b"".join(lines[1:])


def claim_a_later_start(lines: list[bytes]) -> bytes:
    """Drop events 1-3 and say the export starts at 4 (after its hash): no purge vouches."""

    def start_later(header: dict[str, Any]) -> None:
        header["start_seq"] = 4
        header["start_hash"] = json.loads(lines[_line_of(lines, "event", 3)])["hash"]

    body = _edit(lines, 0, start_later)
    kept = body.splitlines(keepends=True)
    return b"".join(kept[:1] + kept[4:])


TAMPERINGS: dict[
    str, tuple[Callable[[list[bytes]], bytes], tuple[bool, int | None, str | None]]
] = {
    "flip a byte of an event": (flip_a_byte_of_an_event, (False, 5, "changed_content")),
    "flip a byte that breaks the line": (
        flip_a_byte_that_breaks_the_line,
        (False, 7, "changed_content"),
    ),
    "delete an event": (delete_an_event, (False, 6, "missing_event")),
    "delete the event a checkpoint signs": (
        delete_the_event_a_checkpoint_signs,
        (False, 12, "missing_event"),
    ),
    "swap two events": (swap_two_events, (False, 8, "reordered")),
    "cut the tail": (cut_the_tail, (False, 14, "truncated_tail")),
    "cut in the middle of a line": (cut_in_the_middle_of_a_line, (False, 14, "truncated_tail")),
    "drop the trailer": (drop_the_trailer, (False, 16, "truncated_tail")),
    "drop the last event, keep the trailer": (
        drop_the_last_event_but_keep_the_trailer,
        (False, 15, "truncated_tail"),
    ),
    "forge the checkpoint signature": (
        forge_the_checkpoint_signature,
        (False, 12, "bad_checkpoint"),
    ),
    "move the checkpoint": (move_the_checkpoint, (False, 12, "bad_checkpoint")),
    "forge the trailer signature": (forge_the_trailer_signature, (False, 15, "bad_trailer")),
    "append an event after the trailer": (
        append_an_event_after_the_trailer,
        (False, 16, "bad_trailer"),
    ),
    "drop the header": (drop_the_header, (False, 0, "malformed")),
    "claim a later start": (claim_a_later_start, (False, 3, "bad_checkpoint")),
    # Personal details are outside the hash on purpose (erasure removes them): not a fault.
    "change a personal detail": (change_a_personal_detail, (True, None, None)),
}


def test_an_untouched_export_verifies_in_both(
    exported: tuple[Tenant, bytes], client: TestClient, tmp_path: Path
) -> None:
    _, body = exported
    path = tmp_path / "export.ndjson"
    path.write_bytes(body)
    key = tmp_path / "server.pem"
    key.write_text(server_key(client))
    verdict = offline.verify_file(path, public_key_pem=key.read_text())
    assert outcome(verdict) == (True, None, None)
    assert (verdict.events_checked, verdict.first_seq, verdict.last_seq) == (15, 1, 15)
    assert (verdict.checkpoints_checked, verdict.key_source, verdict.notes) == (1, "given", ())
    code, from_script = script_verdict(path, key)
    assert code == 0
    assert script_outcome(from_script) == (True, None, None)
    assert from_script["events_checked"] == 15 and from_script["checkpoints_checked"] == 1


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_tampering_is_found_at_the_right_seq_by_both(
    exported: tuple[Tenant, bytes], tmp_path: Path, name: str
) -> None:
    tamper, expected = TAMPERINGS[name]
    _, body = exported
    path = tmp_path / "tampered.ndjson"
    path.write_bytes(tamper(body.splitlines(keepends=True)))
    assert path.read_bytes() != body
    assert outcome(offline.verify_file(path)) == expected
    code, from_script = script_verdict(path)
    assert script_outcome(from_script) == expected
    assert code == (0 if expected[0] else 1)


def _sign_with(key: Ed25519PrivateKey, message: bytes) -> str:
    return key.sign(message).hex()


def rewrite_and_reseal(body: bytes, forger: Ed25519PrivateKey) -> bytes:
    """What a forger with database access and a key of their own could make: event 5 changed,
    every later hash recomputed, checkpoint and trailer signed anew, and the header naming the
    forger's key."""
    records = lines_of(body)
    header = records[0]
    header["public_key_pem"] = public_key_pem(forger.public_key())
    previous = header["start_hash"]
    for record in records[1:]:
        if record["type"] == "event":
            if record["seq"] == 5:
                record["summary"] = {"n": 3, "name": "nothing to see here"}
            record["prev_hash"] = previous
            record["hash"] = hashlib.sha256(
                chain.canonical(chain.event_row(record)[:16])
            ).hexdigest()
            previous = record["hash"]
        elif record["type"] == "checkpoint":
            record["hash"] = previous
            record["signature"] = _sign_with(
                forger,
                chain.checkpoint_message(
                    chain_id=record["chain_id"],
                    seq=record["seq"],
                    hash=previous,
                    created_at=record["created_at"],
                    purged_through=record["purged_through"],
                ),
            )
        elif record["type"] == "trailer":
            record["last_hash"] = previous
            record["signature"] = _sign_with(
                forger,
                chain.export_message(
                    chain_id=header["chain_id"],
                    last_seq=record["last_seq"],
                    last_hash=previous,
                    exported_at=header["exported_at"],
                ),
            )
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def test_a_resealed_rewrite_passes_only_against_its_own_key(
    exported: tuple[Tenant, bytes], client: TestClient, tmp_path: Path
) -> None:
    _, body = exported
    path = tmp_path / "forged.ndjson"
    path.write_bytes(rewrite_and_reseal(body, Ed25519PrivateKey.generate()))
    key = tmp_path / "server.pem"
    key.write_text(server_key(client))
    # Against the key the file names, it is consistent, and the verdict says that is all.
    own = offline.verify_file(path)
    assert outcome(own) == (True, None, None)
    assert own.key_source == "export" and offline.KEY_FROM_EXPORT_NOTE in own.notes
    code, from_script = script_verdict(path)
    assert (code, from_script["ok"], from_script["key_source"]) == (0, True, "export")
    # Against the server's key, the first signature it meets gives it away.
    expected = (False, 12, "bad_checkpoint")
    given = offline.verify_file(path, public_key_pem=key.read_text())
    assert outcome(given) == expected and given.key_source == "given"
    assert "another public key" in " ".join(given.notes)
    code, from_script = script_verdict(path, key)
    assert (code, script_outcome(from_script)) == (1, expected)


def test_another_servers_key_refuses_the_export(
    exported: tuple[Tenant, bytes], tmp_path: Path
) -> None:
    _, body = exported
    path = tmp_path / "export.ndjson"
    path.write_bytes(body)
    stranger = tmp_path / "stranger.pem"
    stranger.write_text(service.Notary("another-server-" + "y" * 40).public_key_pem)
    assert outcome(offline.verify_file(path, public_key_pem=stranger.read_text())) == (
        False,
        12,
        "bad_checkpoint",
    )
    _, from_script = script_verdict(path, stranger)
    assert script_outcome(from_script) == (False, 12, "bad_checkpoint")


# ---- JSON exports, filtered exports, purged chains ----


def test_json_export_tampering(
    exported: tuple[Tenant, bytes], client: TestClient, tmp_path: Path
) -> None:
    tenant, _ = exported
    document = json.loads(export_body(client, tenant, "json"))
    path = tmp_path / "export.json"
    path.write_text(json.dumps(document))
    assert outcome(offline.verify_file(path)) == (True, None, None)
    document["events"][4]["action"] = "team.deleted"
    path.write_text(json.dumps(document))
    assert outcome(offline.verify_file(path)) == (False, 5, "changed_content")
    document["events"][4]["action"] = "team.updated"
    document["checkpoints"][0]["signature"] = _forge(document["checkpoints"][0]["signature"])
    path.write_text(json.dumps(document))
    assert outcome(offline.verify_file(path)) == (False, 12, "bad_checkpoint")
    text = export_body(client, tenant, "json")
    path.write_bytes(text[: len(text) // 2])
    assert outcome(offline.verify_file(path))[2] == "truncated_tail"


def test_filtered_export_checks_each_event_and_its_end(
    client: TestClient, factory: Factory, database: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    tenant = factory.tenant("Filtered")
    seed_events(database, clock, org_id=tenant.org_id, count=4, action="team.updated")
    seed_events(database, clock, org_id=tenant.org_id, count=4, action="billing.changed")
    body = export_body(client, tenant, query="action=billing.")
    records = lines_of(body)
    assert records[0]["filtered"] is True and records[0]["filters"] == {"action": "billing."}
    assert [r["seq"] for r in records if r["type"] == "event"] == [6, 7, 8, 9]
    path = write_lines(tmp_path / "filtered.ndjson", records)
    verdict = offline.verify_file(path)
    assert outcome(verdict) == (True, None, None)
    assert (verdict.chain_checked, verdict.events_checked) == (False, 4)
    assert offline.FILTERED_NOTE in verdict.notes
    _, from_script = script_verdict(path)
    assert script_outcome(from_script) == (True, None, None)
    assert from_script["chain_checked"] is False

    cases: dict[str, tuple[list[dict[str, Any]], tuple[bool, int | None, str | None]]] = {}
    changed = json.loads(json.dumps(records))
    changed[2]["target_id"] = "team_forged"
    cases["changed"] = (changed, (False, 7, "changed_content"))
    cases["last one dropped"] = (records[:4] + records[5:], (False, 9, "truncated_tail"))
    swapped = [records[0], records[2], records[1], *records[3:]]
    cases["swapped"] = (swapped, (False, 6, "reordered"))
    for name, (tampered, expected) in cases.items():
        path = write_lines(tmp_path / f"{name}.ndjson", tampered)
        assert outcome(offline.verify_file(path)) == expected, name
        assert script_outcome(script_verdict(path)[1]) == expected, name


def test_a_purged_chain_exports_from_its_signed_anchor(
    app: FastAPI,
    client: TestClient,
    factory: Factory,
    database: Database,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    tenant = factory.tenant("Retained")
    seed_events(database, clock, org_id=tenant.org_id, count=9)
    clock.advance(days=40)
    seed_events(database, clock, org_id=tenant.org_id, count=3)
    with database.session(write=True) as session:
        purged = service.purge_before(
            session,
            app.state.notary,
            chain_id=tenant.org_id,
            cutoff=clock.now() - timedelta(days=30),
            now=clock.now(),
        )
        session.commit()
    assert purged == 10
    signed_in = client.post(
        "/api/v1/auth/login", json={"email": tenant.owner_email, "password": PASSWORD}
    )
    tenant = dataclasses.replace(tenant, token=signed_in.json()["access_token"])  # 40 days on
    records = lines_of(export_body(client, tenant))
    header = records[0]
    assert header["start_seq"] == 11
    assert [r["type"] for r in records[:2]] == ["header", "checkpoint"]
    path = write_lines(tmp_path / "purged.ndjson", records)
    verdict = offline.verify_file(path)
    assert outcome(verdict) == (True, None, None)
    assert (verdict.first_seq, verdict.last_seq) == (11, 13)
    assert script_outcome(script_verdict(path)[1]) == (True, None, None)
    # Without the purge checkpoint, nothing vouches for where the export starts.
    path = write_lines(tmp_path / "unanchored.ndjson", [records[0], *records[2:]])
    expected = (False, 10, "bad_checkpoint")
    assert outcome(offline.verify_file(path)) == expected
    assert script_outcome(script_verdict(path)[1]) == expected
