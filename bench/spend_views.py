"""Spend views benchmark: a cost view over 10 million LLM calls against the same view over
10,000 (target: the ratio of their medians <= 2), because views read the hourly rollups and
never the calls.

Two orgs of the same shape (6 members x 4 models, one team) get 30 days of LLM calls, 10,000
for one and 10,000,000 for the other, spread at random over the hours and (member, model)
pairs. The calls are written straight into the rollups in bulk, as the recording path would
have left them (a row per occupied hour and pair, and per day and pair), so the big org takes
seconds to build. The
same requests are then timed in one process through the app (ASGI, in memory), interleaved:
the team's billing view (totals, breakdowns, budgets, the forecast), the org's cost view and the
team's analytics (usage and insights). The rows each view reads are printed beside the times:
they are bounded by hours x pairs, whatever the number of calls.

    .venv/bin/python bench/spend_views.py [--quick] [--database-url URL | --postgres]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
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
from tenantry.spend.models import LlmCallDailyRollup, LlmCallRollup, LlmLatencyRollup

SIZES = {
    "full": {"small": 10_000, "big": 10_000_000, "repeat": 15},
    "quick": {"small": 1_000, "big": 100_000, "repeat": 5},
}
TARGET_RATIO = 2.0
DAYS = 30
MEMBERS = 6
MODELS = (
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4"),
    ("google", "gemini-2.5-flash"),
)
PASSWORD = "bench passphrase 12345"
CHUNK = 5_000
SUMS = (
    "requests", "errors", "input_tokens", "output_tokens", "cached_input_tokens", "cost",
    "computed_requests", "unpriced_requests", "latency_ms_sum", "latency_requests",
)  # fmt: skip


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
        "team": body["team"]["id"],
        "owner": f"Bearer {body['access_token']}",
    }


def _fill(db: Database, org: str, team: str, calls: int, *, until: datetime) -> int:
    """`calls` calls spread at random over the last 30 days' hours and (member, model) pairs,
    written as the rollups recording would leave (hourly and daily); the number of hourly
    rows."""
    rng = np.random.default_rng(len(org) + calls)
    hours = DAYS * 24
    slots = hours * MEMBERS * len(MODELS)
    counts = rng.multinomial(calls, np.full(slots, 1 / slots))
    start = until - timedelta(hours=hours)
    rows: list[dict[str, Any]] = []
    latency: dict[tuple[Any, ...], int] = {}
    for slot in np.flatnonzero(counts):
        n = int(counts[slot])
        hour, rest = divmod(int(slot), MEMBERS * len(MODELS))
        member, model = divmod(rest, len(MODELS))
        provider, name = MODELS[model]
        at = start + timedelta(hours=hour)
        rows.append({
            "org_id": org, "hour": at, "team_id": team, "user_id": f"usr_bench{member}",
            "api_key_id": "", "provider": provider, "model": name, "requests": n,
            "errors": n // 50, "input_tokens": 800 * n, "output_tokens": 200 * n,
            "cached_input_tokens": 0, "cost": Decimal("0.0015") * n, "computed_requests": n,
            "unpriced_requests": 0, "latency_ms_sum": 700 * n, "latency_requests": n,
        })  # fmt: skip
        key = (at, provider, name)
        latency[key] = latency.get(key, 0) + n
    daily: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        day = r["hour"].replace(hour=0)
        key = (day, r["user_id"], r["provider"], r["model"])
        found = daily.setdefault(
            key,
            {k: v for k, v in r.items() if k not in ("hour", "api_key_id")}
            | {"day": day, **dict.fromkeys(SUMS, 0)},
        )
        for name in SUMS:
            found[name] += r[name]
    with db.session(write=True) as session:
        for k in range(0, len(rows), CHUNK):
            session.execute(insert(LlmCallRollup), rows[k : k + CHUNK])
        days = list(daily.values())
        for k in range(0, len(days), CHUNK):
            session.execute(insert(LlmCallDailyRollup), days[k : k + CHUNK])
        histogram = [
            {"org_id": org, "hour": at, "team_id": team, "provider": p, "model": m,
             "bucket": 12, "requests": n}
            for (at, p, m), n in latency.items()
        ]  # fmt: skip
        for k in range(0, len(histogram), CHUNK):
            session.execute(insert(LlmLatencyRollup), histogram[k : k + CHUNK])
        session.commit()
    return len(rows)


def _time(client: TestClient, url: str, who: dict[str, str], params: dict[str, str]) -> float:
    started = time.perf_counter()
    resp = client.get(url, headers={"Authorization": who["owner"]}, params=params)
    took = time.perf_counter() - started
    resp.raise_for_status()
    return took


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
        clock = SystemClock()
        app = create_app(settings, clock=clock, database=db)
        until = clock.now().replace(minute=0, second=0, microsecond=0)
        window = {
            "since": (until - timedelta(days=DAYS)).isoformat(),
            "until": until.isoformat(),
        }
        out: dict[str, Any] = {"database": db.writer_engine.dialect.name, "size": size}
        with TestClient(app) as client:
            orgs = {"small": _onboard(client), "big": _onboard(client)}
            for label in ("small", "big"):
                started = time.perf_counter()
                rows = _fill(db, orgs[label]["org"], orgs[label]["team"], sizes[label], until=until)
                log(f"{label}: {sizes[label]:,} calls in {rows:,} rollup rows "
                    f"({time.perf_counter() - started:.1f}s)")  # fmt: skip
                out[f"{label}_calls"] = sizes[label]
                out[f"{label}_rollup_rows"] = rows
            with db.session(write=False) as session:
                for label in ("small", "big"):
                    total = session.scalar(
                        select(func.sum(LlmCallRollup.requests)).where(
                            LlmCallRollup.org_id == orgs[label]["org"]
                        )
                    )
                    assert int(total or 0) == sizes[label], (label, total)
            views = {
                "team_billing": ("/api/v1/teams/{team}/billing", window),
                "org_costs": ("/api/v1/orgs/{org}/costs", window),
                "team_analytics": ("/api/v1/teams/{team}/analytics", {"days": str(DAYS)}),
            }
            for view, (template, params) in views.items():
                times: dict[str, list[float]] = {"small": [], "big": []}
                for label in ("small", "big"):  # warm caches (plans, budgets, prices)
                    _time(client, template.format(**orgs[label]), orgs[label], params)
                for _ in range(sizes["repeat"]):
                    for label in ("small", "big"):
                        path = template.format(**orgs[label])
                        times[label].append(_time(client, path, orgs[label], params))
                small = statistics.median(times["small"]) * 1000
                big = statistics.median(times["big"]) * 1000
                out[view] = {
                    "median_ms_small": round(small, 2),
                    "median_ms_big": round(big, 2),
                    "ratio": round(big / small, 2),
                    "target_ratio": TARGET_RATIO,
                    "met": big / small <= TARGET_RATIO,
                }
                log(f"{view}: {small:.1f} ms vs {big:.1f} ms, ratio {big / small:.2f}")
        db.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke)")
    parser.add_argument("--database-url", help="an empty database to use (default: scratch)")
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=DEFAULT_POSTGRES_SERVER,
        help="run on a throwaway database of this PostgreSQL server",
    )
    args = parser.parse_args()
    size = "quick" if args.quick else "full"
    if args.postgres:
        with throwaway_postgres(args.postgres) as url:
            result = run(url, size)
    else:
        with scratch_sqlite(args.database_url) as url:
            result = run(url, size)
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
