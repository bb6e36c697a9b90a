"""Metering benchmark: how fast usage goes in, and how fast (and how exactly) admission answers.

    .venv/bin/python bench/metering.py            # full: temp SQLite + throwaway PostgreSQL
    .venv/bin/python bench/metering.py --quick    # smoke size (CI)
    .venv/bin/python bench/metering.py --database-url sqlite:////tmp/bench.db

Ingestion: the same events (mixed meters, 5 teams, 20 members, 3 models, spread over a day) in
batches of 1,000 through `POST /api/v1/usage/events` (uvicorn on loopback, an API key, JSON),
in-process through `metering.service.record_events` (events + hourly rollups + counters, one
transaction per batch), and as a raw bulk insert of the same rows into `usage_events` (the
physical limit of the database), each into an org of its own.
Admission: 50 concurrent clients (asyncio + httpx, keep-alive) sending `POST /api/v1/admission`
against a hard compute-hours limit that only half of them can fit: throughput, p50 / p99
latency, and overshoot (what was reserved beyond the limit: must be 0); and the same with one
client, the latency of an unloaded server. Prints one JSON object on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx
import uvicorn
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit import (
    DEFAULT_POSTGRES_SERVER,
    log,
    machine,
    postgres_version,
    scratch_sqlite,
    throwaway_postgres,
)

from tenantry.app import create_app
from tenantry.config import Settings
from tenantry.kit.db import Database
from tenantry.metering import repository, service
from tenantry.metering.models import UsageCounter

TARGET_SHARE_OF_RAW = 0.5
TARGET_PG_EVENTS_PER_S = 10_000
TARGET_P99_MS = 5.0
BATCH = 1000
CLIENTS = 50
SIZES = {
    "full": {"events": 50_000, "admissions": 3_000, "single": 1_000},
    "quick": {"events": 2_000, "admissions": 300, "single": 50},
}
PASSWORD = "bench passphrase long enough 1"
METERS = ["llm_input_tokens", "llm_output_tokens", "llm_cost_usd", "compute_hours"]


# ---- a server on loopback ----


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadLimit:
    """Lets more sync handlers run at once than anyio's default 40, so 50 clients in flight on
    SQLite cannot starve the one that holds the write lock of a thread to finish in."""

    def __init__(self, app: Any, tokens: int) -> None:
        self.app, self.tokens, self.set = app, tokens, False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self.set:
            anyio.to_thread.current_default_thread_limiter().total_tokens = self.tokens
            self.set = True
        await self.app(scope, receive, send)


@contextmanager
def server(url: str, data_dir: Path) -> Iterator[str]:
    settings = Settings(data_dir=data_dir, database_url=url, secret_key="bench-" + "x" * 40)
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        ThreadLimit(app, 2 * CLIENTS + 20),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        # Under 50 clients an answer can take longer than uvicorn's 5 s keep-alive default.
        timeout_keep_alive=120,
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        app.state.db.dispose()


def tenant(base: str, http: httpx.Client) -> dict[str, str]:
    """An onboarded enterprise org with an API key, rate limits raised out of the way."""
    email = f"bench-{secrets.token_hex(4)}@example.com"
    body = {"company_name": "Bench", "admin_email": email, "admin_password": PASSWORD}
    made = http.post(f"{base}/api/v1/onboard", json={**body, "plan": "enterprise"}).json()
    owner = {"Authorization": f"Bearer {made['access_token']}"}
    org, team = made["organization"]["id"], made["team"]["id"]
    limits = dict.fromkeys(("org_per_minute", "org_burst", "key_per_minute", "key_burst"), 10**7)
    resp = http.put(
        f"{base}/api/v1/orgs/{org}/plan-overrides",
        headers=owner,
        json={
            "quotas": {"compute_hours": {"limit": "0", "enforcement": "hard"}},
            "rate_limits": limits,
        },
    )
    resp.raise_for_status()
    key = http.post(f"{base}/api/v1/orgs/{org}/api-keys", headers=owner, json={"name": "b"})
    return {"org": org, "team": team, "key": key.json()["secret"], "owner": owner["Authorization"]}


# ---- ingestion ----


def events(n: int, *, prefix: str, teams: list[str]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        out.append(
            {
                "id": f"{prefix}-{i}",
                "meter": METERS[i % len(METERS)],
                "quantity": str(Decimal(i % 997 + 1) / 100),
                "timestamp": (now - timedelta(seconds=(i * 17) % 86_000)).isoformat(),
                "team": teams[i % len(teams)],
                "dimensions": {"provider": "openai", "model": f"m{i % 3}"},
            }
        )
    return out


def usage_events(raw: list[dict[str, Any]]) -> list[service.UsageEvent]:
    return [
        service.UsageEvent(
            event_id=e["id"],
            meter=e["meter"],
            quantity=Decimal(e["quantity"]),
            timestamp=datetime.fromisoformat(e["timestamp"]),
            team_id=e["team"],
            dimensions=e["dimensions"],
        )
        for e in raw
    ]


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def bench_ingestion(db: Database, base: str, size: dict[str, int]) -> dict[str, Any]:
    n = size["events"]
    with httpx.Client(timeout=120) as http:
        orgs = [tenant(base, http) for _ in range(3)]
        http_org = orgs[0]
        sent = events(n, prefix="http", teams=[http_org["team"]])
        headers = {"Authorization": f"Bearer {http_org['key']}"}
        log(f"ingestion: {n} events over HTTP")
        start = time.perf_counter()
        for i in range(0, n, BATCH):
            resp = http.post(
                f"{base}/api/v1/usage/events", headers=headers, json={"events": sent[i : i + BATCH]}
            )
            assert resp.status_code == 200 and resp.json()["accepted"] == len(
                sent[i : i + BATCH]
            ), resp.text
        http_s = time.perf_counter() - start
    log(f"ingestion: {n} events in-process")
    service_events = usage_events(events(n, prefix="svc", teams=[orgs[1]["team"]]))
    start = time.perf_counter()
    for i in range(0, n, BATCH):
        with db.session(write=True) as session:
            service.record_events(session, orgs[1]["org"], service_events[i : i + BATCH])
            session.commit()
    service_s = time.perf_counter() - start
    log(f"ingestion: {n} events as a raw bulk insert")
    raw_rows = [
        service._event_row(orgs[2]["org"], e)
        for e in usage_events(events(n, prefix="raw", teams=[orgs[2]["team"]]))
    ]
    start = time.perf_counter()
    for i in range(0, n, BATCH):
        with db.session(write=True) as session:
            repository.insert_events_raw(session, raw_rows[i : i + BATCH])
            session.commit()
    raw_s = time.perf_counter() - start
    figures = {
        "events": n,
        "batch": BATCH,
        "raw_insert_events_per_s": rate(n, raw_s),
        "in_process_events_per_s": rate(n, service_s),
        "http_events_per_s": rate(n, http_s),
    }
    figures["in_process_share_of_raw"] = round(
        figures["in_process_events_per_s"] / figures["raw_insert_events_per_s"], 3
    )
    figures["http_share_of_raw"] = round(
        figures["http_events_per_s"] / figures["raw_insert_events_per_s"], 3
    )
    return figures


# ---- admission ----


async def admissions(base: str, who: dict[str, str], total: int, clients: int) -> list[float]:
    body = {"team": who["team"], "action": "llm.generate", "estimate": {"compute_hours": "1"}}
    headers = {"Authorization": f"Bearer {who['key']}"}
    latencies: list[float] = []
    decisions: list[str] = []
    remaining = total

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            resp = await http.post(f"{base}/api/v1/admission", headers=headers, json=body)
            latencies.append(time.perf_counter() - start)
            if resp.status_code == 503:  # SQLite's write lock not had within its busy timeout
                decisions.append("busy")
                continue
            assert resp.status_code == 200, resp.text
            decisions.append(resp.json()["decision"])

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    who["allowed"] = str(decisions.count("allow"))
    who["busy"] = str(decisions.count("busy"))
    return latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000, 2)


def bench_admission(db: Database, base: str, size: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, total, clients in (
        ("concurrent", size["admissions"], CLIENTS),
        ("single_client", size["single"], 1),
    ):
        with httpx.Client(timeout=60) as http:
            who = tenant(base, http)
            limit = total // 2  # half of the admissions fit
            resp = http.put(
                f"{base}/api/v1/orgs/{who['org']}/plan-overrides",
                headers={"Authorization": who["owner"]},
                json={
                    "quotas": {"compute_hours": {"limit": str(limit), "enforcement": "hard"}},
                    "rate_limits": dict.fromkeys(
                        ("org_per_minute", "org_burst", "key_per_minute", "key_burst"), 10**7
                    ),
                },
            )
            resp.raise_for_status()
        log(f"admission: {total} requests from {clients} client(s)")
        start = time.perf_counter()
        latencies = asyncio.run(admissions(base, who, total, clients))
        seconds = time.perf_counter() - start
        with db.session(write=False) as session:
            reserved = session.scalar(
                select(UsageCounter.reserved).where(
                    UsageCounter.org_id == who["org"], UsageCounter.meter == "compute_hours"
                )
            )
        allowed = int(who["allowed"])
        out[label] = {
            "clients": clients,
            "requests": total,
            "limit": limit,
            "allowed": allowed,
            "busy_503": int(who["busy"]),
            "reserved": str(reserved),
            "overshoot": max(0, allowed - limit) + max(0, int(reserved or 0) - limit),
            "requests_per_s": rate(total, seconds),
            "p50_ms": percentile(latencies, 0.50),
            "p99_ms": percentile(latencies, 0.99),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        }
    return out


def bench_database(url: str, size: dict[str, int]) -> dict[str, Any]:
    db = Database(url)
    try:
        with server(url, Path(os.environ.get("TMPDIR", "/tmp")) / "tenantry-bench-data") as base:
            figures = {"ingestion": bench_ingestion(db, base, size)}
            figures["admission"] = bench_admission(db, base, size)
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
    targets: list[tuple[str, str | None]]
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
    for dialect, url in targets:
        if dialect == "postgresql":
            assert url is not None
            with throwaway_postgres(url) as db_url:
                pg_version = postgres_version(db_url)
                report["postgresql"] = bench_database(db_url, size)
        else:
            with scratch_sqlite(url) as db_url:
                report["sqlite"] = bench_database(db_url, size)
    databases = [d for d, _ in targets]
    report["targets"] = {
        "share_of_raw_min": TARGET_SHARE_OF_RAW,
        "postgresql_events_per_s_min": TARGET_PG_EVENTS_PER_S,
        "admission_p99_ms_max": TARGET_P99_MS,
        "share_met": {
            d: report[d]["ingestion"]["in_process_share_of_raw"] >= TARGET_SHARE_OF_RAW
            for d in databases
        },
        "zero_overshoot": {
            d: all(v["overshoot"] == 0 for v in report[d]["admission"].values()) for d in databases
        },
    }
    load = {"load_average_before": load_before, "load_average_after": os.getloadavg()[0]}
    report = {"machine": {**machine(pg_version), **load}, **report}
    print(json.dumps(report, indent=2))
    # An overshoot is a wrong answer, not a slow one: the run fails.
    return 0 if all(report["targets"]["zero_overshoot"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
