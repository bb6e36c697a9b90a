"""HTTP benchmark: the general request stack, an authenticated read against `/healthz` on the
same server in the same run.

    .venv/bin/python bench/http_stack.py            # full size, a temp SQLite file
    .venv/bin/python bench/http_stack.py --quick    # smoke size (CI)
    .venv/bin/python bench/http_stack.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

The server is `uvicorn tenantry.asgi:app` in a process of its own (configured by environment
variables, as an operator runs it; one worker, the in-process rate-limit store, every plan's
rates times `TENANTRY_RATE_LIMIT_MULTIPLIER`=10,000 so that nothing is rate limited), on
loopback; the load comes from this process, so on a small machine the two share the CPU, but
not a GIL.

One organization on the Professional plan (a soft daily API-calls quota, counted on every
request), with 10 teams, an owner signed in (a JWT access token) and an org-wide API key. Three
requests, each over 8 and then 16 HTTP/1.1 keep-alive connections in a closed loop (each
connection sends its next request when its last answer came):
- `GET /healthz`: no authentication, no database, no dependencies (the framework's floor);
- `GET /api/v1/orgs/{org}/teams` with the JWT (`teams_jwt`) and with the API key
  (`teams_api_key`): authentication, the org's version stamp, the rate limits and the quota,
  the permission check, one page of teams read and serialized, the call recorded in the
  API-calls ledger.
Every answer must be 200 with the body the first request got (checked before the clock starts:
the 10 teams); any other answer fails the run. The cells take turns (healthz, JWT, API key, at 8
then 16 connections) for a few rounds, so a machine that slows down meanwhile slows them all;
each cell is timed after an untimed warm-up on its own connections. Per cell: requests per
second, p50/p99 latency, and the server's CPU per request (from /proc, all its threads) beside
the load generator's. `ratio` is teams_rps / healthz_rps per credential and connection count.

Prints one JSON object on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from audit import (
    log,
    machine,
    postgres_version,
    scratch_sqlite,
    throwaway_postgres,
)

TARGET_RATIO = 0.35
CONNECTIONS = (8, 16)
TEAMS = 10
PLAN = "professional"
RATE_LIMIT_MULTIPLIER = 10_000
PASSWORD = "bench passphrase long enough 1"
SIZES: dict[str, dict[str, float]] = {
    # rounds of every cell; seconds timed per cell and round; seconds of warm-up before each
    "full": {"rounds": 3, "seconds": 4.0, "warm_up": 0.5},
    "quick": {"rounds": 1, "seconds": 0.5, "warm_up": 0.1},
}
KINDS = ("healthz", "teams_jwt", "teams_api_key")
CREDENTIALS = ("jwt", "api_key")


# ---- the server ----


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    base: str
    pid: int


@contextlib.contextmanager
def server(url: str, data_dir: Path) -> Iterator[Server]:
    """`uvicorn tenantry.asgi:app` on a free loopback port, until the block ends."""
    port = free_port()
    env = {
        **os.environ,
        "TENANTRY_DATABASE_URL": url,
        "TENANTRY_DATA_DIR": str(data_dir),
        "TENANTRY_SECRET_KEY": "bench-" + "x" * 40,
        "TENANTRY_RATE_LIMIT_MULTIPLIER": str(RATE_LIMIT_MULTIPLIER),
    }
    env.pop("TENANTRY_REDIS_URL", None)  # the in-process store, as a single server runs
    command = [sys.executable, "-m", "uvicorn", "tenantry.asgi:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    command += ["--timeout-keep-alive", "120"]
    process = subprocess.Popen(command, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        yield Server(base, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---- the tenant ----


@dataclass(frozen=True)
class Tenant:
    org: str
    jwt: str
    api_key: str
    teams: frozenset[str]


def tenant(base: str) -> Tenant:
    """An onboarded org with `TEAMS` teams (the one onboarding makes and more), its owner's
    access token and an org-wide API key."""
    with httpx.Client(base_url=base, timeout=60) as http:
        body = {
            "company_name": "Bench",
            "admin_email": "bench-http@example.com",
            "admin_password": PASSWORD,
            "plan": PLAN,
        }
        resp = http.post("/api/v1/onboard", json=body)
        assert resp.status_code == 201, resp.text
        made = resp.json()
        org, owner = made["organization"]["id"], {"Authorization": f"Bearer {made['access_token']}"}
        teams = {made["team"]["id"]}
        while len(teams) < TEAMS:
            resp = http.post(
                f"/api/v1/orgs/{org}/teams", headers=owner, json={"name": f"Team {len(teams)}"}
            )
            assert resp.status_code == 201, resp.text
            teams.add(resp.json()["id"])
        resp = http.post(f"/api/v1/orgs/{org}/api-keys", headers=owner, json={"name": "bench"})
        assert resp.status_code == 201, resp.text
        return Tenant(org, made["access_token"], resp.json()["secret"], frozenset(teams))


def requests_of(base: str, who: Tenant) -> dict[str, tuple[bytes, bytes]]:
    """Each kind's request as raw HTTP/1.1 and the body every answer to it must have (the first
    answer's, once it is checked)."""
    host = base.removeprefix("http://")
    teams = f"/api/v1/orgs/{who.org}/teams"
    found: dict[str, tuple[bytes, bytes]] = {}
    with httpx.Client(base_url=base, timeout=60) as http:
        for kind, path, credential in (
            ("healthz", "/healthz", None),
            ("teams_jwt", teams, who.jwt),
            ("teams_api_key", teams, who.api_key),
        ):
            headers = {} if credential is None else {"Authorization": f"Bearer {credential}"}
            resp = http.get(path, headers=headers)
            if resp.status_code != 200:
                raise SystemExit(f"{kind}: {resp.status_code} {resp.text[:300]}")
            answer = orjson.loads(resp.content)
            if kind == "healthz":
                ok = answer.get("status") == "ok"
            else:
                ok = {t["id"] for t in answer["items"]} == who.teams and not answer["next_cursor"]
            if not ok:
                raise SystemExit(f"{kind}: unexpected answer {resp.text[:300]}")
            head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
            if credential is not None:
                head += f"Authorization: Bearer {credential}\r\n"
            found[kind] = ((head + "\r\n").encode(), resp.content)
    return found


