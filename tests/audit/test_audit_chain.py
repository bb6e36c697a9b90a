"""The audit trail's hash chain, attacked as someone with database access would attack it.

Each tamper is made straight in the database, past the append-only triggers (dropped or disabled
inside the attacker's own transaction), and must be reported by `service.verify_chain` and by
`GET /api/v1/orgs/{org}/audit-events/verify` with the first bad sequence number and the right
kind. Then: the triggers themselves, appends under concurrency, paging while events are written,
checkpoint signatures checked with nothing but the public key, and a property test that any
single change to any stored field is caught at that event.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, text, update
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError

from conftest import Factory, Tenant
from tenantry.audit import chain, fastverify, service
from tenantry.audit.models import (
    AuditChainHead,
    AuditCheckpoint,
    AuditEvent,
    AuditEventPersonal,
    AuditPurgePermit,
)
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.kit.ids import new_id
from tenantry.kit.pagination import encode_cursor

APPEND_ONLY = importlib.import_module("tenantry.migrations.versions.0002_audit_append_only")
EVENTS = AuditEvent.__table__
HEADS = AuditChainHead.__table__


# ---- the attacker's tools ----


@contextmanager
def tampering(database: Database) -> Iterator[Connection]:
    """A connection on which the append-only triggers do not fire, as for someone who owns the
    database: on SQLite the triggers are dropped and created again (the migration's own SQL), on
    PostgreSQL the table's user triggers are disabled and enabled again. Both happen inside the
    one transaction, so the triggers are back when it ends, whether it commits or rolls back."""
    postgres = database.dialect == "postgresql"
    with database.writer_engine.begin() as conn:
        if postgres:
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        else:
            for statement in APPEND_ONLY.SQLITE_DOWN:
                conn.execute(text(statement))
        yield conn
        if postgres:
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
        else:
            for statement in APPEND_ONLY.SQLITE_UP:
                conn.execute(text(statement))


@pytest.fixture(autouse=True)
def _wipe_tampered_events(database: Database) -> Iterator[None]:
    """Tampered events (moved to another chain, past the head) would stop the shared clean-up's
    purge permits: take them all out first, as the attacker could."""
    yield
    with tampering(database) as conn:
        conn.execute(delete(AuditEventPersonal))
        conn.execute(delete(AuditEvent))


def flip(value: str, at: int = 0) -> str:
    """`value` with one character changed (still valid text on both databases)."""
    if not value:
        return "a"
    at %= len(value)
    return value[:at] + ("b" if value[at] == "a" else "a") + value[at + 1 :]


def change(database: Database, chain_id: str, seq: int, /, **values: Any) -> None:
    with tampering(database) as conn:
        done = conn.execute(
            update(EVENTS)
            .where(EVENTS.c.chain_id == chain_id, EVENTS.c.seq == seq)
            .values(**values)
        )
        assert done.rowcount == 1


def remove(database: Database, org_id: str, *seqs: int) -> None:
    with tampering(database) as conn:
        done = conn.execute(
            delete(EVENTS).where(EVENTS.c.chain_id == org_id, EVENTS.c.seq.in_(seqs))
        )
        assert done.rowcount == len(seqs)


def event_at(database: Database, org_id: str, seq: int) -> AuditEvent:
    with database.session(write=False) as session:
        found = session.scalars(
            select(AuditEvent).where(AuditEvent.chain_id == org_id, AuditEvent.seq == seq)
        ).one()
        session.expunge(found)
        return found


def head_seq(database: Database, chain_id: str) -> int:
    with database.session(write=False) as session:
        head = session.get(AuditChainHead, chain_id)
        return head.seq if head is not None else 0


def stored_seqs(database: Database, chain_id: str) -> list[int]:
    with database.session(write=False) as session:
        return list(
            session.scalars(
                select(AuditEvent.seq).where(AuditEvent.chain_id == chain_id).order_by("seq")
            )
        )


# ---- verification, both ways ----


def verify_service(app: FastAPI, database: Database, chain_id: str) -> service.Verdict:
    """The verdict of one pass, checked to be the very verdict of a pass cut into spans that
    separate processes verify (fastverify)."""
    with database.session(write=False) as session:
        one = service.verify_chain(session, app.state.notary, chain_id=chain_id)
    with database.session(write=False) as session:
        spans = service.verify_chain(
            session, app.state.notary, chain_id=chain_id, workers=3, min_span=2
        )
    assert spans == one, "verification in spans disagrees with verification in one pass"
    return one


def verify_api(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    resp = client.get(f"/api/v1/orgs/{tenant.org_id}/audit-events/verify", headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def assert_intact(client: TestClient, app: FastAPI, database: Database, tenant: Tenant) -> None:
    verdict = verify_service(app, database, tenant.org_id)
    assert verdict.ok, verdict
    assert verdict.fault is None
    assert verdict.events_checked == verdict.last_seq == verdict.head_seq > 0
    body = verify_api(client, tenant)
    assert body["ok"] is True, body
    assert body["fault"] is None
    assert body["events_checked"] == verdict.events_checked


def assert_fault(
    client: TestClient, app: FastAPI, database: Database, tenant: Tenant, *, seq: int, kind: str
) -> None:
    verdict = verify_service(app, database, tenant.org_id)
    assert not verdict.ok
    assert verdict.fault is not None
    assert (verdict.fault.seq, verdict.fault.kind) == (seq, kind), verdict
    body = verify_api(client, tenant)
    assert body["ok"] is False
    assert (body["fault"]["seq"], body["fault"]["kind"]) == (seq, kind), body
    assert body["fault"]["detail"]


@pytest.fixture
def acme(client: TestClient, factory: Factory, database: Database) -> Tenant:
    """An org whose chain holds its onboarding events and eight team creations."""
    tenant = factory.tenant("Acme")
    # Names go into the chained summary: non-ASCII and quotes exercise the encoding.
    write_teams(client, tenant, [f'Équipe ✓ "{n}"' for n in range(8)])
    assert stored_seqs(database, tenant.org_id) == list(
        range(1, head_seq(database, tenant.org_id) + 1)
    )
    return tenant


def write_teams(client: TestClient, tenant: Tenant, names: list[str]) -> None:
    for name in names:
        resp = client.post(
            f"/api/v1/orgs/{tenant.org_id}/teams", headers=tenant.headers, json={"name": name}
        )
        assert resp.status_code == 201, resp.text


def make_checkpoint(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    resp = client.post(f"/api/v1/orgs/{tenant.org_id}/audit-checkpoints", headers=tenant.headers)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


# ---- (a) tampering is detected, at the right event ----


def test_an_untouched_chain_verifies(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    make_checkpoint(client, acme)
    assert_intact(client, app, database, acme)


@pytest.mark.parametrize(
    "field", ["action", "actor_id", "target_id", "request_id", "id", "personal_digest", "hash"]
)
def test_a_flipped_byte_is_changed_content(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant, field: str
) -> None:
    seq = 5
    original = getattr(event_at(database, acme.org_id, seq), field)
    assert original
    change(database, acme.org_id, seq, **{field: flip(original, at=3)})
    assert_fault(client, app, database, acme, seq=seq, kind="changed_content")


def test_a_changed_summary_is_changed_content(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    seq = head_seq(database, acme.org_id) - 1
    summary = dict(event_at(database, acme.org_id, seq).summary)
    assert summary
    key = sorted(summary)[0]
    summary[key] = flip(str(summary[key]))
    change(database, acme.org_id, seq, summary=summary)
    assert_fault(client, app, database, acme, seq=seq, kind="changed_content")


def test_a_moved_timestamp_is_changed_content(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    at = event_at(database, acme.org_id, 2).occurred_at
    change(database, acme.org_id, 2, occurred_at=at + timedelta(microseconds=1))
    assert_fault(client, app, database, acme, seq=2, kind="changed_content")


def test_a_timestamp_stored_in_another_text_form_is_read_for_what_it_means(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    """SQLite keeps timestamps as text. The same instant written another way is the same event
    (the ORM reads it so); another instant, however written, is a change."""
    if database.dialect != "sqlite":
        pytest.skip("PostgreSQL stores timestamps as timestamptz, not text")
    at = event_at(database, acme.org_id, 3).occurred_at
    same = at.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    with tampering(database) as conn:
        conn.execute(
            text("UPDATE audit_events SET occurred_at = :at WHERE chain_id = :org AND seq = 3"),
            {"at": same, "org": acme.org_id},
        )
    assert_intact(client, app, database, acme)
    later = (at + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    with tampering(database) as conn:
        conn.execute(
            text("UPDATE audit_events SET occurred_at = :at WHERE chain_id = :org AND seq = 3"),
            {"at": later, "org": acme.org_id},
        )
    assert_fault(client, app, database, acme, seq=3, kind="changed_content")


@pytest.mark.parametrize(
    "stored", ['{"name": ', '{"name": 123456789012345678901234567890}', "not json", "null"]
)
def test_an_unreadable_stored_summary_is_changed_content_not_a_crash(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant, stored: str
) -> None:
    if database.dialect != "sqlite":
        pytest.skip("PostgreSQL's jsonb column only holds valid JSON")
    with tampering(database) as conn:
        conn.execute(
            text("UPDATE audit_events SET summary = :s WHERE chain_id = :org AND seq = 4"),
            {"s": stored, "org": acme.org_id},
        )
    assert_fault(client, app, database, acme, seq=4, kind="changed_content")


def test_an_edit_of_the_first_event_is_found_at_seq_1(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    change(database, acme.org_id, 1, result="denied")
    assert_fault(client, app, database, acme, seq=1, kind="changed_content")


@pytest.mark.parametrize("seq", [1, 4])
def test_a_deleted_row_is_a_missing_event(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant, seq: int
) -> None:
    remove(database, acme.org_id, seq)
    assert_fault(client, app, database, acme, seq=seq, kind="missing_event")


def test_two_deleted_rows_report_the_first(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    remove(database, acme.org_id, 6, 3)
    assert_fault(client, app, database, acme, seq=3, kind="missing_event")


def swap_seqs(database: Database, org_id: str, a: int, b: int) -> None:
    """Exchange the positions of two events (through a free seq: (chain_id, seq) is unique)."""
    with tampering(database) as conn:
        for old, new in ((a, -1), (b, a), (-1, b)):
            conn.execute(
                update(EVENTS)
                .where(EVENTS.c.chain_id == org_id, EVENTS.c.seq == old)
                .values(seq=new)
            )


@pytest.mark.parametrize(("a", "b"), [(3, 6), (4, 5), (1, 2)])
def test_two_swapped_rows_are_reordered(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant, a: int, b: int
) -> None:
    swap_seqs(database, acme.org_id, a, b)
    assert stored_seqs(database, acme.org_id) == list(range(1, head_seq(database, acme.org_id) + 1))
    assert_fault(client, app, database, acme, seq=a, kind="reordered")


def test_two_rows_with_swapped_contents_are_reordered(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    """Every stored column of seq 3 and seq 7 exchanged except the sequence numbers."""
    columns = [c.name for c in EVENTS.columns if c.name not in ("seq", "chain_id", "id")]
    third, seventh = event_at(database, acme.org_id, 3), event_at(database, acme.org_id, 7)
    with tampering(database) as conn:
        for seq, source in ((3, seventh), (7, third)):
            conn.execute(
                update(EVENTS)
                .where(EVENTS.c.chain_id == acme.org_id, EVENTS.c.seq == seq)
                .values({name: getattr(source, name) for name in columns})
            )
    assert_fault(client, app, database, acme, seq=3, kind="reordered")


def test_a_cut_tail_is_truncated_by_the_head(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    last = head_seq(database, acme.org_id)
    remove(database, acme.org_id, last, last - 1)
    assert_fault(client, app, database, acme, seq=last - 1, kind="truncated_tail")
    body = verify_api(client, acme)
    assert (body["last_seq"], body["head_seq"]) == (last - 2, last)


def test_a_cut_tail_with_a_rewound_head_is_truncated_by_a_checkpoint(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    """The attacker also rewinds the chain head; the signed checkpoint still says more existed."""
    checkpoint = make_checkpoint(client, acme)
    last = checkpoint["seq"]
    assert last == head_seq(database, acme.org_id)
    survivor = event_at(database, acme.org_id, last - 3)
    remove(database, acme.org_id, last, last - 1, last - 2)
    with tampering(database) as conn:
        conn.execute(
            update(HEADS)
            .where(HEADS.c.chain_id == acme.org_id)
            .values(seq=survivor.seq, hash=survivor.hash)
        )
    assert_fault(client, app, database, acme, seq=last - 2, kind="truncated_tail")


def test_a_checkpoint_with_a_flipped_signature_is_bad(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    checkpoint = make_checkpoint(client, acme)
    with database.writer_engine.begin() as conn:  # checkpoints have no trigger: no need
        conn.execute(
            update(AuditCheckpoint)
            .where(AuditCheckpoint.id == checkpoint["id"])
            .values(signature=flip(checkpoint["signature"], at=10))
        )
    assert_fault(client, app, database, acme, seq=checkpoint["seq"], kind="bad_checkpoint")


def test_a_checkpoint_edited_to_sign_another_point_is_bad(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    checkpoint = make_checkpoint(client, acme)
    earlier = event_at(database, acme.org_id, 4)
    with database.writer_engine.begin() as conn:
        conn.execute(
            update(AuditCheckpoint)
            .where(AuditCheckpoint.id == checkpoint["id"])
            .values(seq=earlier.seq, hash=earlier.hash)
        )
    assert_fault(client, app, database, acme, seq=4, kind="bad_checkpoint")


def forge_checkpoint(
    database: Database, notary: service.Notary, *, chain_id: str, seq: int, hash: str
) -> AuditCheckpoint:
    cp = AuditCheckpoint(
        id=new_id("ckp"),
        chain_id=chain_id,
        seq=seq,
        hash=hash,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        reason="manual",
        purged_through=0,
        signature="",
    )
    cp.signature = notary.sign(service.checkpoint_message(cp))
    with database.session(write=True) as session:
        session.add(cp)
        session.commit()
    return cp


def test_a_checkpoint_signed_with_another_key_is_bad(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    """Well formed, for the right hash at its seq, but not signed by this server."""
    event = event_at(database, acme.org_id, 6)
    impostor = service.Notary("someone-else-" + "y" * 40)
    forged = forge_checkpoint(
        database, impostor, chain_id=acme.org_id, seq=event.seq, hash=event.hash
    )
    assert impostor.is_genuine(service.checkpoint_message(forged), forged.signature)
    assert_fault(client, app, database, acme, seq=6, kind="bad_checkpoint")


def test_a_genuine_checkpoint_of_another_hash_is_bad(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    """Signed by this server's key, but for a hash the event at its seq does not have."""
    forge_checkpoint(database, app.state.notary, chain_id=acme.org_id, seq=5, hash="ab" * 32)
    assert_fault(client, app, database, acme, seq=5, kind="bad_checkpoint")


def rewrite_history(database: Database, org_id: str, *, from_seq: int) -> None:
    """The strongest attack on the events alone: edit one event, then recompute every hash from
    there on and the chain head, so every link is consistent again."""
    with tampering(database) as conn:
        with database.session(write=False) as session:
            events = list(
                session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.chain_id == org_id, AuditEvent.seq >= from_seq - 1)
                    .order_by(AuditEvent.seq)
                )
            )
        prev = events[0].hash if from_seq > 1 else chain.GENESIS_HASH
        for event in events if from_seq == 1 else events[1:]:
            if event.seq == from_seq:
                event.action = "nothing.happened"
            event.prev_hash = prev
            prev = event.hash = chain.event_hash(service.hashed_fields(event))
            conn.execute(
                update(EVENTS)
                .where(EVENTS.c.chain_id == org_id, EVENTS.c.seq == event.seq)
                .values(action=event.action, prev_hash=event.prev_hash, hash=event.hash)
            )
        conn.execute(update(HEADS).where(HEADS.c.chain_id == org_id).values(hash=prev))


