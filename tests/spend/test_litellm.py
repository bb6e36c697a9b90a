"""The LiteLLM callback with the real `litellm` library (answers made up by `mock_response`, no
network) against the real server on a loopback port: a call is admitted, charged and shown; a
call past a restrict budget is refused before it is made."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import Factory
from tenantry.client import Client
from tenantry.kit.clock import FrozenClock

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no cost map from the network
litellm = pytest.importorskip("litellm")

from tenantry.integrations.litellm import AdmissionDenied, TenantryCallback  # noqa: E402

MESSAGES = [{"role": "user", "content": "Summarize our quarterly spend."}]


@pytest.fixture
def clock() -> FrozenClock:
    """The server's clock at the real time: LiteLLM stamps its calls with the wall clock."""
    return FrozenClock(datetime.now(UTC))


@pytest.fixture
def server_url(app: FastAPI) -> Iterator[str]:
    """The test's app served by uvicorn on 127.0.0.1 (the socket listens before the thread
    starts, so the first request queues on it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


class Reported:
    """The calls the callback reported, for the test to wait on (LiteLLM logs in a thread)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.done = threading.Event()

    def __call__(self, call: dict[str, Any]) -> None:
        self.calls.append(call)
        self.done.set()

    def wait(self) -> dict[str, Any]:
        assert self.done.wait(timeout=30), "LiteLLM never logged the call"
        self.done.clear()
        return self.calls[-1]


def test_a_litellm_call_is_admitted_charged_and_shown(
    client: TestClient, factory: Factory, server_url: str
) -> None:
    acme = factory.tenant("Acme")
    key = factory.api_key(acme)
    budget = client.post(
        f"/api/v1/teams/{acme.team_id}/budgets",
        headers=acme.headers,
        json={"amount": "0.01", "exceeded_action": "restrict", "name": "Assistant"},
    ).json()
    reported = Reported()
    with Client(server_url, key["secret"]) as api:
        tenantry = TenantryCallback(
            api, acme.team_id, on_reported=reported, expected_output_tokens=200
        )
        litellm.callbacks = [tenantry]
        try:
            reply = tenantry.completion(
                model="gpt-4o-mini", messages=MESSAGES, mock_response="Spend is flat."
            )
            assert reply.choices[0].message.content == "Spend is flat."
            call = reported.wait()
            assert call["reservation_id"] and call["provider"] == "openai"

            view = api.team_billing(acme.team_id)
            period = view.billing_period
            assert period.total_requests == 1
            assert period.breakdown_by_model["gpt-4o-mini"].cost == call["cost"]
            [status] = [b for b in view.budgets if b.id == budget["id"]]
            assert status.spent == call["cost"] and status.reserved == "0"

            # The next call would pass the budget: refused before LiteLLM is called.
            with pytest.raises(AdmissionDenied) as refused:
                tenantry.completion(
                    model="gpt-4o", messages=MESSAGES, max_tokens=4000, mock_response="never"
                )
            [reason] = refused.value.reasons
            assert reason["code"] == "budget_exceeded"
            assert reason["budget"]["id"] == budget["id"]
            assert api.team_billing(acme.team_id).billing_period.total_requests == 1
        finally:
            litellm.callbacks = []


def test_a_router_asks_admission_before_its_deployment(
    client: TestClient, factory: Factory, server_url: str
) -> None:
    acme = factory.tenant("Acme")
    key = factory.api_key(acme)
    client.post(
        f"/api/v1/teams/{acme.team_id}/budgets",
        headers=acme.headers,
        json={"amount": "0.002", "exceeded_action": "restrict"},
    )
    reported = Reported()
    router = litellm.Router(
        model_list=[
            {
                "model_name": "cheap",
                "litellm_params": {"model": "gpt-4o-mini", "mock_response": "ok", "api_key": "x"},
            }
        ],
        num_retries=0,
    )
    with Client(server_url, key["secret"]) as api:
        tenantry = TenantryCallback(
            api, acme.team_id, on_reported=reported, expected_output_tokens=100
        )
        litellm.callbacks = [tenantry]
        try:

            async def scenario() -> None:
                await router.acompletion(model="cheap", messages=MESSAGES, max_tokens=100)
                # LiteLLM logs an async call in a task of this loop: wait for it here.
                call = await asyncio.to_thread(reported.wait)
                assert call["reservation_id"]
                with pytest.raises(AdmissionDenied):
                    await router.acompletion(model="cheap", messages=MESSAGES, max_tokens=10_000)

            asyncio.run(scenario())
        finally:
            litellm.callbacks = []
    costs = client.get(f"/api/v1/teams/{acme.team_id}/billing", headers=acme.headers).json()
    assert costs["billing_period"]["total_requests"] == 1
