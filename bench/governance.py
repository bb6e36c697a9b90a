"""Governance benchmark: what an org's policies cost admission, and how fast a dry run replays
a month of calls.

- Admission: `POST /api/v1/admission` (then its settle, untimed) through the app in one process
  (ASGI, in memory), for a team of an org with no policy and for the same shape of team in an
  org with 100 active policies, interleaved. The 100 are of every type and mix conditions (model
  lists and patterns, cost and token estimates, the member's daily spend, the team's monthly
  spend, requests in the last hour, data classification, region, tags, role, time of day),
  combinators and exceptions; 40 are the org's, 30 the team's or its parent's, 30 other teams'
  (never applicable). 10 of them match the request and allow it (a matching deny, approval or
  log takes another path: it refuses or writes violations). Figures: the median wall time and
  the median CPU time of this process per admission, and their ratios. Target: <= 1.3.
- Dry run: 1,000,000 calls (the quick size: 20,000) over 30 days across 24 members of 3 teams
  and 6 models, written in bulk into `llm_calls`; `POST /api/v1/policies/{id}/dry-run` over 30
  days of a cost-control policy (the member's daily spend and the model or the call's cost,
  the owner and admins excepted), against reading the same calls' columns from the database
  once (one streamed, ordered select, no work per row), taking turns after one untimed read.
  Target: <= 10x.

    .venv/bin/python bench/governance.py [--quick] [--database-url URL] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit import DEFAULT_POSTGRES_SERVER, log, scratch_sqlite, throwaway_postgres
from tenantry.app import create_app
from tenantry.config import Settings
from tenantry.kit.clock import SystemClock
from tenantry.kit.db import Database
from tenantry.spend.models import LlmCall

SIZES = {
    "full": {"admissions": 400, "calls": 1_000_000, "repeat": 3},
    "quick": {"admissions": 30, "calls": 20_000, "repeat": 1},
}
ADMISSION_TARGET = 1.3
DRY_RUN_TARGET = 10.0
POLICIES, MATCHING = 100, 10
DAYS = 30
MEMBERS = 24
MODELS = (
    ("openai", "gpt-4o", Decimal("0.0125")),
    ("openai", "gpt-4o-mini", Decimal("0.0006")),
    ("anthropic", "claude-sonnet-4", Decimal("0.018")),
    ("anthropic", "claude-haiku-3.5", Decimal("0.0032")),
    ("google", "gemini-2.5-flash", Decimal("0.0009")),
    ("mistral", "mistral-large", Decimal("0.008")),
)
PASSWORD = "bench passphrase 12345"
CHUNK = 10_000
MICRO = Decimal("0.000001")  # costs are stored to six places
# What every timed admission asks for.
REQUEST = {
    "action": "llm.generate",
    "provider": "openai",
    "model": "gpt-4o-mini",
    "estimate": {"llm_cost_usd": "0.002", "llm_input_tokens": "1200"},
    "data_classification": "internal",
    "region": "eu-west-1",
    "tags": {"project": "search", "env": "prod"},
}


def _cond(field: str, operator: str, value: Any) -> dict[str, Any]:
    return {"field": field, "operator": operator, "value": value}


def _matching() -> list[dict[str, Any]]:
    """Ten policies that hold for REQUEST and allow it."""
    c = _cond
    conditions: list[list[Any]] = [
        [c("model", "in", ["gpt-4o-mini", "gemini-2.5-flash", "claude-haiku-3.5"])],
        [c("provider", "in", ["openai", "anthropic", "google"])],
        [c("region", "matches", r"eu-(west|central)-\d")],
        [c("data_classification", "in", ["public", "internal"])],
        [c("estimated_cost", "less_than", 1)],
        [{"any": [c("tags.project", "equals", "search"), c("tags.project", "equals", "ads")]}],
        [c("tags.env", "equals", "prod"), c("estimated_tokens", "less_than", 100_000)],
        [{"not": c("model", "contains", "preview")}],
        [c("action", "equals", "llm.generate"), c("model", "not_in", ["o1", "gpt-4.5"])],
        [c("daily_cost_per_user", "less_than", 10_000)],
    ]
    kinds = ("model_access", "model_access", "data_handling", "data_handling", "cost_control",
             "custom", "usage", "model_access", "custom", "cost_control")  # fmt: skip
    return [
        {"name": f"allow {i}", "type": kinds[i], "rules": {"conditions": conds,
         "actions": [{"type": "allow"}]}}
        for i, conds in enumerate(conditions)
    ]  # fmt: skip


def _not_matching(n: int) -> list[dict[str, Any]]:
    """`n` policies of every action whose conditions do not hold for REQUEST, or whose
    exceptions cover its member (an owner), in rotation."""
    c = _cond
    approval = {"type": "require_approval",
                "parameters": {"approvers": ["lead@example.com"], "timeout_hours": 4}}  # fmt: skip
    shapes: list[tuple[str, list[Any], dict[str, Any], dict[str, Any] | None]] = [
        ("model_access", [c("model", "in", ["o1", "gpt-4.5", "claude-opus-4"])],
         {"type": "deny"}, None),
        ("cost_control", [c("estimated_cost", "greater_than", 5)], approval, None),
        ("cost_control", [c("daily_cost_per_user", "greater_than", 500)], approval,
         {"roles": ["admin"]}),
        ("usage", [c("requests_last_hour", "greater_than", 5_000)], {"type": "deny"}, None),
        ("cost_control", [c("monthly_team_cost", "greater_than", 50_000)],
         {"type": "notify", "parameters": {"channel": "finance"}}, None),
        ("data_handling", [c("data_classification", "equals", "restricted"),
                           c("region", "not_in", ["eu-west-1", "eu-central-1"])],
         {"type": "deny"}, None),
        ("model_access", [c("model", "matches", r"claude-.*opus.*")], {"type": "log"}, None),
        ("custom", [{"all": [c("tags.project", "equals", "legacy"),
                             {"any": [c("hour_of_day", "less_than", 0),
                                      c("weekday", "equals", "sunday")]}]}],
         {"type": "deny"}, None),
        ("usage", [c("estimated_tokens", "greater_than", 200_000)], {"type": "log"}, None),
        ("data_handling", [c("data_classification", "equals", "confidential")], approval,
         {"roles": ["owner"]}),
        ("model_access", [c("provider", "equals", "deepseek")], {"type": "deny"}, None),
        ("custom", [c("role", "equals", "viewer")], {"type": "deny"}, None),
        ("data_handling", [c("tags.pii", "equals", "yes")], {"type": "log"}, None),
        ("model_access", [c("model", "in", ["gpt-4o-mini"])], {"type": "log"},
         {"roles": ["owner", "admin"]}),
    ]  # fmt: skip
    out = []
    for i in range(n):
        kind, conds, action, exceptions = shapes[i % len(shapes)]
        out.append({
            "name": f"guard {i}", "type": kind,
            "rules": {"conditions": conds, "actions": [action]},
            **({"exceptions": exceptions} if exceptions else {}),
        })  # fmt: skip
    return out


def _onboard(client: TestClient) -> dict[str, str]:
    email = f"bench-{secrets.token_hex(4)}@example.com"
    made = client.post(
        "/api/v1/onboard",
        json={"company_name": "Bench", "admin_email": email, "admin_password": PASSWORD},
    )
    made.raise_for_status()
    body = made.json()
    return {
        "org": body["organization"]["id"],
        "top": body["team"]["id"],
        "owner": f"Bearer {body['access_token']}",
        "email": email,
    }


def _sign_in(client: TestClient, who: dict[str, str]) -> dict[str, str]:
    """The owner's headers with a fresh access token: a full run outlasts one."""
    resp = client.post("/api/v1/auth/login", json={"email": who["email"], "password": PASSWORD})
    resp.raise_for_status()
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def _post(client: TestClient, who: dict[str, str], path: str, body: dict[str, Any]) -> Any:
    resp = client.post(path, headers={"Authorization": who["owner"]}, json=body)
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def _org(client: TestClient) -> dict[str, str]:
    """An org whose admitting team sits under another, beside two teams of its own."""
    who = _onboard(client)
    teams = f"/api/v1/orgs/{who['org']}/teams"
    who["parent"] = _post(client, who, teams, {"name": "Research"})["id"]
    who["team"] = _post(client, who, teams, {"name": "Search", "parent_team_id": who["parent"]})[
        "id"
    ]
    who["others"] = ",".join(
        _post(client, who, teams, {"name": name})["id"] for name in ("Ads", "Support")
    )
    return who