def test_a_rewritten_history_is_caught_by_the_next_checkpoint(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    checkpoint = make_checkpoint(client, acme)
    write_teams(client, acme, ["Late 1", "Late 2", "Late 3"])  # after the checkpoint
    rewrite_history(database, acme.org_id, from_seq=4)
    assert_fault(client, app, database, acme, seq=checkpoint["seq"], kind="bad_checkpoint")


def test_a_rewritten_history_after_the_last_checkpoint_is_not_detectable(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    """The limit of any hash chain, stated so nobody assumes more: events after the newest
    signed checkpoint can be rewritten consistently by someone who owns the database. That is
    why checkpoints are made periodically and exports kept elsewhere."""
    checkpoint = make_checkpoint(client, acme)
    write_teams(client, acme, ["Late 1", "Late 2"])
    rewrite_history(database, acme.org_id, from_seq=checkpoint["seq"] + 1)
    assert_intact(client, app, database, acme)
    assert event_at(database, acme.org_id, checkpoint["seq"] + 1).action == "nothing.happened"


# ---- (b) the append-only triggers ----


def refused(exc: pytest.ExceptionInfo[DBAPIError]) -> bool:
    return "append-only" in str(exc.value)


def test_the_orm_cannot_update_or_delete_an_event(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    with database.session(write=True) as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.chain_id == acme.org_id, AuditEvent.seq == 3)
        ).one()
        event.action = "nothing.happened"
        with pytest.raises(DBAPIError) as exc:
            session.commit()
        assert refused(exc)
        session.rollback()

        session.delete(session.merge(event_at(database, acme.org_id, 3)))
        with pytest.raises(DBAPIError) as exc:
            session.commit()
        assert refused(exc)
        session.rollback()

        with pytest.raises(DBAPIError) as exc:
            session.execute(
                update(AuditEvent)
                .where(AuditEvent.chain_id == acme.org_id)
                .values(result="denied")
                .execution_options(synchronize_session=False)
            )
        assert refused(exc)
        session.rollback()

        with pytest.raises(DBAPIError) as exc:
            session.execute(
                delete(AuditEvent)
                .where(AuditEvent.chain_id == acme.org_id)
                .execution_options(synchronize_session=False)
            )
        assert refused(exc)
    assert_intact(client, app, database, acme)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'nothing.happened' WHERE chain_id = :org AND seq = 2",
        "UPDATE audit_events SET seq = seq + 1000 WHERE chain_id = :org",
        "DELETE FROM audit_events WHERE chain_id = :org AND seq = 2",
        "DELETE FROM audit_events",
    ],
)
def test_raw_sql_cannot_update_or_delete_an_event(
    client: TestClient,
    app: FastAPI,
    database: Database,
    acme: Tenant,
    statement: str,
) -> None:
    before = stored_seqs(database, acme.org_id)
    with pytest.raises(DBAPIError) as exc, database.writer_engine.begin() as conn:
        conn.execute(text(statement), {"org": acme.org_id})
    assert refused(exc)
    assert stored_seqs(database, acme.org_id) == before
    assert_intact(client, app, database, acme)


