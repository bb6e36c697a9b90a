"""The live audit stream (Server-Sent Events) through the API, the SDK and the CLI.

Streams here are bounded by `max_events` or `follow=false`, so a test never waits on a clock; the
one test of following new events waits on an event set by the stream's own first poll.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from conftest import Factory, Tenant, assert_problem
from support.audit_support import seed_events
from tenantry.audit import chain, live
from tenantry.cli import connection
from tenantry.cli.main import app as cli_app
from tenantry.client import AsyncClient, Client
from tenantry.client._streams import ServerSentEvents
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database

SEEDED = 10


@pytest.fixture
def tenant(factory: Factory, database: Database, clock: FrozenClock) -> Tenant:
    """An org whose chain holds 11 events: its onboarding and 10 more."""
    found = factory.tenant("Streaming Co")
    seed_events(database, clock, org_id=found.org_id, count=SEEDED)
    return found


def frames(body: str) -> list[dict[str, Any]]:
    """The frames of an event-stream body: {"id", "event", "data"} each (comments dropped)."""
    found = []
    for block in body.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = json.loads(value) if name == "data" else value
        if fields:
            found.append(fields)
    return found


def stream(
    client: TestClient, tenant: Tenant, query: str = "", **headers: str
) -> list[dict[str, Any]]:
    resp = client.get(
        f"/api/v1/orgs/{tenant.org_id}/audit-events/stream?{query}",
        headers={**tenant.headers, **headers},
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    return frames(resp.text)


def seqs(found: list[dict[str, Any]]) -> list[int]:
    return [int(f["id"]) for f in found]


def test_backlog_with_max_events(client: TestClient, tenant: Tenant) -> None:
    found = stream(client, tenant, "max_events=4")
    assert seqs(found) == [1, 2, 3, 4]
    assert {f["event"] for f in found} == {"audit"}
    for frame in found:
        data = frame["data"]
        assert data["seq"] == int(frame["id"]) and data["chain_id"] == tenant.org_id
        assert data["hash"] and data["prev_hash"] and data["action"]
    # Each event carries its hashed fields as the chain encodes them: a follower can check it.
    for frame in found:
        assert chain.event_hash(chain.event_row(frame["data"])[:16]) == frame["data"]["hash"]
    assert found[1]["data"]["prev_hash"] == found[0]["data"]["hash"]


def test_follow_false_sends_the_backlog_and_closes(client: TestClient, tenant: Tenant) -> None:
    assert seqs(stream(client, tenant, "follow=false")) == list(range(1, SEEDED + 2))
    assert seqs(stream(client, tenant, "follow=false&after_seq=9")) == [10, 11]
    assert stream(client, tenant, "follow=false&after_seq=11") == []


def test_resuming_with_last_event_id_leaves_no_gap_or_duplicate(
    client: TestClient, tenant: Tenant
) -> None:
    first = stream(client, tenant, "max_events=4")
    second = stream(client, tenant, "max_events=3", **{"Last-Event-ID": first[-1]["id"]})
    rest = stream(client, tenant, "follow=false", **{"Last-Event-ID": second[-1]["id"]})
    assert seqs(first + second + rest) == list(range(1, SEEDED + 2))
    # A reconnecting browser repeats the original URL: the header is what counts.
    again = stream(client, tenant, "follow=false&after_seq=0", **{"Last-Event-ID": "9"})
    assert seqs(again) == [10, 11]


def test_bad_resume_points_are_refused(client: TestClient, tenant: Tenant) -> None:
    url = f"/api/v1/orgs/{tenant.org_id}/audit-events/stream?follow=false"
    for bad in ("abc", "-1", "1.5", "99999999999999999999"):
        resp = client.get(url, headers={**tenant.headers, "Last-Event-ID": bad})
        assert_problem(resp, 400, "invalid_last_event_id")
    assert_problem(client.get(url + "&after_seq=-1", headers=tenant.headers), 422)
    assert_problem(client.get(url + "&max_events=0", headers=tenant.headers), 422)


def test_another_orgs_events_never_appear(
    client: TestClient, tenant: Tenant, factory: Factory, database: Database, clock: FrozenClock
) -> None:
    other = factory.tenant("Other Org")
    seed_events(database, clock, org_id=other.org_id, count=3, actor_id="usr_other")
    for who, stranger in ((tenant, other), (other, tenant)):
        found = stream(client, who, "follow=false")
        assert {f["data"]["chain_id"] for f in found} == {who.org_id}
        assert {f["data"]["org_id"] for f in found} == {who.org_id}
        assert stranger.org_id not in json.dumps(found)
    resp = client.get(
        f"/api/v1/orgs/{tenant.org_id}/audit-events/stream?follow=false", headers=other.headers
    )
    assert_problem(resp, 404, "not_found")


def test_following_delivers_events_written_after_the_stream_began(
    client: TestClient,
    tenant: Tenant,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live, "POLL_SECONDS", 0.01)
    first_poll_done = threading.Event()
    read_after = live.read_after
    connections_in_use: list[int] = []

    def watched(*args: Any, **kwargs: Any) -> list[tuple[int, bytes]]:
        if not first_poll_done.is_set():
            connections_in_use.append(database.reader_engine.pool.checkedout())  # type: ignore[attr-defined]
        found = read_after(*args, **kwargs)
        first_poll_done.set()
        return found

    monkeypatch.setattr(live, "read_after", watched)
    received: list[list[dict[str, Any]]] = []
    # Caught up at once (after the last seq), then waiting for three new events.
    reader = threading.Thread(
        target=lambda: received.append(stream(client, tenant, "after_seq=11&max_events=3"))
    )
    reader.start()
    assert first_poll_done.wait(timeout=30), "the stream never polled"
    seed_events(database, clock, org_id=tenant.org_id, count=3)
    reader.join(timeout=30)
    assert not reader.is_alive(), "the stream did not deliver the new events"
    assert seqs(received[0]) == [12, 13, 14]
    # Between polls the stream holds no connection: the request's own one was given back.
    assert connections_in_use == [0]


def test_a_quiet_stream_sends_heartbeats(database: Database) -> None:
    feed = live.Feed(
        db=database,
        chain_id="org_nothing_here",
        follow=True,
        poll_seconds=0,
        heartbeat_seconds=0,
    )

    async def first_frames() -> list[bytes]:
        body = live.frames(feed)
        found = [await anext(body), await anext(body)]
        await body.aclose()
        return found

    assert anyio.run(first_frames) == [live.HEARTBEAT, live.HEARTBEAT]


def test_the_stream_ends_when_the_client_goes_away(app: FastAPI, tenant: Tenant) -> None:
    """Driven as a server would drive it: once the client disconnects, the endless stream
    (follow, no max_events) stops instead of polling for ever."""
    path = f"/api/v1/orgs/{tenant.org_id}/audit-events/stream"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {tenant.token}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    sent: list[dict[str, Any]] = []

    async def converse() -> None:
        gone = anyio.Event()
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and message.get("body"):
                gone.set()  # the client hangs up after the first frames

        with anyio.fail_after(30):
            await app(scope, receive, send)

    anyio.run(converse)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert b"id: 1\n" in sent[1]["body"]


# ---- the SDK ----


def test_sdk_streams_events(client: TestClient, tenant: Tenant) -> None:
    with Client("http://testserver", tenant.token, http=client) as api:
        events = list(api.stream_audit_events(tenant.org_id, max_events=3))
        assert [e.seq for e in events] == [1, 2, 3]
        assert all(e.chain_id == tenant.org_id and e.hash for e in events)
        rest = list(api.stream_audit_events(tenant.org_slug, after_seq=3, follow=False))
        assert [e.seq for e in rest] == list(range(4, SEEDED + 2))


def test_async_sdk_streams_events(app: FastAPI, client: TestClient, tenant: Tenant) -> None:
    async def collect() -> list[int | None]:
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
            AsyncClient("http://testserver", tenant.token, http=http) as api,
        ):
            found = api.stream_audit_events(tenant.org_id, after_seq=8, follow=False)
            return [event.seq async for event in found]

    assert anyio.run(collect) == [9, 10, 11]


def test_sse_decoder_follows_the_format() -> None:
    decode = ServerSentEvents(json.loads, event="audit")
    lines = [": keep-alive", "", "id: 7", "event: audit", 'data: {"a":', "data: 1}", "",
             "event: other", "data: {}", "", "data: {}", ""]  # fmt: skip
    found = [item for line in lines for item in decode(line)]
    assert found == [{"a": 1}]
    assert decode.last_id == "7"


# ---- the CLI ----


@pytest.fixture
def cli(client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(connection, "http_override", client)
    runner = CliRunner()

    def run(tenant: Tenant, *args: str) -> Result:
        env = {
            "TENANTRY_CONFIG_DIR": str(tmp_path / "cli-config"),
            "TENANTRY_SERVER": "http://testserver",
            "TENANTRY_TOKEN": tenant.token,
        }
        result = runner.invoke(cli_app, list(args), env=env)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    yield run


def test_cli_stream(cli: Any, tenant: Tenant) -> None:
    result = cli(tenant, "audit", "stream", tenant.org_slug, "--no-follow", "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, SEEDED + 2))
    result = cli(tenant, "audit", "stream", tenant.org_id, "--after-seq", "2", "--max-events", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[0] == "3" and "team.updated" in lines[0] and "usr_seeded" in lines[0]
    assert lines[1].split()[0] == "4"
    result = cli(tenant, "audit", "stream", "no-such-org", "--no-follow")
    assert result.exit_code == 1 and result.stderr.startswith("error: 404 not_found")
