"""The MLflow face under test: the real app served by uvicorn on a loopback port (the test's
throwaway database and movable clock), driven by MLflow's own client (`mlflow-skinny`, pinned in
the test extra) exactly as a training script drives it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from conftest import Factory, Tenant


@dataclass
class Live:
    url: str
    app: FastAPI


@pytest.fixture
def live(app: FastAPI) -> Iterator[Live]:
    """The test's app on 127.0.0.1: the socket listens before the server's thread starts, so
    the first request queues on it and nothing waits or polls."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield Live(f"http://127.0.0.1:{sock.getsockname()[1]}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@dataclass
class Team:
    """A tenant's default team as MLflow sees it: its tracking URI and an API key."""

    tenant: Tenant
    uri: str
    key: str
    team_slug: str


def team_of(factory: Factory, live: Live, tenant: Tenant, **key: Any) -> Team:
    resp = factory.client.get(f"/api/v1/teams/{tenant.team_id}", headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    slug = resp.json()["slug"]
    secret = factory.api_key(tenant, **key)["secret"]
    return Team(tenant, f"{live.url}/mlflow/{tenant.org_slug}/{slug}", secret, slug)


@pytest.fixture
def mlflow_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No retries (an error is answered once), no background threads left behind."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    yield
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()


def use(monkeypatch: pytest.MonkeyPatch, team: Team, key: str | None = None) -> None:
    """Point the process's MLflow client at `team` with `key` (the team's own by default)."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", key or team.key)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.uri)
    mlflow.set_tracking_uri(team.uri)