def test_truncate_is_refused_on_postgresql(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    if database.dialect != "postgresql":
        pytest.skip("SQLite has no TRUNCATE (DELETE without WHERE is refused above)")
    with pytest.raises(DBAPIError) as exc, database.writer_engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_events"))
    assert refused(exc)
    assert_intact(client, app, database, acme)


def test_the_triggers_are_back_after_tampering(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    before = stored_seqs(database, acme.org_id)
    with pytest.raises(RuntimeError), tampering(database) as conn:
        conn.execute(text("DELETE FROM audit_events"))
        raise RuntimeError("the attacker changes their mind: the transaction rolls back")
    assert stored_seqs(database, acme.org_id) == before
    change(database, acme.org_id, 2, result="denied")  # commits
    with pytest.raises(DBAPIError) as exc, database.writer_engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE chain_id = :org"), {"org": acme.org_id})
    assert refused(exc)


def write_permit(database: Database, *, chain_id: str, through_seq: int) -> None:
    with database.session(write=True) as session:
        session.add(AuditPurgePermit(id=new_id("prm"), chain_id=chain_id, through_seq=through_seq))
        session.commit()


def test_a_purge_permit_covers_only_its_chain_and_range(
    client: TestClient, factory: Factory, database: Database, acme: Tenant
) -> None:
    other = factory.tenant("Other")
    write_permit(database, chain_id=acme.org_id, through_seq=3)
    try:
        with pytest.raises(DBAPIError) as exc, database.writer_engine.begin() as conn:
            conn.execute(
                text("DELETE FROM audit_events WHERE chain_id = :org AND seq = 4"),
                {"org": acme.org_id},
            )
        assert refused(exc)
        with pytest.raises(DBAPIError) as exc, database.writer_engine.begin() as conn:
            conn.execute(
                text("DELETE FROM audit_events WHERE chain_id = :org AND seq = 1"),
                {"org": other.org_id},
            )
        assert refused(exc)
        with pytest.raises(DBAPIError) as exc, database.writer_engine.begin() as conn:
            conn.execute(  # a permit lets rows go, never change
                text("UPDATE audit_events SET result = 'denied' WHERE chain_id = :org AND seq = 1"),
                {"org": acme.org_id},
            )
        assert refused(exc)
        with database.writer_engine.begin() as conn:
            gone = conn.execute(
                text("DELETE FROM audit_events WHERE chain_id = :org AND seq <= 3"),
                {"org": acme.org_id},
            )
        assert gone.rowcount == 3
    finally:
        with database.writer_engine.begin() as conn:
            conn.execute(delete(AuditPurgePermit))


def test_retention_purge_deletes_through_a_permit_and_the_rest_verifies(
    client: TestClient,
    app: FastAPI,
    database: Database,
    clock: FrozenClock,
    factory: Factory,
) -> None:
    tenant = factory.tenant("Retained")
    later = [clock.now() + timedelta(days=d) for d in (1, 2, 3, 4)]
    with database.session(write=True) as session:
        for n, moment in enumerate(later):
            service.append(
                session,
                now=moment,
                org_id=tenant.org_id,
                actor_type="user",
                actor_id=tenant.owner_id,
                action="team.created",
                result="success",
                subject_id=tenant.owner_id,
                personal=service.Personal(),
                summary={"name": f"T{n}"},
            )
        session.commit()
    head = head_seq(database, tenant.org_id)
    cutoff = later[1] + timedelta(hours=12)  # keeps the last two events
    with database.session(write=True) as session:
        purged = service.purge_before(
            session, app.state.notary, chain_id=tenant.org_id, cutoff=cutoff, now=later[-1]
        )
        session.commit()
    assert purged == head - 2
    assert stored_seqs(database, tenant.org_id) == [head - 1, head]
    with database.session(write=False) as session:
        assert session.scalars(select(AuditPurgePermit)).all() == []
    verdict = verify_service(app, database, tenant.org_id)
    assert verdict.ok, verdict
    assert (verdict.first_seq, verdict.last_seq, verdict.events_checked) == (head - 1, head, 2)
    assert verify_api(client, tenant)["ok"] is True

    # Deleting the oldest survivor, even now, is still refused and would still be caught.
    with pytest.raises(DBAPIError) as exc, database.writer_engine.begin() as conn:
        conn.execute(
            text("DELETE FROM audit_events WHERE chain_id = :org AND seq = :seq"),
            {"org": tenant.org_id, "seq": head - 1},
        )
    assert refused(exc)
    remove(database, tenant.org_id, head - 1)
    assert_fault(client, app, database, tenant, seq=head - 1, kind="missing_event")


def test_discard_chain_removes_every_event_through_a_permit(
    app: FastAPI, database: Database, acme: Tenant, clock: FrozenClock
) -> None:
    head = head_seq(database, acme.org_id)
    with database.session(write=True) as session:
        assert service.discard_chain(session, chain_id=acme.org_id, now=clock.now()) == head
        session.commit()
    assert stored_seqs(database, acme.org_id) == []
    with database.session(write=False) as session:
        assert session.scalars(select(AuditPurgePermit)).all() == []
    assert head_seq(database, acme.org_id) == head  # a later event continues the sequence


# ---- (c) concurrent appends ----


async def _post_all(
    app: FastAPI, requests: list[tuple[str, dict[str, Any], dict[str, str]]]
) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as ac:
        return list(
            await asyncio.gather(
                *(ac.post(url, json=body, headers=headers) for url, body, headers in requests)
            )
        )


def team_requests(
    tenant: Tenant, n: int, tag: str
) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    url = f"/api/v1/orgs/{tenant.org_id}/teams"
    return [(url, {"name": f"{tag} {i}"}, tenant.headers) for i in range(n)]


def test_twenty_concurrent_requests_make_a_gapless_chain(
    client: TestClient, app: FastAPI, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Busy")
    before = head_seq(database, acme.org_id)
    responses = asyncio.run(_post_all(app, team_requests(acme, 20, "Burst")))
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    head = head_seq(database, acme.org_id)
    assert head == before + 20
    assert stored_seqs(database, acme.org_id) == list(range(1, head + 1))
    assert_intact(client, app, database, acme)


def test_concurrent_requests_in_two_orgs_do_not_interfere(
    client: TestClient, app: FastAPI, factory: Factory, database: Database
) -> None:
    one, two = factory.tenant("One"), factory.tenant("Two")
    before = {t.org_id: head_seq(database, t.org_id) for t in (one, two)}
    mixed = [
        r
        for pair in zip(team_requests(one, 15, "One"), team_requests(two, 15, "Two"), strict=True)
        for r in pair
    ]
    responses = asyncio.run(_post_all(app, mixed))
    assert [r.status_code for r in responses] == [201] * 30, [r.text for r in responses]
    for tenant in (one, two):
        head = head_seq(database, tenant.org_id)
        assert head == before[tenant.org_id] + 15
        assert stored_seqs(database, tenant.org_id) == list(range(1, head + 1))
        with database.session(write=False) as session:
            orgs = set(
                session.scalars(
                    select(AuditEvent.org_id).where(AuditEvent.chain_id == tenant.org_id)
                )
            )
            names = [
                e.summary.get("name")
                for e in session.scalars(
                    select(AuditEvent).where(
                        AuditEvent.chain_id == tenant.org_id, AuditEvent.action == "team.created"
                    )
                )
            ]
        assert orgs == {tenant.org_id}
        tag = "One" if tenant is one else "Two"
        assert all(str(name).startswith(tag) for name in names), names
        assert_intact(client, app, database, tenant)


# ---- (d) paging while events are written ----


def page(client: TestClient, tenant: Tenant, cursor: str | None, limit: int) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    resp = client.get(
        f"/api/v1/orgs/{tenant.org_id}/audit-events", headers=tenant.headers, params=params
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_paging_while_events_are_written_has_no_gaps_or_duplicates(
    client: TestClient, database: Database, factory: Factory
) -> None:
    acme = factory.tenant("Paged")
    write_teams(client, acme, ["A", "B", "C"])
    seen: list[int] = []
    cursor: str | None = None
    for n in range(12):
        body = page(client, acme, cursor, limit=2)
        seen += [item["seq"] for item in body["items"]]
        cursor = body["next_cursor"]
        assert cursor is not None  # the writer stays ahead of the reader
        # Two or three writes between page fetches, landing on and after the cursor's page.
        write_teams(client, acme, [f"P{n}.{k}" for k in range(n % 2 + 2)])
    while cursor is not None:  # the writer stopped: read to the end
        body = page(client, acme, cursor, limit=2)
        seen += [item["seq"] for item in body["items"]]
        cursor = body["next_cursor"]
    assert seen == list(range(1, head_seq(database, acme.org_id) + 1))
    assert len(seen) > 2 * 12


async def _page_while_writing(app: FastAPI, tenant: Tenant, writes: int) -> list[int]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as ac:
        url = f"/api/v1/orgs/{tenant.org_id}/audit-events"

        async def write() -> None:
            for n in range(writes):
                resp = await ac.post(
                    f"/api/v1/orgs/{tenant.org_id}/teams",
                    headers=tenant.headers,
                    json={"name": f"W{n}"},
                )
                assert resp.status_code == 201, resp.text

        async def read() -> list[int]:
            seen: list[int] = []
            cursor: str | None = None
            while True:
                params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
                writes_over = writer.done()  # before the read: then the read sees every write
                resp = await ac.get(url, headers=tenant.headers, params=params)
                assert resp.status_code == 200, resp.text
                body = resp.json()
                seen += [item["seq"] for item in body["items"]]
                if body["next_cursor"] is None and writes_over:
                    return seen
                # At the end of the list for now: carry on after the last event seen, with the
                # cursor a page ending there would have had.
                cursor = body["next_cursor"] or (encode_cursor(str(seen[-1])) if seen else None)
                await asyncio.sleep(0)

        writer = asyncio.ensure_future(write())
        seen = await read()
        await writer
        return seen


def test_paging_beside_concurrent_writers_has_no_gaps_or_duplicates(
    app: FastAPI, database: Database, factory: Factory
) -> None:
    acme = factory.tenant("Concurrent")
    seen = asyncio.run(_page_while_writing(app, acme, writes=15))
    head = head_seq(database, acme.org_id)
    assert seen == list(range(1, len(seen) + 1))
    assert len(seen) == head


# ---- (e) checkpoints verify with the published key ----


def test_a_checkpoint_verifies_with_the_published_public_key(
    client: TestClient, acme: Tenant
) -> None:
    published = client.get("/api/v1/audit/public-key")
    assert published.status_code == 200, published.text
    assert published.json()["algorithm"] == "Ed25519"
    key = load_pem_public_key(published.json()["public_key_pem"].encode())
    assert isinstance(key, Ed25519PublicKey)

    cp = make_checkpoint(client, acme)
    created = datetime.fromisoformat(cp["created_at"].replace("Z", "+00:00")).astimezone(UTC)
    fields = [
        "tenantry-audit-checkpoint",
        cp["chain_id"],
        cp["seq"],
        cp["hash"],
        created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        cp["purged_through"],
    ]
    message = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
    key.verify(bytes.fromhex(cp["signature"]), message)  # raises if not genuine

    events = client.get(
        f"/api/v1/orgs/{acme.org_id}/audit-events",
        headers=acme.headers,
        params={"limit": 200},
    ).json()["items"]
    assert events[-1]["seq"] == cp["seq"]
    assert events[-1]["hash"] == cp["hash"]

    for forged in ([*fields[:2], cp["seq"] - 1, *fields[3:]], [*fields[:3], "0" * 64, *fields[4:]]):
        with pytest.raises(InvalidSignature):
            key.verify(
                bytes.fromhex(cp["signature"]),
                json.dumps(forged, ensure_ascii=False, separators=(",", ":")).encode(),
            )


# ---- (f) property: any single stored change is caught at its event ----

SAFE_TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


def words(max_size: int, min_size: int = 1) -> st.SearchStrategy[str]:
    return st.text(SAFE_TEXT, min_size=min_size, max_size=max_size)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), words(20, 0))
EVENT = st.fixed_dictionaries(
    {
        "actor_type": st.sampled_from(["user", "api_key", "system", "anonymous"]),
        "actor_id": maybe(words(40)),
        "action": st.from_regex(r"[a-z]{1,12}\.[a-z_]{1,12}", fullmatch=True),
        "result": st.sampled_from(["success", "denied"]),
        "team_id": maybe(words(40)),
        "target_type": maybe(words(32)),
        "target_id": maybe(words(40)),
        "request_id": maybe(words(64)),
        "summary": st.dictionaries(
            words(10),
            st.one_of(
                SCALARS,
                st.lists(SCALARS, max_size=3),
                st.dictionaries(words(5), SCALARS, max_size=2),
            ),
            max_size=4,
        ),
        "subject_id": maybe(st.sampled_from(["usr_alice", "usr_bob"])),
        "ip": maybe(words(40)),
        "user_agent": maybe(words(60)),
        "details": st.dictionaries(words(8), SCALARS, max_size=3),
        "offset_us": st.integers(0, 10**12),
    }
)
FIELDS = [name for name in chain.FIELDS if name != "chain_id"] + ["chain_id", "hash"]


def mutated(field: str, value: Any, seq: int, events: int) -> Any:
    """A different value for one stored field, of a kind the column can hold."""
    if field == "seq":
        return events + 100 + seq
    if field == "chain_id":
        return "org_elsewhere"
    if field == "occurred_at":
        return value + timedelta(microseconds=1)
    if field == "summary":
        return {**value, "tampered": True} if "tampered" not in value else {}
    if value is None:
        return "x"
    return flip(value, at=seq)


KINDS = {"prev_hash": {"reordered"}, "seq": {"missing_event", "truncated_tail"}}
KINDS["chain_id"] = KINDS["seq"]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=st.lists(EVENT, min_size=1, max_size=8),
    cuts=st.lists(st.integers(1, 8), max_size=3),
    target=st.integers(0, 7),
    field=st.sampled_from(FIELDS),
)
def test_any_single_stored_change_is_caught_at_its_event(
    database: Database, events: list[dict[str, Any]], cuts: list[int], target: int, field: str
) -> None:
    notary = service.Notary("property-" + "z" * 40)
    chain_id = new_id("org")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    try:
        # Appended in a few transactions, split where `cuts` says.
        boundaries = sorted({c for c in cuts if c < len(events)} | {0, len(events)})
        for lo, hi in itertools.pairwise(boundaries):
            with database.session(write=True) as session:
                for e in events[lo:hi]:
                    service.append(
                        session,
                        now=start + timedelta(microseconds=e["offset_us"]),
                        org_id=chain_id,
                        actor_type=e["actor_type"],
                        actor_id=e["actor_id"],
                        action=e["action"],
                        result=e["result"],
                        subject_id=e["subject_id"],
                        personal=service.Personal(e["ip"], e["user_agent"], e["details"]),
                        team_id=e["team_id"],
                        target_type=e["target_type"],
                        target_id=e["target_id"],
                        request_id=e["request_id"],
                        summary=e["summary"],
                    )
                session.commit()
        with database.session(write=False) as session:
            verdict = service.verify_chain(session, notary, chain_id=chain_id)
        assert verdict.ok, verdict
        assert verdict.events_checked == len(events)

        seq = target % len(events) + 1
        old = getattr(event_at(database, chain_id, seq), field)
        change(database, chain_id, seq, **{field: mutated(field, old, seq, len(events))})
        with database.session(write=False) as session:
            verdict = service.verify_chain(session, notary, chain_id=chain_id)
        assert not verdict.ok
        assert verdict.fault is not None
        assert verdict.fault.seq == seq, (field, verdict)
        assert verdict.fault.kind in KINDS.get(field, {"changed_content"}), (field, verdict)
        assert verdict.events_checked == seq - 1
    finally:
        with tampering(database) as conn:
            conn.execute(delete(AuditEventPersonal).where(AuditEventPersonal.chain_id == chain_id))
            conn.execute(delete(EVENTS).where(EVENTS.c.chain_id.in_([chain_id, "org_elsewhere"])))
            conn.execute(delete(HEADS).where(HEADS.c.chain_id == chain_id))


# ---- the rule as docs/audit.md shows it to an auditor ----


def documented_snippet() -> str:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "audit.md").read_text(encoding="utf-8")
    section = doc.split("## Recompute a hash yourself", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_documented_snippet_recomputes_exported_hashes(
    client: TestClient, acme: Tenant, tmp_path: Path
) -> None:
    script = tmp_path / "recompute.py"
    script.write_text(documented_snippet(), encoding="utf-8")
    assert len(documented_snippet().strip().splitlines()) <= 25
    resp = client.get(
        f"/api/v1/orgs/{acme.org_id}/audit-events/export",
        headers=acme.headers,
        params={"format": "ndjson"},
    )
    assert resp.status_code == 200, resp.text
    export = tmp_path / "export.ndjson"
    export.write_bytes(resp.content)

    def run() -> list[list[str]]:
        done = subprocess.run(
            [sys.executable, "-I", str(script), str(export)],
            capture_output=True,
            text=True,
            check=True,
        )
        return [line.split() for line in done.stdout.splitlines()]

    lines = run()
    assert [int(seq) for seq, _, _ in lines] == list(range(1, len(lines) + 1))
    assert len(lines) > 8
    assert {verdict for _, _, verdict in lines} == {"ok"}

    records = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]
    fourth = next(r for r in records if r.get("type") == "event" and r["seq"] == 4)
    fourth["action"] = flip(fourth["action"])
    export.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8"
    )
    assert [(int(seq), verdict) for seq, _, verdict in run() if verdict != "ok"] == [(4, "BAD")]


