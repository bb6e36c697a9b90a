"""Dashboard benchmark: a page's server time against the server time of the API calls that would
show the same things, on the same server in the same run.

    .venv/bin/python bench/dashboard.py            # full size, a temp SQLite file
    .venv/bin/python bench/dashboard.py --quick    # smoke size (CI)
    .venv/bin/python bench/dashboard.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

The server is `uvicorn tenantry.asgi:app` in a process of its own, as `bench/http_stack.py` runs
it. One organization on Professional with 8 teams, 12 members, a week of usage events by model
and member (a few thousand), and its audit trail. Its owner is signed in twice: in a browser
session (the cookie of `POST /sign-in`, as a browser gets it) and with an access token.

Four pages, each with the API calls a client would make to show what the page shows:
- overview `/orgs/{org}`: GET /me (the organization switcher), the org, its plan, quotas, quota
  alerts and members (the page shows their number);
- usage `/orgs/{org}/usage?group_by=model&granularity=day&meter=llm_input_tokens`: GET /me, the
  org's teams (the scope chooser), the summary by model and day over the page's 30 days, the plan
  and the quotas;
- runs `/orgs/{org}/teams/{team}/experiments/{experiment}`: GET /me, the experiment and its
  runs (params and latest metrics), the runs table of an experiment of the first team;
- audit `/orgs/{org}/audit`: GET /me, the first 50 events, the members and the teams (actors and
  teams by name). The chain's verdict is a part the page loads after it
  (`/orgs/{org}/audit/verify`, against GET /audit-events/verify), measured on its own.

Each request is sent over one keep-alive connection in a closed loop for a while, after an
untimed warm-up; the rounds take turns through every request, so a machine that slows down slows
them all. The server's CPU per request (from /proc, all its threads) is its time: a page's is
compared with the sum of its API calls' (`ratio`, target at most 1.5). Every answer must be 200
(and a page must be the page, an API answer JSON); any other answer fails the run. In the full
size a ratio above the target fails it too; the quick size, run on a busy CI machine, only reports.

Prints one JSON object on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from audit import log, machine, postgres_version, scratch_sqlite, throwaway_postgres
from http_stack import Connection, Server, event_loop_runner, process_cpu_seconds, server

TARGET_RATIO = 1.5
PLAN = "professional"
PASSWORD = "bench passphrase long enough 1"
TEAMS = 8
MEMBERS = 12
MODELS = ("gpt-4o", "claude-3-5", "llama-3", "mistral-large")
SIZES: dict[str, dict[str, float]] = {
    # rounds through every request; seconds timed per request and round; warm-up seconds;
    # days of usage and events per day
    "full": {"rounds": 3, "seconds": 3.0, "warm_up": 0.5, "days": 7, "per_day": 600, "runs": 50},
    "quick": {"rounds": 1, "seconds": 0.4, "warm_up": 0.1, "days": 2, "per_day": 50, "runs": 5},
}


# ---- the organization ----


@dataclass(frozen=True)
class Tenant:
    org: str
    slug: str
    token: str
    cookie: str
    team: str
    experiment: str


def _ok(resp: httpx.Response, status: int = 200) -> Any:
    if resp.status_code != status:
        raise SystemExit(
            f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text[:300]}"
        )
    return resp.json() if resp.headers.get("content-type", "").startswith("application/") else None


def _events(
    org: str, team: str, users: list[str], size: dict[str, float]
) -> Iterator[dict[str, Any]]:
    now = datetime.now(UTC)
    days, per_day = int(size["days"]), int(size["per_day"])
    for day in range(days):
        for i in range(per_day):
            at = now - timedelta(days=day, seconds=(i * 86_400 // per_day) + 600)
            model = MODELS[i % len(MODELS)]
            yield {
                "id": f"bench-{day}-{i}",
                "meter": "llm_input_tokens",
                "quantity": str(100 + (i * 37) % 900),
                "timestamp": at.isoformat(),
                "team": team,
                "user": users[i % len(users)],
                "dimensions": {"provider": model.split("-")[0], "model": model},
            }


def tenant(base: str, size: dict[str, float]) -> Tenant:
    """The organization, its teams, members and usage; the owner's token and browser cookie."""
    with httpx.Client(base_url=base, timeout=120) as http:
        made = _ok(
            http.post(
                "/api/v1/onboard",
                json={
                    "company_name": "Bench Dashboard",
                    "admin_email": "bench-dashboard@example.com",
                    "admin_password": PASSWORD,
                    "plan": PLAN,
                },
            ),
            201,
        )
        org, team = made["organization"]["id"], made["team"]["id"]
        owner = {"Authorization": f"Bearer {made['access_token']}"}
        for n in range(TEAMS - 1):
            _ok(
                http.post(f"/api/v1/orgs/{org}/teams", headers=owner, json={"name": f"Team {n}"}),
                201,
            )
        users = [made["user_id"]]
        for n in range(MEMBERS - 1):
            email = f"bench-member-{n}@example.com"
            signed = _ok(
                http.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD}), 201
            )
            invited = _ok(
                http.post(f"/api/v1/orgs/{org}/invitations", headers=owner, json={"email": email}),
                201,
            )
            joiner = {"Authorization": f"Bearer {signed['access_token']}"}
            _ok(http.post(f"/api/v1/invitations/{invited['token']}/accept", headers=joiner))
            users.append(signed["user"]["id"])
        batch: list[dict[str, Any]] = []
        for event in _events(org, team, users, size):
            batch.append(event)
            if len(batch) == 1000:
                _ok(
                    http.post(
                        "/api/v1/usage/events", headers=owner, json={"org": org, "events": batch}
                    )
                )
                batch = []
        if batch:
            _ok(
                http.post("/api/v1/usage/events", headers=owner, json={"org": org, "events": batch})
            )
        experiment = _runs(http, owner, team, size)
        cookie = sign_in(http, base)
        return Tenant(
            org, made["organization"]["slug"], made["access_token"], cookie, team, experiment
        )


