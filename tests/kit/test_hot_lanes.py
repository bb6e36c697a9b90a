"""The hot routes (admission, settle, usage events) run on a few worker threads of their own per
route: a burst queues for them on the event loop instead of filling the shared thread pool, and
other routes are served meanwhile."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conftest import Factory
from tenantry.app import create_app
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.metering import admission

BURST = 6


class Gate:
    """Holds every admission inside its worker thread until released, counting how many are
    inside at once."""

    def __init__(self, inside_at_most: int) -> None:
        self.lock = threading.Lock()
        self.inside = self.most_inside = 0
        self.full = threading.Event()
        self.release = threading.Event()
        self.inside_at_most = inside_at_most

    def wrap(self, admit: Callable[..., Any]) -> Callable[..., Any]:
        def held(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.inside += 1
                self.most_inside = max(self.most_inside, self.inside)
                if self.inside == self.inside_at_most:
                    self.full.set()
            try:
                assert self.release.wait(30), "the test never released the admissions"
                return admit(*args, **kwargs)
            finally:
                with self.lock:
                    self.inside -= 1

        return held


def test_a_burst_of_admissions_queues_for_the_routes_own_threads(
    factory: Factory,
    settings: Settings,
    clock: FrozenClock,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner = factory.tenant("Acme", plan="professional")
    key = factory.api_key(owner, permissions=["usage:write", "usage:read"])["secret"]
    headers = {"Authorization": f"Bearer {key}"}
    body = {"team": owner.team_id, "action": "llm.generate", "estimate": {"compute_hours": "1"}}
    # The key's first use writes its last_used_at; held admissions would queue on that row.
    assert factory.client.post("/api/v1/admission", headers=headers, json=body).status_code == 200
    app: FastAPI = create_app(
        settings.model_copy(update={"hot_route_threads": 2}), clock=clock, database=database
    )
    # SQLite lets one writer in at a time: its writing requests take turns before the lane.
    lane_size = 1 if database.dialect == "sqlite" else 2
    gate = Gate(lane_size)
    monkeypatch.setattr(admission, "admit", gate.wrap(admission.admit))

    async def burst() -> tuple[list[httpx.Response], httpx.Response, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            sent = [
                asyncio.create_task(http.post("/api/v1/admission", headers=headers, json=body))
                for _ in range(BURST)
            ]
            assert await asyncio.to_thread(gate.full.wait, 30)
            lane = app.state.hot_lanes[asyncio.get_running_loop()]["admission.decided"]
            queued = 0
            for _ in range(10_000):  # event-loop turns until the rest have queued
                queued = lane.statistics().tasks_waiting
                if queued == BURST - 2 or database.dialect == "sqlite":
                    break
                await asyncio.sleep(0)
            # The shared pool is free: another route is answered while the lane is full.
            other = await http.get(f"/api/v1/orgs/{owner.org_id}/quotas", headers=owner.headers)
            gate.release.set()
            return list(await asyncio.gather(*sent)), other, queued

    answers, other, queued = asyncio.run(burst())
    assert other.status_code == 200, other.text
    assert [a.status_code for a in answers] == [200] * BURST
    assert [a.json()["decision"] for a in answers] == ["allow"] * BURST
    assert gate.most_inside == lane_size
    if database.dialect != "sqlite":
        assert queued == BURST - 2