# ---- (f) the fast pass proves sound chains, and only those ----


def fast_pass(database: Database, chain_id: str, *, workers: int, min_span: int = 2) -> bool:
    """What `fastverify` concludes about the whole chain (no purges, no checkpoints)."""
    source = fastverify.source_of(make_url(database.url))
    assert source is not None
    return fastverify.chain_checks_out(
        source,
        chain_id=chain_id,
        start_seq=1,
        start_hash=chain.GENESIS_HASH,
        through_seq=head_seq(database, chain_id),
        checkpoint_hashes={},
        workers=workers,
        min_span=min_span,
    )


def relink(database: Database, org_id: str, *, at_seq: int) -> None:
    """Cut the chain at `at_seq`: its link points nowhere and every hash from there on is
    recomputed, so the parts before and after are each consistent on their own."""
    with tampering(database) as conn:
        with database.session(write=False) as session:
            events = list(
                session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.chain_id == org_id, AuditEvent.seq >= at_seq)
                    .order_by(AuditEvent.seq)
                )
            )
        prev = "f" * 64
        for event in events:
            event.prev_hash = prev
            prev = event.hash = chain.event_hash(service.hashed_fields(event))
            conn.execute(
                update(EVENTS)
                .where(EVENTS.c.chain_id == org_id, EVENTS.c.seq == event.seq)
                .values(prev_hash=event.prev_hash, hash=event.hash)
            )
        conn.execute(update(HEADS).where(HEADS.c.chain_id == org_id).values(hash=prev))


