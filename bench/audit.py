"""Audit trail benchmark: what the hash chain costs to write and how fast it verifies.

    .venv/bin/python bench/audit.py            # full size, temp SQLite file + throwaway PostgreSQL
    .venv/bin/python bench/audit.py --quick    # smoke size (CI)
    .venv/bin/python bench/audit.py --database-url sqlite:////tmp/bench.db

Appends: `service.append` (chained: subject key, HMAC of the personal details, the chain head's
row lock, the hash) in transactions of 100 events and of 1 event, against plain inserts of the same
rows (event + personal details) with precomputed dummy hashes in transactions of the same size.
Verification: a chain seeded with precomputed chained rows, checked end to end by
`service.verify_chain` (database read included) as the server runs it (`db`: the fast pass, in up
to four processes for a long chain), in one process (`one_process`), and by the exact pass alone
(`exact_pass`); and by `chain.verify_events` over rows already in memory. Each figure is the
median of the repetitions; the first verification of the run also starts the fork server the
span processes come from, as the first one in a server process does. Every section records the
load average before and after it. Prints one JSON object on stdout; progress goes to stderr.

A PostgreSQL URL names a server: the benchmark creates a throwaway database there and drops it.
A SQLite URL names a scratch file (created and migrated if missing). Audit events cannot be
deleted (the append-only triggers), so never point this at a database you keep.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from tenantry.audit import chain, repository, service
from tenantry.audit.models import AuditChainHead, AuditEvent, AuditEventPersonal
from tenantry.kit.db import Database
from tenantry.kit.ids import new_id
from tenantry.kit.migrations import upgrade

DEFAULT_POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_OVERHEAD_PCT = 30.0
TARGET_VERIFY_PER_S = 500_000
BATCH = 100
SIZES = {
    # events appended per measurement (batched, single), events verified, repetitions
    "full": {"batched": 20_000, "single": 2_000, "verify": 1_000_000, "repeat": 3},
    "quick": {"batched": 1_000, "single": 200, "verify": 20_000, "repeat": 1},
}
START = datetime(2026, 1, 1, tzinfo=UTC)
ACTOR = "usr_01jbench0000000000000000a"
TEAM = "team_01jbench000000000000000a"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- machine ----


def machine(postgres_version: str | None) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version,
        "platform": platform.platform(),
    }


# ---- databases ----


@contextlib.contextmanager
def throwaway_postgres(server_url: str) -> Iterator[str]:
    server = make_url(server_url).set(drivername="postgresql+psycopg")
    name = f"tenantry_bench_{secrets.token_hex(4)}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = server.set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def scratch_sqlite(url: str | None) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as scratch:
        url = url or f"sqlite:///{scratch}/audit.db"
        upgrade(url)
        yield url


def postgres_version(url: str) -> str:
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    with engine.connect() as conn:
        version = str(conn.execute(text("SHOW server_version")).scalar_one())
    engine.dispose()
    return version


# ---- appends ----


def event_values(chain_id: str, i: int) -> dict[str, Any]:
    """What a typical request records (a member added to a team)."""
    return {
        "org_id": chain_id,
        "team_id": TEAM,
        "actor_type": "user",
        "actor_id": ACTOR,
        "action": "team.member.added",
        "target_type": "team",
        "target_id": TEAM,
        "result": "success",
        "request_id": f"req_{i:016x}",
        "summary": {"role": "admin", "user": f"usr_{i:027d}"},
    }


def personal_details() -> service.Personal:
    return service.Personal(ip="203.0.113.7", user_agent="bench/1.0 (httpx)", details={})


def append_chained(db: Database, chain_id: str, *, events: int, per_txn: int) -> float:
    """Events per second through `service.append`, `per_txn` events per transaction."""
    started = time.perf_counter()
    for first in range(0, events, per_txn):
        with db.session(write=True) as session:
            for i in range(first, min(first + per_txn, events)):
                service.append(
                    session,
                    now=START + timedelta(milliseconds=i),
                    subject_id=ACTOR,
                    personal=personal_details(),
                    **event_values(chain_id, i),
                )
            session.commit()
    return events / (time.perf_counter() - started)


def plain_rows(chain_id: str, first: int, last: int) -> Iterator[tuple[dict[str, Any], ...]]:
    """The rows `append` would write (event, personal details) with precomputed dummy hashes."""
    dummy = "d" * 64
    personal = personal_details()
    for i in range(first, last):
        event_id = new_id("evt")
        yield (
            {
                "id": event_id,
                "chain_id": chain_id,
                "seq": i + 1,
                "occurred_at": START + timedelta(milliseconds=i),
                "personal_digest": dummy,
                "prev_hash": dummy,
                "hash": dummy,
                **event_values(chain_id, i),
            },
            {
                "event_id": event_id,
                "chain_id": chain_id,
                "subject_id": ACTOR,
                "ip": personal.ip,
                "user_agent": personal.user_agent,
                "details": personal.details,
            },
        )


def insert_plain(db: Database, chain_id: str, *, events: int, per_txn: int) -> float:
    """Events per second for the same rows without a chain (no head lock, no subject key, no
    hashing): one multi-row insert per table per transaction, through the connection as
    `append`'s own writes go (the ORM's bulk path adds work of its own)."""
    started = time.perf_counter()
    for first in range(0, events, per_txn):
        pairs = list(plain_rows(chain_id, first, min(first + per_txn, events)))
        with db.session(write=True) as session:
            connection = session.connection()
            connection.execute(insert(AuditEvent), [event for event, _ in pairs])
            connection.execute(insert(AuditEventPersonal), [personal for _, personal in pairs])
            session.commit()
    return events / (time.perf_counter() - started)


def insert_plain_orm(db: Database, chain_id: str, *, events: int, per_txn: int) -> float:
    """The same rows without a chain, as ORM objects the way `append` adds them: what chaining
    itself costs, apart from what the ORM costs."""
    started = time.perf_counter()
    for first in range(0, events, per_txn):
        with db.session(write=True) as session:
            for event, personal in plain_rows(chain_id, first, min(first + per_txn, events)):
                session.add(AuditEvent(**event))
                session.add(AuditEventPersonal(**personal))
            session.commit()
    return events / (time.perf_counter() - started)


def overhead_pct(plain: float, chained: float) -> float:
    """Throughput lost to chaining, as a percentage of the plain insert throughput."""
    return round((1 - chained / plain) * 100, 1)


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def bench_appends(db: Database, size: dict[str, int]) -> dict[str, Any]:
    load_before = load_average()
    run = secrets.token_hex(3)
    # Warm up connections, statement caches and the subject key before timing anything.
    append_chained(db, f"org_warm_{run}", events=2 * BATCH, per_txn=BATCH)
    insert_plain(db, f"org_warmplain_{run}", events=2 * BATCH, per_txn=BATCH)

    figures: dict[str, list[float]] = {}
    for r in range(size["repeat"]):
        # Alternate plain and chained so drift in the machine's speed hits both alike.
        for name, measure, per_txn, events in (
            ("plain_inserts_per_s", insert_plain, BATCH, size["batched"]),
            ("plain_orm_inserts_per_s", insert_plain_orm, BATCH, size["batched"]),
            ("chained_appends_per_s", append_chained, BATCH, size["batched"]),
            ("plain_single_per_s", insert_plain, 1, size["single"]),
            ("plain_orm_single_per_s", insert_plain_orm, 1, size["single"]),
            ("chained_single_per_s", append_chained, 1, size["single"]),
        ):
            chain_id = f"{name.removesuffix('_per_s')}_{run}_{r}"
            figures.setdefault(name, []).append(
                measure(db, chain_id, events=events, per_txn=per_txn)
            )
    out: dict[str, Any] = {k: round(statistics.median(v)) for k, v in figures.items()}
    out["overhead_pct"] = overhead_pct(out["plain_inserts_per_s"], out["chained_appends_per_s"])
    out["single_overhead_pct"] = overhead_pct(
        out["plain_single_per_s"], out["chained_single_per_s"]
    )
    out["overhead_vs_orm_pct"] = overhead_pct(
        out["plain_orm_inserts_per_s"], out["chained_appends_per_s"]
    )
    out["single_overhead_vs_orm_pct"] = overhead_pct(
        out["plain_orm_single_per_s"], out["chained_single_per_s"]
    )
    # The machine may be shared: say how busy it was while these figures were taken.
    out["load_average"] = [load_before, load_average()]
    return out


# ---- verification ----


def chained_rows(chain_id: str, events: int) -> Iterator[dict[str, Any]]:
    """Rows of a valid chain, hashed with `chain.event_hash` as `service.append` would."""
    prev = chain.GENESIS_HASH
    digest = "a" * 64
    for i in range(events):
        seq = i + 1
        at = START + timedelta(milliseconds=i)
        values = event_values(chain_id, i)
        event_id = f"evt_{seq:027d}"
        fields = [
            chain_id, seq, event_id, values["org_id"], values["team_id"], values["actor_type"],
            values["actor_id"], values["action"], values["target_type"], values["target_id"],
            values["result"], values["request_id"], chain.timestamp(at), values["summary"],
            digest, prev,
        ]  # fmt: skip
        prev = chain.event_hash(fields)
        yield {
            "id": event_id,
            "chain_id": chain_id,
            "seq": seq,
            "occurred_at": at,
            "personal_digest": digest,
            "prev_hash": fields[15],
            "hash": prev,
            **values,
        }


def seed_chain(db: Database, chain_id: str, events: int) -> None:
    batch: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None

    def flush() -> None:
        with db.session(write=True) as session:
            session.execute(insert(AuditEvent), batch)
            session.commit()
        batch.clear()

    for row in chained_rows(chain_id, events):
        batch.append(row)
        last = row
        if len(batch) == 10_000:
            flush()
    if batch:
        flush()
    assert last is not None
    with db.session(write=True) as session:
        session.add(
            AuditChainHead(chain_id=chain_id, seq=last["seq"], hash=last["hash"], updated_at=START)
        )
        session.commit()
    if db.dialect == "postgresql":
        with db.writer_engine.connect() as conn:
            conn.execute(text("ANALYZE audit_events"))
            conn.commit()


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def bench_verify(db: Database, size: dict[str, int], *, in_memory: bool) -> dict[str, Any]:
    events = size["verify"]
    chain_id = f"org_verify_{secrets.token_hex(3)}"
    seconds, _ = timed(lambda: seed_chain(db, chain_id, events))
    log(f"  seeded {events} chained events in {seconds:.1f}s")
    notary = service.Notary("bench-secret-" + "x" * 40)

    workers = min(4, os.cpu_count() or 1)  # the server's default (audit_verify_workers)

    def verify(*, workers: int, fast: bool = True) -> Callable[[], service.Verdict]:
        def run() -> service.Verdict:
            with db.session(write=False) as session:
                return service.verify_chain(
                    session, notary, chain_id=chain_id, workers=workers, fast=fast
                )

        return run

    def read() -> int:
        with db.session(write=False) as session:
            return sum(1 for _ in repository.chain_rows(session, chain_id=chain_id))

    ways = {
        "db": verify(workers=workers),
        "one_process": verify(workers=1),
        "exact_pass": verify(workers=1, fast=False),
    }
    load_before = load_average()
    times: dict[str, list[float]] = {way: [] for way in [*ways, "read"]}
    for _ in range(size["repeat"]):
        for way, run in ways.items():
            seconds, verdict = timed(run)
            if not verdict.ok or verdict.events_checked != events:
                raise SystemExit(f"verification ({way}) of the seeded chain failed: {verdict}")
            times[way].append(seconds)
        seconds, count = timed(read)
        assert count == events
        times["read"].append(seconds)
    figures: dict[str, Any] = {"events": events, "workers": workers}
    for way, taken in times.items():
        figures[f"{way}_events_per_s"] = round(events / statistics.median(taken))
    figures["db_seconds"] = round(statistics.median(times["db"]), 3)
    figures["load_average"] = [load_before, load_average()]
    if in_memory:
        with db.session(write=False) as session:
            rows = list(repository.chain_rows(session, chain_id=chain_id))
        figures["memory_events_per_s"] = verify_in_memory(rows, size["repeat"])
    return figures


def verify_in_memory(rows: list[Any], repeat: int) -> int:
    def walk() -> int:
        return sum(1 for step in chain.verify_events(rows) if not isinstance(step, chain.Fault))

    times = []
    for _ in range(repeat):
        seconds, checked = timed(walk)
        assert checked == len(rows)
        times.append(seconds)
    return round(len(rows) / statistics.median(times))


# ---- main ----


def bench_database(url: str, size: dict[str, int], *, in_memory: bool) -> dict[str, Any]:
    db = Database(url)
    try:
        log(f"{db.dialect}: appends")
        figures = bench_appends(db, size)
        log(f"{db.dialect}: verification")
        figures["verify"] = bench_verify(db, size, in_memory=in_memory)
    finally:
        db.dispose()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke size (as CI runs it)")
    parser.add_argument(
        "--database-url",
        help="benchmark only this database (PostgreSQL: a server to make a throwaway database "
        "on; SQLite: a scratch file). Default: a temp SQLite file and a throwaway database on "
        f"{DEFAULT_POSTGRES_SERVER}",
    )
    args = parser.parse_args(argv)
    size = SIZES["quick" if args.quick else "full"]

    targets: list[tuple[str, str | None]] = []  # (dialect, url)
    if args.database_url is None:
        targets = [("sqlite", None), ("postgresql", DEFAULT_POSTGRES_SERVER)]
    elif args.database_url.startswith("postgresql"):
        targets = [("postgresql", args.database_url)]
    elif args.database_url.startswith("sqlite"):
        targets = [("sqlite", args.database_url)]
    else:
        parser.error("--database-url must be a sqlite:/// or postgresql:// URL")

    report: dict[str, Any] = {"size": "quick" if args.quick else "full"}
    load_before = os.getloadavg()[0]
    pg_version = None
    for n, (dialect, url) in enumerate(targets):
        # The in-memory figure does not depend on the database: measured once, on the first.
        if dialect == "postgresql":
            assert url is not None
            with throwaway_postgres(url) as db_url:
                pg_version = postgres_version(db_url)
                report["postgresql"] = bench_database(db_url, size, in_memory=n == 0)
        else:
            with scratch_sqlite(url) as db_url:
                report["sqlite"] = bench_database(db_url, size, in_memory=n == 0)

    databases = [d for d, _ in targets]
    report["verify"] = {
        "events": size["verify"],
        "memory_events_per_s": report[databases[0]]["verify"].pop("memory_events_per_s"),
        **{f"{d}_events_per_s": report[d]["verify"]["db_events_per_s"] for d in databases},
    }
    report["targets"] = {
        "overhead_pct_max": TARGET_OVERHEAD_PCT,
        "verify_events_per_s_min": TARGET_VERIFY_PER_S,
        "overhead_met": {d: report[d]["overhead_pct"] <= TARGET_OVERHEAD_PCT for d in databases},
        "verify_met": {
            d: report[d]["verify"]["db_events_per_s"] >= TARGET_VERIFY_PER_S for d in databases
        },
    }
    # The machine may be shared: a busy one gives lower figures, so say how busy it was.
    load = {"load_average_before": load_before, "load_average_after": os.getloadavg()[0]}
    report = {"machine": {**machine(pg_version), **load}, **report}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
