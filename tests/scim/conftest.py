"""Fixtures of the SCIM tests: an org on the Enterprise plan (no member quota in the way of a
directory's sync), a SCIM token of it, and the app served by uvicorn on loopback for clients
that speak HTTP themselves (scim2-tester)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import Factory, Tenant

SCIM_TYPE = "application/scim+json"


@dataclass
class Directory:
    """An org and the SCIM token its directory presents."""

    tenant: Tenant
    token: str
    token_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": SCIM_TYPE}


def scim_token(client: TestClient, tenant: Tenant, name: str = "Okta") -> dict[str, Any]:
    resp = client.post(
        f"/api/v1/orgs/{tenant.org_id}/scim/tokens", headers=tenant.headers, json={"name": name}
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def directory_of(client: TestClient, tenant: Tenant) -> Directory:
    issued = scim_token(client, tenant)
    return Directory(tenant=tenant, token=issued["secret"], token_id=issued["id"])


@pytest.fixture
def org(factory: Factory) -> Tenant:
    return factory.tenant(plan="enterprise")


@pytest.fixture
def directory(client: TestClient, org: Tenant) -> Directory:
    return directory_of(client, org)


@dataclass
class LiveServer:
    url: str


@pytest.fixture
def live_server(app: FastAPI, client: TestClient) -> Iterator[LiveServer]:
    """The test's app served by uvicorn on 127.0.0.1. The socket is bound and listening before
    the server's thread starts, so the first request queues on it: nothing waits or polls."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
