"""Model access benchmark: what model access costs admission, and whether its limits hold.

Two `uvicorn tenantry.asgi:app` processes serve one database (a temp SQLite file, and a
throwaway database on PostgreSQL), as two replicas of a deployment would.

- Cost: sequential `POST /api/v1/admission` naming a model, each settled right after, against
  an org with no model access and against one with three layers (org, team, API key) that
  allow the model and set all three limits (7 counters held per admission), interleaved in the
  same run; the ratio of the medians of client-observed latency over a keep-alive loopback
  connection. Target: <= 1.5.
- Exactness: 50 admissions at once, split over the two processes, against
  `requests_per_minute: 10`, `tokens_per_day` fitting 10, and `concurrent_requests: 5`, each
  on a fresh org; overshoot = allowed beyond the limit (must be 0).

    .venv/bin/python bench/model_access.py [--quick] [--database-url URL]
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit import log
from metering import tenant
from spend import interleaved_medians, on_two_replicas

SIZES = {"quick": {"admissions": 60}, "full": {"admissions": 600}}
CONCURRENT = 50
MODEL = {"provider": "openai", "model": "gpt-4o"}
TOKENS = 100
LIMITS = {  # each limit, and how many of the burst fit in it
    "requests_per_minute": (10, 10),
    "tokens_per_day": (10 * TOKENS, 10),
    "concurrent_requests": (5, 5),
}


def _admit(http: httpx.Client, base: str, key: str, team: str) -> float:
    body = {"team": team, "action": "llm.generate", **MODEL,
            "estimate": {"llm_input_tokens": str(TOKENS)}}  # fmt: skip
    headers = {"Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    resp = http.post(f"{base}/api/v1/admission", headers=headers, json=body)
    took = time.perf_counter() - started
    decided = resp.json()
    assert decided["decision"] == "allow", decided
    http.post(
        f"{base}/api/v1/admission/{decided['reservation_id']}/settle",
        headers=headers,
        json={"usage": {"llm_input_tokens": str(TOKENS)}},
    ).raise_for_status()
    return took


def _set(http: httpx.Client, base: str, who: dict[str, str], path: str, body: Any) -> None:
    owner = {"Authorization": who["owner"]}
    http.put(f"{base}/api/v1{path}/model-access", headers=owner, json=body).raise_for_status()


def _key_id(http: httpx.Client, base: str, who: dict[str, str]) -> str:
    keys = http.get(
        f"{base}/api/v1/orgs/{who['org']}/api-keys", headers={"Authorization": who["owner"]}
    ).json()["items"]
    return str(keys[0]["id"])


def admission_cost(base: str, total: int) -> dict[str, Any]:
    big = {"requests_per_minute": 10**9, "tokens_per_day": 10**12, "concurrent_requests": 10**6}
    with httpx.Client(timeout=30) as http:
        plain_org, governed = tenant(base, http), tenant(base, http)
        layers = (
            f"/orgs/{governed['org']}",
            f"/teams/{governed['team']}",
            f"/orgs/{governed['org']}/api-keys/{_key_id(http, base, governed)}",
        )
        for path in layers:
            body = {"model_access": {"gpt-4*": True, "gpt-4-32k": False},
                    "providers": {"openai": True}, "rate_limits": big}  # fmt: skip
            _set(http, base, governed, path, body)
        log(f"model access: {total} admissions each, without model access and with 3 layers")
        p50_none, p50_three = interleaved_medians(_admit, http, base, plain_org, governed, total)
    return {
        "admissions_each": total,
        "p50_ms_no_model_access": round(p50_none * 1000, 3),
        "p50_ms_three_layers_all_limits": round(p50_three * 1000, 3),
        "ratio": round(p50_three / p50_none, 3),
    }


async def _burst(bases: list[str], who: dict[str, str]) -> list[bool]:
    headers = {"Authorization": f"Bearer {who['key']}"}
    body = {"team": who["team"], "action": "llm.generate", **MODEL,
            "estimate": {"llm_input_tokens": str(TOKENS)}}  # fmt: skip
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
    out: dict[str, Any] = {"concurrent": CONCURRENT}
    with httpx.Client(timeout=30) as http:
        for name, (value, fit) in LIMITS.items():
            who = tenant(bases[0], http)
            _set(http, bases[0], who, f"/orgs/{who['org']}", {"rate_limits": {name: value}})
            log(f"model access: {CONCURRENT} admissions at once over 2 processes, {name}={value}")
            allowed = sum(asyncio.run(_burst(bases, who)))
            out[name] = {"limit": value, "fit": fit, "allowed": allowed,
                         "overshoot": max(0, allowed - fit)}  # fmt: skip
    out["overshoot"] = sum(out[name]["overshoot"] for name in LIMITS)
    return out


def main(argv: list[str] | None = None) -> int:
    report = on_two_replicas(argv, __doc__.split("\n\n")[0], SIZES, admission_cost, exactness, 1.5)
    # A limit passed is a wrong answer, not a slow one.
    return 0 if all(report["targets"]["overshoot_zero"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