def add_policies(client: TestClient, who: dict[str, str]) -> int:
    """100 active policies: 40 of the org, 30 of the admitting team or its parent, 30 of other
    teams; the 10 that match spread over the org's and the team chain's."""
    matching, others = _matching(), _not_matching(POLICIES - MATCHING)
    places = (
        [""] * 40 + [who["team"]] * 15 + [who["parent"]] * 15
        + [t for t in who["others"].split(",") for _ in range(15)]
    )  # fmt: skip
    # The matching ones go to the org, the team and the parent in turn.
    slots = [0, 40, 55, 1, 41, 56, 2, 42, 57, 3]
    specs: list[dict[str, Any] | None] = [None] * POLICIES
    for slot, spec in zip(slots, matching, strict=True):
        specs[slot] = spec
    rest = iter(others)
    for i, place in enumerate(places):
        spec = specs[i] or next(rest)
        body = spec | {"status": "active"}
        if place:
            path = f"/api/v1/teams/{place}/governance/policies"
            _post(client, who, path, {"action": "create_policy", "policy": body})
        else:
            _post(client, who, f"/api/v1/orgs/{who['org']}/policies", body)
    return POLICIES


def _admit(client: TestClient, who: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one admission (its settle untimed)."""
    headers = {"Authorization": who["owner"]}
    wall, cpu = time.perf_counter(), time.process_time()
    resp = client.post("/api/v1/admission", headers=headers, json=REQUEST | {"team": who["team"]})
    took = time.perf_counter() - wall, time.process_time() - cpu
    decided = resp.json()
    assert resp.status_code == 200 and decided["decision"] == "allow", resp.text
    if decided.get("reservation_id"):
        client.post(
            f"/api/v1/admission/{decided['reservation_id']}/settle",
            headers=headers,
            json={"usage": {"llm_cost_usd": "0.002"}},
        ).raise_for_status()
    return took


def admission(client: TestClient, total: int) -> dict[str, Any]:
    plain, governed = _org(client), _org(client)
    add_policies(client, governed)
    explained = _post(
        client,
        governed,
        f"/api/v1/orgs/{governed['org']}/governance/explain",
        REQUEST | {"team": governed["team"]},
    )
    matched, applicable = len(explained["matched"]), len(explained["policies_applicable"])
    assert matched == MATCHING, explained
    for who in (plain, governed):  # warm: each process caches per org version
        for _ in range(10):
            _admit(client, who)
    times: dict[str, list[tuple[float, float]]] = {"none": [], "policies": []}
    log(f"governance: {total} admissions each, with no policy and with {POLICIES}, interleaved")
    for _ in range(total):
        times["none"].append(_admit(client, plain))
        times["policies"].append(_admit(client, governed))
    wall = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
    cpu = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    return {
        "admissions_each": total,
        "policies_active": POLICIES,
        "policies_applicable": applicable,
        "policies_matching": matched,
        "p50_ms_no_policy": round(wall["none"] * 1000, 3),
        "p50_ms_policies": round(wall["policies"] * 1000, 3),
        "ratio": round(wall["policies"] / wall["none"], 3),
        "cpu_p50_ms_no_policy": round(cpu["none"] * 1000, 3),
        "cpu_p50_ms_policies": round(cpu["policies"] * 1000, 3),
        "cpu_ratio": round(cpu["policies"] / cpu["none"], 3),
        "target_ratio": ADMISSION_TARGET,
    }


def fill_calls(db: Database, org: str, teams: list[str], calls: int, *, until: datetime) -> None:
    """`calls` calls over the last 30 days, busier in working hours, across members (each in
    one team) and models, the cheap models the most used; written in bulk, as recording would
    have left them."""
    rng = np.random.default_rng(calls)
    # Whole hours that end by `until`, within the last 30 days however late the replay starts.
    hours = np.arange(DAYS * 24 - 2)
    start = until - timedelta(hours=len(hours))
    # Seconds into the window, weighted to 08:00-19:00 UTC.
    weight = np.where((hours % 24 >= 8) & (hours % 24 < 19), 4.0, 1.0)
    hour = rng.choice(hours, size=calls, p=weight / weight.sum())
    offset = np.sort(hour * 3600 + rng.integers(0, 3600, size=calls))
    member = rng.integers(0, MEMBERS, size=calls)
    model = rng.choice(len(MODELS), size=calls, p=[0.2, 0.35, 0.1, 0.15, 0.15, 0.05])
    tokens_in = rng.integers(200, 6000, size=calls)
    tokens_out = rng.integers(50, 1500, size=calls)
    tagged = rng.random(size=calls) < 0.3
    with db.session(write=True) as session:
        for k in range(0, calls, CHUNK):
            rows = []
            for i in range(k, min(k + CHUNK, calls)):
                m, who = int(model[i]), int(member[i])
                provider, name, unit = MODELS[m]
                tin, tout = int(tokens_in[i]), int(tokens_out[i])
                rows.append({
                    "org_id": org, "id": f"call-{i}",
                    "at": start + timedelta(seconds=int(offset[i])),
                    "team_id": teams[who % len(teams)], "user_id": f"usr_bench{who:02d}",
                    "api_key_id": None, "provider": provider, "model": name,
                    "input_tokens": tin, "output_tokens": tout, "cached_input_tokens": 0,
                    "cost": (unit * (tin + tout) / 1000).quantize(MICRO), "cost_source": "computed",
                    "latency_ms": 700, "status": "success", "error_kind": None,
                    "tags": {"project": "search", "env": "prod"} if tagged[i] else {},
                    "reservation_id": None,
                })  # fmt: skip
            session.execute(insert(LlmCall), rows)
            if k // CHUNK % 20 == 19:
                log(f"  {k + CHUNK:,} calls written")
        session.commit()


def read_calls(db: Database, org: str, since: datetime, until: datetime) -> int:
    """The reference: the columns of the replayed calls, read once, oldest first."""
    t = LlmCall
    query = (
        select(t.at, t.team_id, t.user_id, t.api_key_id, t.provider, t.model,
               t.input_tokens, t.output_tokens, t.cost, t.tags)
        .where(t.org_id == org, t.at >= since, t.at < until)
        .order_by(t.at, t.id)
    )  # fmt: skip
    n = 0
    with db.session(write=False) as session:
        for partition in session.execute(query.execution_options(yield_per=5000)).partitions():
            n += len(partition)
    return n


DRY_RUN_POLICY = {
    "name": "Costly days go to approval",
    "type": "cost_control",
    "rules": {
        "conditions": [
            {"field": "daily_cost_per_user", "operator": "greater_than", "value": 20},
            {"any": [
                {"field": "model", "operator": "in", "value": ["gpt-4o", "claude-sonnet-4"]},
                {"field": "estimated_cost", "operator": "greater_than", "value": 0.05},
            ]},
        ],
        "actions": [{"type": "require_approval",
                     "parameters": {"approvers": ["lead@example.com"], "timeout_hours": 4}}],
    },
    "exceptions": {"roles": ["owner", "admin"]},
}  # fmt: skip


def _timed(run: Callable[[], Any]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = run()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def dry_run(client: TestClient, db: Database, total: int, repeat: int) -> dict[str, Any]:
    who = _org(client)
    teams = [who["team"], *who["others"].split(",")]
    until = datetime.now(UTC)
    started = time.perf_counter()
    log(f"governance: writing {total:,} calls")
    fill_calls(db, who["org"], teams, total, until=until - timedelta(minutes=1))
    log(f"  written in {time.perf_counter() - started:.1f}s")
    policy = _post(client, who, f"/api/v1/orgs/{who['org']}/policies", DRY_RUN_POLICY)
    since = until - timedelta(days=DAYS)
    path = f"/api/v1/policies/{policy['id']}/dry-run"

    def replay() -> dict[str, Any]:
        resp = client.post(path, headers=_sign_in(client, who), json={"days": DAYS})
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    # Untimed: the first read of freshly written calls would pay the page cache for both.
    read_calls(db, who["org"], since, until + timedelta(1))
    reads: list[tuple[float, float]] = []
    runs: list[tuple[float, float]] = []
    report: dict[str, Any] = {}
    for _ in range(repeat):
        wall, cpu, n = _timed(lambda: read_calls(db, who["org"], since, until + timedelta(1)))
        assert n == total, (n, total)
        reads.append((wall, cpu))
        wall, cpu, report = _timed(replay)
        runs.append((wall, cpu))
        log(f"  read {reads[-1][0]:.2f}s, dry run {wall:.2f}s")
    assert report["calls"] == total, report["calls"]
    read_wall, run_wall = (statistics.median(t[0] for t in v) for v in (reads, runs))
    read_cpu, run_cpu = (statistics.median(t[1] for t in v) for v in (reads, runs))
    return {
        "calls": total,
        "repeat": repeat,
        "would": report["would"],
        "read_s": round(read_wall, 3),
        "dry_run_s": round(run_wall, 3),
        "calls_per_s": round(total / run_wall),
        "ratio": round(run_wall / read_wall, 2),
        "read_cpu_s": round(read_cpu, 3),
        "dry_run_cpu_s": round(run_cpu, 3),
        "cpu_ratio": round(run_cpu / read_cpu, 2),
        "target_ratio": DRY_RUN_TARGET,
    }


def run(url: str, size: str) -> dict[str, Any]:
    sizes = SIZES[size]
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as scratch:
        settings = Settings(
            data_dir=Path(scratch),
            database_url=url,
            secret_key="bench-secret-" + "x" * 40,
            rate_limit_multiplier=10_000,
        )
        db = Database(url)
        app = create_app(settings, clock=SystemClock(), database=db)
        out: dict[str, Any] = {"database": db.writer_engine.dialect.name, "size": size}
        load = os.getloadavg()[0]
        with TestClient(app) as client:
            out["admission"] = admission(client, sizes["admissions"])
            out["dry_run"] = dry_run(client, db, sizes["calls"], sizes["repeat"])
        out["load_average"] = [round(load, 2), round(os.getloadavg()[0], 2)]
        with db.session(write=False) as session:
            out["calls_in_database"] = int(session.scalar(select(func.count(LlmCall.id))) or 0)
        db.dispose()
    out["admission"]["met"] = out["admission"]["ratio"] <= ADMISSION_TARGET
    out["dry_run"]["met"] = out["dry_run"]["ratio"] <= DRY_RUN_TARGET
    return out


def targets(url: str | None) -> Iterator[str]:
    for target in [url] if url else ["sqlite", DEFAULT_POSTGRES_SERVER]:
        if target.startswith("sqlite"):
            with scratch_sqlite(None if target == "sqlite" else target) as scratch:
                yield scratch
        else:
            with throwaway_postgres(target) as scratch:
                yield scratch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke size (as CI runs it)")
    parser.add_argument("--database-url", help="only this database (sqlite:/// or postgresql://)")
    parser.add_argument("--repeat", type=int, help="dry runs and reads, each (default: 3)")
    args = parser.parse_args(argv)
    size = "quick" if args.quick else "full"
    if args.repeat:
        SIZES[size]["repeat"] = args.repeat
    report: dict[str, Any] = {"size": size}
    for url in targets(args.database_url):
        result = run(url, size)
        report[result.pop("database")] = result
    report["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["targets"] = {
        "admission_ratio_max": ADMISSION_TARGET,
        "dry_run_ratio_max": DRY_RUN_TARGET,
        "met": {
            d: {"admission": report[d]["admission"]["met"], "dry_run": report[d]["dry_run"]["met"]}
            for d in ("sqlite", "postgresql")
            if d in report
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