def _runs(http: httpx.Client, owner: dict[str, str], team: str, size: dict[str, float]) -> str:
    """An experiment of the first team with runs, each with two params and two metrics logged
    over ten steps: the runs table's page."""
    made = _ok(
        http.post(f"/api/v1/teams/{team}/experiments", headers=owner, json={"name": "bench"}), 201
    )
    runs = f"/api/v1/teams/{team}/experiments/{made['id']}/runs"
    for n in range(int(size["runs"])):
        params = {"lr": 10 ** -(n % 4), "optimizer": ("adam", "sgd")[n % 2]}
        run = _ok(
            http.post(runs, headers=owner, json={"name": f"run-{n}", "hyperparameters": params}),
            201,
        )
        for step in range(10):
            metrics = {"loss": 1 / (step + n + 1), "accuracy": step / (step + n + 1)}
            _ok(
                http.post(
                    f"{runs}/{run['id']}/metrics",
                    headers=owner,
                    json={"metrics": metrics, "step": step},
                ),
                204,
            )
    return str(made["id"])


def sign_in(http: httpx.Client, base: str) -> str:
    """The browser session's cookie, as the sign-in form gives it."""
    form = http.get("/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None, "no CSRF token on the sign-in page"
    done = http.post(
        "/sign-in",
        data={
            "email": "bench-dashboard@example.com",
            "password": PASSWORD,
            "csrf_token": token.group(1),
        },
        headers={"Origin": base},
    )
    if done.status_code != 303 or "tenantry_session" not in http.cookies:
        raise SystemExit(f"sign-in failed: {done.status_code} {done.text[:300]}")
    return f"tenantry_session={http.cookies['tenantry_session']}"


# ---- what each page needs ----


@dataclass(frozen=True)
class Request:
    name: str
    path: str
    page: bool  # a page (the cookie) or an API call (the token)
    marker: bytes = b""  # what a page's answer must hold
    htmx: bool = False  # a part of a page, asked for by htmx


@dataclass(frozen=True)
class Comparison:
    page: Request
    api: tuple[Request, ...]


def comparisons(who: Tenant) -> list[Comparison]:
    org, slug = who.org, who.slug
    today = datetime.now(UTC).date()
    since = (today - timedelta(days=29)).isoformat()
    until = (today + timedelta(days=1)).isoformat()
    me = Request("me", "/api/v1/me", False)
    return [
        Comparison(
            Request("overview", f"/orgs/{slug}", True, b'aria-labelledby="quotas-h"'),
            (
                me,
                Request("org", f"/api/v1/orgs/{org}", False),
                Request("plan", f"/api/v1/orgs/{org}/plan", False),
                Request("quotas", f"/api/v1/orgs/{org}/quotas", False),
                Request("quota_alerts", f"/api/v1/orgs/{org}/quota-alerts", False),
                Request("members", f"/api/v1/orgs/{org}/members", False),
            ),
        ),
        Comparison(
            Request(
                "usage",
                f"/orgs/{slug}/usage?group_by=model&granularity=day&meter=llm_input_tokens",
                True,
                b'id="usage-chart"',
            ),
            (
                me,
                Request("teams", f"/api/v1/orgs/{org}/teams", False),
                Request(
                    "usage_summary",
                    f"/api/v1/orgs/{org}/usage?group_by=model&granularity=day"
                    f"&since={since}T00:00:00Z&until={until}T00:00:00Z",
                    False,
                ),
                Request("plan", f"/api/v1/orgs/{org}/plan", False),
                Request("quotas", f"/api/v1/orgs/{org}/quotas", False),
            ),
        ),
        Comparison(
            Request("audit", f"/orgs/{slug}/audit", True, b'id="events"'),
            (
                me,
                Request("audit_events", f"/api/v1/orgs/{org}/audit-events?limit=50", False),
                Request("members", f"/api/v1/orgs/{org}/members", False),
                Request("teams", f"/api/v1/orgs/{org}/teams", False),
            ),
        ),
        Comparison(
            Request(
                "runs",
                f"/orgs/{slug}/teams/{who.team}/experiments/{who.experiment}",
                True,
                b'id="runs-table"',
            ),
            (
                me,
                Request(
                    "experiment", f"/api/v1/teams/{who.team}/experiments/{who.experiment}", False
                ),
                Request(
                    "experiment_runs",
                    f"/api/v1/teams/{who.team}/experiments/{who.experiment}/runs?limit=1000",
                    False,
                ),
            ),
        ),
        Comparison(
            Request("audit_verify", f"/orgs/{slug}/audit/verify", True, b'id="verdict"', htmx=True),
            (Request("verify", f"/api/v1/orgs/{org}/audit-events/verify", False),),
        ),
    ]


def raw_request(base: str, who: Tenant, request: Request) -> bytes:
    host = base.removeprefix("http://")
    head = f"GET {request.path} HTTP/1.1\r\nHost: {host}\r\n"
    if request.page:
        head += f"Cookie: {who.cookie}\r\n"
        if request.htmx:
            head += "HX-Request: true\r\n"
    else:
        head += f"Authorization: Bearer {who.token}\r\n"
    return (head + "\r\n").encode()


def check_answer(request: Request, status: int, body: bytes) -> str | None:
    if status != 200:
        return f"{request.name}: {status} {body[:200]!r}"
    if request.page and request.marker not in body:
        return f"{request.name}: the page lacks {request.marker!r}"
    if not request.page:
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError:
            return f"{request.name}: not JSON {body[:200]!r}"
    return None


# ---- the load ----


@dataclass
class Cell:
    requests: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def closed_loop(
    srv: Server, request: Request, raw: bytes, seconds: float, cell: Cell | None
) -> None:
    conn = await Connection.open(srv.base)
    try:
        before = process_cpu_seconds(srv.pid)
        started = time.perf_counter()
        deadline = started + seconds
        answered = 0
        while time.perf_counter() < deadline:
            begun = time.perf_counter()
            status, body = await conn.send(raw)
            elapsed = time.perf_counter() - begun
            answered += 1
            if cell is None:
                continue
            cell.latencies.append(elapsed)
            problem = check_answer(request, status, body)
            if problem and len(cell.errors) < 10:
                cell.errors.append(problem)
        if cell is not None:
            cell.server_cpu += process_cpu_seconds(srv.pid) - before
            cell.seconds += time.perf_counter() - started
            cell.requests += answered
    finally:
        conn.close()


def figures_of(cell: Cell) -> dict[str, Any]:
    ordered = sorted(cell.latencies)
    return {
        "requests": cell.requests,
        "server_cpu_ms_per_request": round(cell.server_cpu / cell.requests * 1000, 3),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 2),
    }


