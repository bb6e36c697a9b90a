"""Spend benchmark: what restrict budgets cost admission, and whether they hold.

Two `uvicorn tenantry.asgi:app` processes serve one database (a temp SQLite file, and a
throwaway database on PostgreSQL), as two replicas of a deployment would.

- Cost: sequential `POST /api/v1/admission` with an `llm_cost_usd` estimate, each settled right
  after, against a team with no budget and against a team with 3 applicable restrict budgets
  (org, team, member), interleaved in the same run; the ratio of the medians of the server's
  time per admission (read from the `Server-Timing`-free way: client-observed latency over a
  keep-alive loopback connection, which the server dominates). Target: <= 1.3.
- Exactness: 50 admissions at once, split over the two processes, against a restrict budget
  that fits exactly 20 of them; overshoot = allowed beyond 20, plus held beyond the amount
  (both must be 0).

    .venv/bin/python bench/spend.py [--quick] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest.mock import patch

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metering
from audit import DEFAULT_POSTGRES_SERVER, log, scratch_sqlite, throwaway_postgres
from metering import tenant
from tenantry.kit.migrations import upgrade

SIZES = {"quick": {"admissions": 60}, "full": {"admissions": 600}}
CONCURRENT = 50
FITS = 20
UNIT = Decimal("0.05")


def _admit(http: httpx.Client, base: str, key: str, team: str) -> float:
    body = {"team": team, "action": "llm.generate", "estimate": {"llm_cost_usd": "0.0001"}}
    headers = {"Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    resp = http.post(f"{base}/api/v1/admission", headers=headers, json=body)
    took = time.perf_counter() - started
    decided = resp.json()
    assert decided["decision"] == "allow", decided
    http.post(
        f"{base}/api/v1/admission/{decided['reservation_id']}/settle",
        headers=headers,
        json={"usage": {"llm_cost_usd": "0.0001"}},
    ).raise_for_status()
    return took


def _budget(http: httpx.Client, base: str, who: dict[str, str], body: dict[str, Any]) -> None:
    owner = {"Authorization": who["owner"]}
    resp = http.post(f"{base}/api/v1/orgs/{who['org']}/budgets", headers=owner, json=body)
    resp.raise_for_status()


Admit = Callable[[httpx.Client, str, str, str], float]


def interleaved_medians(
    admit: Admit,
    http: httpx.Client,
    base: str,
    plain: dict[str, str],
    held: dict[str, str],
    total: int,
) -> tuple[float, float]:
    """Median seconds per `admit` of a team without and a team with what is measured, taking
    turns (after 10 each to warm the per-org caches)."""
    for who in (plain, held):
        for _ in range(10):
            admit(http, base, who["key"], who["team"])
    without, with_ = [], []
    for _ in range(total):
        without.append(admit(http, base, plain["key"], plain["team"]))
        with_.append(admit(http, base, held["key"], held["team"]))
    return statistics.median(without), statistics.median(with_)


def budget_cost(base: str, total: int) -> dict[str, Any]:
    with httpx.Client(timeout=30) as http:
        plain_org, budgeted = tenant(base, http), tenant(base, http)
        me = http.get(f"{base}/api/v1/me", headers={"Authorization": budgeted["owner"]}).json()
        for body in (
            {"scope": "org", "amount": "100000"},
            {"scope": "team", "team": budgeted["team"], "amount": "100000"},
            {
                "scope": "member",
                "team": budgeted["team"],
                "member": me.get("id") or me["user"]["id"],
                "amount": "100000",
            },
        ):
            _budget(http, base, budgeted, body | {"exceeded_action": "restrict", "period": "day"})
        log(f"spend: {total} admissions each, without budgets and with 3, interleaved")
        p50_none, p50_three = interleaved_medians(_admit, http, base, plain_org, budgeted, total)
    return {
        "admissions_each": total,
        "p50_ms_no_budget": round(p50_none * 1000, 3),
        "p50_ms_three_restrict_budgets": round(p50_three * 1000, 3),
        "ratio": round(p50_three / p50_none, 3),
    }


async def _burst(bases: list[str], who: dict[str, str]) -> list[bool]:
    headers = {"Authorization": f"Bearer {who['key']}"}
    body = {"team": who["team"], "action": "llm.generate", "estimate": {"llm_cost_usd": str(UNIT)}}
    async with httpx.AsyncClient(timeout=60) as http:
        gate = asyncio.Event()

        async def one(i: int) -> bool:
            await gate.wait()
            resp = await http.post(f"{bases[i % 2]}/api/v1/admission", headers=headers, json=body)
            return bool(resp.json()["decision"] == "allow")

        tasks = [asyncio.create_task(one(i)) for i in range(CONCURRENT)]
        await asyncio.sleep(0)  # every task waits at the gate before it opens
        gate.set()
        return await asyncio.gather(*tasks)


def exactness(bases: list[str]) -> dict[str, Any]:
    with httpx.Client(timeout=30) as http:
        who = tenant(bases[0], http)
        amount = UNIT * FITS
        body = {"scope": "team", "team": who["team"], "amount": str(amount)}
        _budget(http, bases[0], who, body | {"exceeded_action": "restrict"})
        log(f"spend: {CONCURRENT} admissions at once over 2 processes, {FITS} fit")
        allowed = sum(asyncio.run(_burst(bases, who)))
        budgets = http.get(
            f"{bases[1]}/api/v1/teams/{who['team']}/budgets",
            headers={"Authorization": who["owner"]},
        ).json()["budgets"]
    [status] = budgets
    held = Decimal(status["reserved"]) + Decimal(status["spent"])
    return {
        "concurrent": CONCURRENT,
        "fit": FITS,
        "allowed": allowed,
        "held": str(held),
        "amount": str(amount),
        "overshoot": max(0, allowed - FITS) + (1 if held > amount else 0),
    }


@contextmanager
def server(url: str, data_dir: Path) -> Iterator[str]:
    """bench/metering.py's server, given longer to start: two processes import the whole
    stack at once on a small machine."""
    real = time.monotonic
    with patch.object(metering.time, "monotonic", lambda: real() / 4):
        started = metering.server(url, data_dir)
        base = started.__enter__()
    try:
        yield base
    finally:
        started.__exit__(None, None, None)


def on_two_replicas(
    argv: list[str] | None,
    description: str,
    sizes: dict[str, dict[str, Any]],
    cost: Callable[[str, int], dict[str, Any]],
    exact: Callable[[list[str]], dict[str, Any]],
    ratio_max: float,
) -> dict[str, Any]:
    """Each database (or the one named): migrated, served by two processes, `cost` measured on
    the first and `exact` across both; the report with its targets."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smoke size (as CI runs it)")
    parser.add_argument("--database-url", help="only this database (sqlite:/// or postgresql://)")
    args = parser.parse_args(argv)
    size = sizes["quick" if args.quick else "full"]
    report: dict[str, Any] = {"size": "quick" if args.quick else "full"}

    def bench_database(url: str) -> dict[str, Any]:
        upgrade(url)
        data = Path(os.environ.get("TMPDIR", "/tmp")) / "tenantry-bench-data"
        with server(url, data) as first, server(url, data) as second:
            return {
                "admission_cost": cost(first, size["admissions"]),
                "concurrent_exactness": exact([first, second]),
            }

    targets = [args.database_url] if args.database_url else ["sqlite", DEFAULT_POSTGRES_SERVER]
    for target in targets:
        if target.startswith("sqlite"):
            with scratch_sqlite(None if target == "sqlite" else target) as url:
                report["sqlite"] = bench_database(url)
        else:
            with throwaway_postgres(target) as url:
                report["postgresql"] = bench_database(url)
    dialects = [d for d in ("sqlite", "postgresql") if d in report]
    report["targets"] = {
        "ratio_max": ratio_max,
        "ratio_met": {d: report[d]["admission_cost"]["ratio"] <= ratio_max for d in dialects},
        "overshoot_zero": {
            d: report[d]["concurrent_exactness"]["overshoot"] == 0 for d in dialects
        },
    }
    print(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    on_two_replicas(argv, __doc__.split("\n\n")[0], SIZES, budget_cost, exactness, 1.3)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