@pytest.mark.parametrize("workers", [1, 3])
def test_the_fast_pass_proves_an_intact_chain(
    client: TestClient, database: Database, acme: Tenant, workers: int
) -> None:
    write_teams(client, acme, [f"Team {n}" for n in range(8)])
    assert head_seq(database, acme.org_id) >= 9
    assert fast_pass(database, acme.org_id, workers=workers)


@pytest.mark.parametrize("workers", [1, 3])
def test_the_fast_pass_does_not_prove_a_changed_event(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant, workers: int
) -> None:
    write_teams(client, acme, [f"Team {n}" for n in range(8)])
    change(database, acme.org_id, 7, action="nothing.happened")
    assert not fast_pass(database, acme.org_id, workers=workers)
    assert_fault(client, app, database, acme, seq=7, kind="changed_content")


def test_spans_that_each_hold_together_but_do_not_join_are_not_proven(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    write_teams(client, acme, [f"Team {n}" for n in range(7)])
    total = head_seq(database, acme.org_id)
    cut = fastverify.spans(0, total, 2)[1][0] + 1  # the first event of the second span
    relink(database, acme.org_id, at_seq=cut)
    assert not fast_pass(database, acme.org_id, workers=2)
    assert not fast_pass(database, acme.org_id, workers=1)
    assert_fault(client, app, database, acme, seq=cut, kind="reordered")


def append_awkward_events(database: Database, chain_id: str, *, count: int) -> None:
    """Events whose values need escaping in JSON (quotes, backslashes, a newline in the summary,
    non-ASCII), with summary keys of different lengths (jsonb orders them otherwise)."""
    with database.session(write=True) as session:
        for n in range(count):
            service.append(
                session,
                now=datetime(2026, 3, 1, tzinfo=UTC) + timedelta(microseconds=n),
                org_id=chain_id,
                actor_type="user",
                actor_id="usr_awkward",
                action="team.updated",
                result="success",
                subject_id="usr_awkward",
                personal=service.Personal("192.0.2.1", 'agent "x" \\ y', {}),
                target_type="team",
                target_id=f'team "{n}" \\ ✓',
                request_id=None,
                summary={"zz": f'line\nbreak "{n}" \\', "a": n, "nested": {"bb": [1, "é"]}},
            )
        session.commit()


def test_the_fast_pass_proves_values_that_need_escaping(database: Database) -> None:
    chain_id = new_id("org")
    append_awkward_events(database, chain_id, count=6)
    assert fast_pass(database, chain_id, workers=1)
    assert fast_pass(database, chain_id, workers=3)


def test_fields_moved_across_the_fixed_offsets_are_not_proven(
    client: TestClient, app: FastAPI, database: Database, acme: Tenant
) -> None:
    """The PostgreSQL fast pass reads the digest, link and hash at fixed offsets of each line.
    Shorten one event's digest by a character (and, where the column allows, lengthen its link by
    one, so the line keeps its length) and give it the hash of its new content: only the quote
    checks tell that the fields moved, and the verdict is the exact pass's."""
    seq = 4
    event = event_at(database, acme.org_id, seq)
    event.personal_digest = event.personal_digest[:-1]  # type: ignore[index]
    # PostgreSQL's varchar(64) refuses a 65-character link; SQLite stores it.
    lengthened = database.dialect == "sqlite"
    if lengthened:
        event.prev_hash = event.prev_hash + "0"
    new_hash = chain.event_hash(service.hashed_fields(event))
    change(
        database,
        acme.org_id,
        seq,
        personal_digest=event.personal_digest,
        prev_hash=event.prev_hash,
        hash=new_hash,
    )
    with tampering(database) as conn:
        conn.execute(
            update(EVENTS)
            .where(EVENTS.c.chain_id == acme.org_id, EVENTS.c.seq == seq + 1)
            .values(prev_hash=new_hash)
        )
    assert not fast_pass(database, acme.org_id, workers=1)
    if lengthened:
        assert_fault(client, app, database, acme, seq=seq, kind="reordered")
    else:
        assert_fault(client, app, database, acme, seq=seq + 1, kind="changed_content")