# ---- the load ----


class Connection:
    """One keep-alive HTTP/1.1 connection that sends the same request again and again: the
    load generator's whole client, a few microseconds per request."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base: str) -> Connection:
        host, port = base.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def send(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


@dataclass
class Cell:
    """What one kind of request did over one number of connections, over every round."""

    requests: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    rounds_rps: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def closed_loop(
    connections: list[Connection], request: bytes, expected: bytes, seconds: float, cell: Cell
) -> tuple[int, float]:
    """Every connection sends its next request as soon as its answer came, until `seconds` have
    passed; returns the answers and the time until the last came."""
    deadline = time.perf_counter() + seconds
    answered = 0

    async def client(conn: Connection) -> None:
        nonlocal answered
        while time.perf_counter() < deadline:
            begun = time.perf_counter()
            status, body = await conn.send(request)
            cell.latencies.append(time.perf_counter() - begun)
            answered += 1
            if (status != 200 or body != expected) and len(cell.errors) < 20:
                cell.errors.append(f"{status} {body[:200]!r}")

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in connections))
    return answered, time.perf_counter() - started


async def run_cell(
    srv: Server, request: bytes, expected: bytes, clients: int, size: dict[str, float], cell: Cell
) -> None:
    connections = [await Connection.open(srv.base) for _ in range(clients)]
    try:
        warm = Cell()
        await closed_loop(connections, request, expected, size["warm_up"], warm)
        cell.errors += warm.errors
        kept = len(cell.latencies)
        server_before, client_before = process_cpu_seconds(srv.pid), own_cpu_seconds()
        answered, seconds = await closed_loop(connections, request, expected, size["seconds"], cell)
        cell.server_cpu += process_cpu_seconds(srv.pid) - server_before
        cell.client_cpu += own_cpu_seconds() - client_before
        assert len(cell.latencies) - kept == answered
        cell.requests += answered
        cell.seconds += seconds
        cell.rounds_rps.append(round(answered / seconds, 1))
    finally:
        for conn in connections:
            conn.close()


def percentile_ms(ordered: list[float], p: float) -> float:
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000, 2)


def cell_figures(cell: Cell) -> dict[str, Any]:
    ordered = sorted(cell.latencies)
    return {
        "requests": cell.requests,
        "requests_per_s": round(cell.requests / cell.seconds, 1),
        "rounds_requests_per_s": cell.rounds_rps,
        "p50_ms": percentile_ms(ordered, 0.50),
        "p99_ms": percentile_ms(ordered, 0.99),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
        "server_cpu_ms_per_request": round(cell.server_cpu / cell.requests * 1000, 3),
        "client_cpu_ms_per_request": round(cell.client_cpu / cell.requests * 1000, 3),
    }


def event_loop_runner() -> asyncio.Runner:
    """uvloop when it is there (it comes with uvicorn[standard]): the client's own cost stays
    small beside the server's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return asyncio.Runner(loop_factory=factory)


