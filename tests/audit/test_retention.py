"""Audit retention and periodic checkpoints, run by the worker with the clock moved (no sleeps).

Old events leave only through the purge path, which signs a checkpoint the rest of the chain
verifies from; a second pass, or a second worker at the same time, changes nothing more.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from conftest import PASSWORD, Factory, Tenant, assert_problem, bearer
from tenantry import worker
from tenantry.audit import service as audit
from tenantry.audit.models import (
    AuditCheckpoint,
    AuditEvent,
    AuditEventPersonal,
    AuditPurgePermit,
)
from tenantry.audit.retention import org_retention_days
from tenantry.cli.main import app as cli_app
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.kit.idempotency import IdempotencyRecord
from tenantry.worker import WorkerReport

PLAN_DAYS = {"free": 30, "starter": 90, "professional": 90, "enterprise": 365}


def run_worker(settings: Settings, clock: FrozenClock, database: Database) -> worker.WorkerReport:
    report = worker.run_once(settings, clock=clock, database=database)
    assert not report.failed, report
    return report


def seqs(database: Database, chain_id: str) -> list[int]:
    with database.session(write=False) as session:
        return list(
            session.scalars(
                select(AuditEvent.seq).where(AuditEvent.chain_id == chain_id).order_by("seq")
            )
        )


def checkpoints(database: Database, chain_id: str) -> list[AuditCheckpoint]:
    with database.session(write=False) as session:
        return audit.checkpoints(session, chain_id=chain_id)


def verdict(database: Database, settings: Settings, chain_id: str) -> audit.Verdict:
    with database.session(write=False) as session:
        return audit.verify_chain(
            session, audit.Notary(settings.server_secret()), chain_id=chain_id
        )


def signed_in(client: TestClient, tenant: Tenant) -> dict[str, str]:
    """The owner's headers now: access tokens expire while the clock moves by days. (Signing
    in writes to the owner's own chain, not the org's.)"""
    login = {"email": tenant.owner_email, "password": PASSWORD}
    resp = client.post("/api/v1/auth/login", json=login)
    assert resp.status_code == 200, resp.text
    return bearer(resp.json()["access_token"])


def new_team(client: TestClient, tenant: Tenant, name: str) -> None:
    resp = client.post(
        f"/api/v1/orgs/{tenant.org_id}/teams",
        headers=signed_in(client, tenant),
        json={"name": name},
    )
    assert resp.status_code == 201, resp.text


def test_a_free_orgs_events_older_than_30_days_are_purged_with_a_signed_checkpoint(
    client: TestClient,
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    acme = factory.tenant("Acme AI", plan="free")  # seq 1 at day 0
    new_team(client, acme, "Vision")  # seq 2
    new_team(client, acme, "Speech")  # seq 3
    clock.advance(days=20)
    new_team(client, acme, "Recent")  # seq 4, day 20
    with database.session(write=False) as session:
        old_ids = list(
            session.scalars(
                select(AuditEvent.id).where(AuditEvent.chain_id == acme.org_id, AuditEvent.seq < 4)
            )
        )

    clock.advance(days=10)  # day 30: nothing is older than 30 days yet
    assert run_worker(settings, clock, database).retention.purged_events == 0
    assert seqs(database, acme.org_id) == [1, 2, 3, 4]

    clock.advance(days=5)  # day 35: days 0 are past the window, day 20 is not
    headers = signed_in(client, acme)
    report = run_worker(settings, clock, database)
    assert report.retention.purged_events == 3
    assert acme.org_id in report.retention.purged_chains
    assert seqs(database, acme.org_id) == [4]

    # Gone through the purge path: a signed checkpoint anchors what is left, the permit that let
    # the trigger pass is gone with the transaction, and the personal details went too.
    purge = [cp for cp in checkpoints(database, acme.org_id) if cp.reason == "purge"]
    assert [(cp.seq, cp.purged_through) for cp in purge] == [(3, 3)]
    notary = audit.Notary(settings.server_secret())
    assert notary.is_genuine(audit.checkpoint_message(purge[0]), purge[0].signature)
    with database.session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(AuditPurgePermit)) == 0
        left = session.scalars(
            select(AuditEventPersonal.event_id).where(AuditEventPersonal.event_id.in_(old_ids))
        ).all()
        assert left == []
        event_4 = audit.repository.event_at(session, chain_id=acme.org_id, seq=4)
        assert event_4 is not None and event_4.prev_hash == purge[0].hash
    result = verdict(database, settings, acme.org_id)
    assert (result.ok, result.first_seq, result.last_seq, result.events_checked) == (
        True,
        4,
        4,
        1,
    )
    api = client.get(f"/api/v1/orgs/{acme.org_id}/audit-events/verify", headers=headers)
    assert api.json()["ok"] is True, api.text

    # And nothing else can delete events.
    with pytest.raises(DBAPIError), database.writer_engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE chain_id = :c"), {"c": acme.org_id})

    # A second pass changes nothing.
    before = [(cp.id, cp.seq) for cp in checkpoints(database, acme.org_id)]
    again = run_worker(settings, clock, database)
    assert again.retention.purged_events == 0 and again.checkpoints.checkpointed_chains == []
    assert [(cp.id, cp.seq) for cp in checkpoints(database, acme.org_id)] == before
    assert seqs(database, acme.org_id) == [4]


@pytest.mark.parametrize("plan", sorted(PLAN_DAYS))
def test_each_plan_keeps_its_window(
    client: TestClient,
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
    plan: str,
) -> None:
    days = PLAN_DAYS[plan]
    assert org_retention_days(plan, {}) == days
    # Onboarded (seq 1) and, on a paid plan, given it by an operator (seq 2).
    org = factory.tenant("Planned", plan=plan)
    made = seqs(database, org.org_id)
    head = made[-1] + 1
    new_team(client, org, "Second")  # the head, always kept
    clock.advance(days=days, seconds=-1)
    run_worker(settings, clock, database)
    assert seqs(database, org.org_id) == [*made, head]
    clock.advance(seconds=2)
    run_worker(settings, clock, database)
    assert seqs(database, org.org_id) == [head]
    assert verdict(database, settings, org.org_id).ok


def test_an_orgs_own_retention_wins_over_its_plan(
    client: TestClient,
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    short = factory.tenant("Short Memory", plan="enterprise")  # seqs 1 and 2 (the plan)
    resp = client.patch(
        f"/api/v1/orgs/{short.org_id}",
        headers=short.headers,
        json={"settings": {"audit_retention_days": 7}},
    )
    assert resp.status_code == 200, resp.text  # seq 3
    long = factory.tenant("Long Memory", plan="free")
    resp = client.patch(
        f"/api/v1/orgs/{long.org_id}",
        headers=long.headers,
        json={"settings": {"audit_retention_days": 3650}},
    )
    assert resp.status_code == 200, resp.text
    clock.advance(days=8)
    new_team(client, short, "Later")  # seq 4
    new_team(client, long, "Later")
    clock.advance(days=400)
    report = run_worker(settings, clock, database)
    assert seqs(database, short.org_id) == [4]  # 7 days, not the plan's 365
    assert seqs(database, long.org_id) == [1, 2, 3]  # ten years, not the plan's 30
    # The operator chain (the plan given to Short, 408 days ago) keeps a year, as every chain
    # of no org does.
    assert report.retention.purged_chains == sorted([short.org_id, "operator"])
    assert verdict(database, settings, short.org_id).ok


@pytest.mark.parametrize("bad", [0, 3651, -5, "30", 30.5, True, [30]])
def test_a_custom_retention_is_whole_days_from_1_to_3650(
    client: TestClient, factory: Factory, bad: object
) -> None:
    acme = factory.tenant("Acme AI")
    resp = client.post(
        "/api/v1/orgs",
        headers=acme.headers,
        json={"name": "Bad Retention", "settings": {"audit_retention_days": bad}},
    )
    assert_problem(resp, 422, "invalid_retention")
    resp = client.patch(
        f"/api/v1/orgs/{acme.org_id}",
        headers=acme.headers,
        json={"settings": {"audit_retention_days": bad}},
    )
    assert_problem(resp, 422, "invalid_retention")
    for good in (1, 3650, None):
        resp = client.patch(
            f"/api/v1/orgs/{acme.org_id}",
            headers=acme.headers,
            json={"settings": {"audit_retention_days": good}},
        )
        assert resp.status_code == 200, resp.text


def test_account_chains_keep_a_year(
    client: TestClient,
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    user_id, email, _ = factory.user()  # auth.signup, seq 1, in the account's own chain
    login = {"email": email, "password": PASSWORD}
    assert client.post("/api/v1/auth/login", json=login).status_code == 200  # seq 2
    clock.advance(days=300)
    assert client.post("/api/v1/auth/login", json=login).status_code == 200  # seq 3
    clock.advance(days=65)  # day 365
    run_worker(settings, clock, database)
    assert seqs(database, user_id) == [1, 2, 3]
    clock.advance(days=1)
    run_worker(settings, clock, database)
    assert seqs(database, user_id) == [3]
    assert verdict(database, settings, user_id).ok


def test_periodic_checkpoints_only_for_chains_that_moved(
    client: TestClient,
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    acme, other = factory.tenant("Acme AI"), factory.tenant("Other Corp")
    first = run_worker(settings, clock, database)
    assert sorted(first.checkpoints.checkpointed_chains) == sorted([acme.org_id, other.org_id])
    assert run_worker(settings, clock, database).checkpoints.checkpointed_chains == []

    clock.advance(minutes=5)  # the owner's token still valid: no sign-in, only Acme moves
    resp = client.post(
        f"/api/v1/orgs/{acme.org_id}/teams", headers=acme.headers, json={"name": "Moved"}
    )
    assert resp.status_code == 201, resp.text
    moved = run_worker(settings, clock, database)
    assert moved.checkpoints.checkpointed_chains == [acme.org_id]
    signed = checkpoints(database, acme.org_id)
    assert [(cp.seq, cp.reason) for cp in signed] == [(1, "periodic"), (2, "periodic")]
    assert [cp.seq for cp in checkpoints(database, other.org_id)] == [1]
    result = verdict(database, settings, acme.org_id)
    assert result.ok and result.checkpoints_checked == 2


def test_a_signed_head_is_not_signed_again_even_when_a_worker_thinks_it_moved(
    factory: Factory, database: Database, settings: Settings, clock: FrozenClock
) -> None:
    # What a second worker meets when its unlocked look saw the head before the first signed it.
    acme = factory.tenant("Acme AI")
    notary = audit.Notary(settings.server_secret())
    made = []
    for _ in range(2):
        with database.session(write=True) as session:
            made.append(
                audit.checkpoint_if_moved(session, notary, chain_id=acme.org_id, now=clock.now())
            )
            session.commit()
    assert made[0] is not None and made[1] is None
    assert [cp.seq for cp in checkpoints(database, acme.org_id)] == [1]


def test_workers_running_at_once_do_each_thing_once(
    client: TestClient,
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    tenants = [factory.tenant(f"Company {n}") for n in range(4)]
    for tenant in tenants:
        new_team(client, tenant, "Second")
    clock.advance(days=31)
    start = threading.Barrier(3)
    reports: list[worker.WorkerReport] = []
    failures: list[BaseException] = []

    def work() -> None:
        start.wait()
        try:
            reports.append(worker.run_once(settings, clock=clock, database=database))
        except BaseException as exc:  # surfaced below, in the test's own thread
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(reports) == 3
    assert not any(report.failed for report in reports)
    assert sum(report.retention.purged_events for report in reports) == len(tenants)
    for tenant in tenants:
        assert seqs(database, tenant.org_id) == [2]
        reasons = sorted(cp.reason for cp in checkpoints(database, tenant.org_id))
        assert reasons == ["periodic", "purge"]
        assert verdict(database, settings, tenant.org_id).ok


def test_the_worker_forgets_expired_idempotency_records(
    client: TestClient, database: Database, settings: Settings, clock: FrozenClock
) -> None:
    resp = client.post(
        "/api/v1/auth/signup",
        json={"email": "keyed@example.com", "password": PASSWORD},
        headers={"Idempotency-Key": "once"},
    )
    assert resp.status_code == 201
    assert run_worker(settings, clock, database).expired_idempotency_records == 0
    clock.advance(seconds=settings.idempotency_ttl_seconds + 1)
    assert run_worker(settings, clock, database).expired_idempotency_records == 1
    with database.session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0


def test_the_loop_runs_passes_until_stopped(
    factory: Factory, database: Database, settings: Settings, clock: FrozenClock
) -> None:
    factory.tenant("Acme AI")
    heard: list[worker.WorkerReport] = []
    passes = worker.run(
        settings, interval=0, clock=clock, database=database, passes=2, on_report=heard.append
    )
    assert passes == 2 and len(heard) == 2
    assert len(heard[0].checkpoints.checkpointed_chains) == 1
    assert heard[1].checkpoints.checkpointed_chains == []
    stopped = threading.Event()
    stopped.set()
    assert worker.run(settings, interval=3600, clock=clock, database=database, stop=stopped) == 0


def test_cli_worker_once_prints_its_report(
    factory: Factory,
    settings: Settings,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    factory.tenant("Acme AI")
    env = {
        "TENANTRY_DATABASE_URL": database_url,
        "TENANTRY_SECRET_KEY": settings.server_secret(),
        "TENANTRY_DATA_DIR": str(settings.data_dir),
    }
    result = CliRunner().invoke(cli_app, ["worker", "--once", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # Every task of a pass reports, under its own name.
    assert set(report) == {field.name for field in dataclasses.fields(WorkerReport)}
    assert {"retention", "checkpoints", "expired_idempotency_records"} <= set(report)
    assert datetime.fromisoformat(report["started_at"]) > datetime.now(UTC) - timedelta(hours=1)
    people = CliRunner().invoke(cli_app, ["worker", "--once"], env=env)
    assert people.exit_code == 0 and "periodic checkpoints" in people.stdout
    bad = CliRunner().invoke(cli_app, ["worker", "--interval", "0"], env=env)
    assert bad.exit_code == 2
