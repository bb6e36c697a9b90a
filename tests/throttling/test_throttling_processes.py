"""Limits hold across two real server processes sharing one database and one Redis.

Two `uvicorn tenantry.asgi:app` processes are started on loopback ports, configured only through
the environment as an operator would (the suite's database, a real Redis with a key prefix of
this test's own). Requests split across both, sent at once, are allowed exactly as often as the
org's limit says in total: the buckets and counters live in Redis, not in either process. Run
leases acquired at once through both processes fill exactly the plan's slots. Stopping the
processes writes their buffered `api_calls` usage. Skipped without TENANTRY_TEST_REDIS_URL.
"""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import Factory, RedisForTests, bearer
from tenantry.config import Settings
from tenantry.kit.db import Database
from tenantry.metering.models import UsageEvent
from tenantry.throttling.models import RunLease

STARTUP_SECONDS = 60
STARTED = b"Application startup complete"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_started(process: subprocess.Popen[bytes]) -> None:
    """Read the server's log until it says it has started (or exits, or the time is up).
    Raw reads of the pipe: a buffered reader could hold the line while select() waits."""
    assert process.stderr is not None
    fd = process.stderr.fileno()
    deadline = time.monotonic() + STARTUP_SECONDS
    seen = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while STARTED not in seen and time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                break
            chunk = os.read(fd, 65536)
            if not chunk:  # the process ended
                break
            seen += chunk
    if STARTED not in seen:
        raise AssertionError("the server did not start:\n" + seen.decode(errors="replace"))


def _start(env: dict[str, str]) -> Server:
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "tenantry.asgi:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    process = subprocess.Popen(
        command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, bufsize=0
    )
    return Server(process, f"http://127.0.0.1:{port}")


def _stop(server: Server) -> None:
    server.process.terminate()  # a graceful shutdown: the app's lifespan ends
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def servers(
    settings: Settings, database_url: str, real_redis: RedisForTests, tmp_path: Path
) -> Iterator[list[Server]]:
    assert settings.secret_key is not None
    env = {
        **os.environ,
        "TENANTRY_DATABASE_URL": database_url,
        "TENANTRY_SECRET_KEY": settings.secret_key.get_secret_value(),
        "TENANTRY_DATA_DIR": str(tmp_path / "servers"),
        "TENANTRY_REDIS_URL": real_redis.url,
        "TENANTRY_REDIS_KEY_PREFIX": real_redis.prefix,
        "TENANTRY_RATE_LIMIT_MULTIPLIER": "1",  # the plans' own limits
    }
    started = [_start(env), _start(env)]
    try:
        for server in started:
            _wait_until_started(server.process)
            health = httpx.get(server.url + "/healthz", timeout=10)
            assert health.status_code == 200, health.text
        yield started
    finally:
        for server in started:
            _stop(server)


def _send_split(servers: list[Server], path: str, headers: dict[str, str], n: int) -> list[int]:
    """`n` requests at once, alternating between the servers; their statuses."""
    clients = [httpx.Client(base_url=s.url, headers=headers, timeout=30) for s in servers]
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = pool.map(lambda i: clients[i % len(clients)].get(path), range(n))
            return [r.status_code for r in answers]
    finally:
        for client in clients:
            client.close()


def test_two_processes_allow_exactly_the_limit_in_total(
    client: TestClient,
    factory: Factory,
    servers: list[Server],
    database: Database,
    real_redis: RedisForTests,
) -> None:
    acme = factory.tenant("Acme")
    # 10 at once, then one a minute: the test ends long before a second request is earned.
    tight = client.put(
        f"/api/v1/orgs/{acme.org_id}/rate-limits",
        headers=acme.headers,
        json={"org_per_minute": 1, "org_burst": 10},
    )
    assert tight.status_code == 200, tight.text
    # An API key: the servers' clocks are real, and the test's tokens are issued on its own.
    key = bearer(factory.api_key(acme)["secret"])
    statuses = _send_split(servers, f"/api/v1/orgs/{acme.org_id}/teams", key, 40)
    assert sorted(statuses) == [200] * 10 + [429] * 30
    # The daily quota counted the 10 allowed calls once each, in the shared Redis.
    shared = redis.Redis.from_url(real_redis.url, decode_responses=True)
    try:
        day = datetime.now(UTC).date().isoformat()
        counted = shared.get(f"{real_redis.prefix}q:api_calls:{acme.org_id}:{day}")
    finally:
        shared.close()
    assert counted == "10"

    # Leases: 12 acquires at once through both processes for the Free plan's 5 slots.
    lab = factory.tenant("Lab")
    path = f"/api/v1/teams/{lab.team_id}/runs/leases"
    lab_key = bearer(factory.api_key(lab)["secret"])
    clients = [httpx.Client(base_url=s.url, headers=lab_key, timeout=30) for s in servers]
    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(lambda i: clients[i % 2].post(path, json={}), range(12)))
    finally:
        for http in clients:
            http.close()
    assert sorted(r.status_code for r in answers) == [201] * 5 + [402] * 7
    with database.session(write=False) as session:
        leases = session.scalar(
            select(func.count()).select_from(RunLease).where(RunLease.org_id == lab.org_id)
        )
    assert leases == 5

    # Stopped gracefully, each process writes the API calls it buffered.
    for server in servers:
        _stop(server)
    with database.session(write=False) as session:
        recorded = session.scalar(
            select(func.sum(UsageEvent.quantity)).where(
                UsageEvent.org_id == acme.org_id, UsageEvent.meter == "api_calls"
            )
        )
    assert recorded == 10