def bench_database(url: str, size: dict[str, float]) -> tuple[dict[str, Any], list[str]]:
    cells = {(n, kind): Cell() for n in CONNECTIONS for kind in KINDS}
    load = [os.getloadavg()[0]]
    with (
        tempfile.TemporaryDirectory(prefix="tenantry-bench-data-") as data_dir,
        server(url, Path(data_dir)) as srv,
        event_loop_runner() as runner,
    ):
        who = tenant(srv.base)
        requests = requests_of(srv.base, who)
        for i in range(int(size["rounds"])):
            for n in CONNECTIONS:
                for kind in KINDS:
                    log(f"round {i + 1}: {kind}, {n} connections")
                    request, expected = requests[kind]
                    work: Coroutine[Any, Any, None] = run_cell(
                        srv, request, expected, n, size, cells[(n, kind)]
                    )
                    runner.run(work)
    load.append(os.getloadavg()[0])
    errors = [f"{kind}/{n}: {e}" for (n, kind), c in cells.items() for e in c.errors]
    figures: dict[str, Any] = {}
    for n in CONNECTIONS:
        by_kind = {kind: cell_figures(cells[(n, kind)]) for kind in KINDS}
        healthz = by_kind["healthz"]
        by_kind["ratio"] = {
            kind.removeprefix("teams_"): round(
                by_kind[kind]["requests_per_s"] / healthz["requests_per_s"], 3
            )
            for kind in KINDS[1:]
        }
        # The same ratio by the server's CPU per request: what the request stack costs,
        # whatever share of the machine the load generator took.
        by_kind["cpu_ratio"] = {
            kind.removeprefix("teams_"): round(
                healthz["server_cpu_ms_per_request"] / by_kind[kind]["server_cpu_ms_per_request"],
                3,
            )
            for kind in KINDS[1:]
        }
        figures[f"connections_{n}"] = by_kind
    figures["load_average"] = load
    return figures, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke size (as CI runs it)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server (a throwaway database is made on it and dropped) or a scratch "
        "SQLite file; default: a temp SQLite file",
    )
    args = parser.parse_args(argv)
    size = SIZES["quick" if args.quick else "full"]
    url: str | None = args.database_url
    if url is not None and not url.startswith(("postgresql", "sqlite")):
        parser.error("--database-url must be a sqlite:/// or postgresql:// URL")
    load_before = os.getloadavg()[0]
    pg_version = None
    if url is not None and url.startswith("postgresql"):
        dialect = "postgresql"
        with throwaway_postgres(url) as db_url:
            pg_version = postgres_version(db_url)
            figures, errors = bench_database(db_url, size)
    else:
        dialect = "sqlite"
        with scratch_sqlite(url) as db_url:
            figures, errors = bench_database(db_url, size)
    ratios = [figures[f"connections_{n}"]["ratio"][k] for n in CONNECTIONS for k in CREDENTIALS]
    report: dict[str, Any] = {
        "machine": {
            **machine(pg_version),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg()[0],
        },
        "size": "quick" if args.quick else "full",
        "database": dialect,
        "setup": {
            "server": "uvicorn tenantry.asgi:app, one process, in-process rate-limit store",
            "plan": PLAN,
            "rate_limit_multiplier": RATE_LIMIT_MULTIPLIER,
            "teams_listed": TEAMS,
            "rounds": int(size["rounds"]),
            "seconds_per_cell_and_round": size["seconds"],
            "warm_up_seconds": size["warm_up"],
        },
        dialect: figures,
        "targets": {
            "ratio_min": TARGET_RATIO,
            "ratios": {
                kind: {str(n): figures[f"connections_{n}"]["ratio"][kind] for n in CONNECTIONS}
                for kind in CREDENTIALS
            },
            "ratio_met": {
                kind: all(
                    figures[f"connections_{n}"]["ratio"][kind] >= TARGET_RATIO for n in CONNECTIONS
                )
                for kind in CREDENTIALS
            },
            "lowest_ratio": min(ratios),
        },
        "errors": errors,
    }
    print(json.dumps(report, indent=2))
    if errors:
        log(f"wrong answers: {errors[:3]}")
    # A wrong answer (an error, a 429, another body) fails the run; a slow one does not.
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