def bench_database(url: str, size: dict[str, float]) -> tuple[dict[str, Any], list[str]]:
    load = [os.getloadavg()[0]]
    with (
        tempfile.TemporaryDirectory(prefix="tenantry-bench-data-") as data_dir,
        server(url, Path(data_dir)) as srv,
        event_loop_runner() as runner,
    ):
        log("seeding the organization")
        who = tenant(srv.base, size)
        pairs = comparisons(who)
        requests = {r.name: r for c in pairs for r in (c.page, *c.api)}
        raws = {name: raw_request(srv.base, who, r) for name, r in requests.items()}
        cells = {name: Cell() for name in requests}
        for i in range(int(size["rounds"])):
            for name, request in requests.items():
                log(f"round {i + 1}: {name}")
                warm: Coroutine[Any, Any, None] = closed_loop(
                    srv, request, raws[name], size["warm_up"], None
                )
                runner.run(warm)
                timed: Coroutine[Any, Any, None] = closed_loop(
                    srv, request, raws[name], size["seconds"], cells[name]
                )
                runner.run(timed)
    load.append(os.getloadavg()[0])
    errors = [e for c in cells.values() for e in c.errors]
    measured = {name: figures_of(cell) for name, cell in cells.items()}
    pages: dict[str, Any] = {}
    for pair in pairs:
        page_ms = measured[pair.page.name]["server_cpu_ms_per_request"]
        api_ms = sum(measured[r.name]["server_cpu_ms_per_request"] for r in pair.api)
        pages[pair.page.name] = {
            "page_server_cpu_ms": page_ms,
            "api_calls": [r.name for r in pair.api],
            "api_server_cpu_ms": round(api_ms, 3),
            "ratio": round(page_ms / api_ms, 3),
            "within_target": page_ms <= TARGET_RATIO * api_ms,
            "page_p50_ms": measured[pair.page.name]["p50_ms"],
        }
    return {"pages": pages, "requests": measured, "load_average": load}, errors


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
    report: dict[str, Any] = {
        "machine": {
            **machine(pg_version),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg()[0],
        },
        "size": "quick" if args.quick else "full",
        "database": dialect,
        "setup": {
            "plan": PLAN,
            "teams": TEAMS,
            "members": MEMBERS,
            "usage_events": int(size["days"] * size["per_day"]),
            "seconds_per_request_and_round": size["seconds"],
            "rounds": int(size["rounds"]),
        },
        "target_ratio": TARGET_RATIO,
        **figures,
        "errors": errors,
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    if errors:
        print("wrong answers:", *errors, sep="\n  ", file=sys.stderr)
        return 1
    over = [name for name, p in figures["pages"].items() if not p["within_target"]]
    if over and not args.quick:
        print(f"above {TARGET_RATIO}x the API's server time: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
