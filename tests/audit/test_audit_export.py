"""Exports of the audit trail: NDJSON, JSON and CSV through the API, the SDK and the CLI.

An export verifies offline (both with `tenantry.audit.offline` and the standalone script), is one
consistent snapshot, streams in flat memory at any size, and as CSV cannot smuggle a formula into
a spreadsheet.
"""

from __future__ import annotations

import csv
import io
import json
import time
import tracemalloc
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
from support.audit_support import (
    export_body,
    lines_of,
    outcome,
    script_outcome,
    script_verdict,
    seed_events,
    server_key,
)
from tenantry.audit import export, offline
from tenantry.audit.models import AuditCheckpoint
from tenantry.cli import connection
from tenantry.cli.main import app as cli_app
from tenantry.client import AsyncClient, Client
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database


@pytest.fixture
def tenant(factory: Factory) -> Tenant:
    """An org with a few events of its own: onboarding, a member joining, a checkpoint."""
    found = factory.tenant("Export Works")
    factory.member(found)
    resp = factory.client.post(
        f"/api/v1/orgs/{found.org_id}/audit-checkpoints", headers=found.headers
    )
    assert resp.status_code == 201, resp.text
    return found


def listed_events(client: TestClient, tenant: Tenant) -> list[dict[str, Any]]:
    resp = client.get(
        f"/api/v1/orgs/{tenant.org_id}/audit-events?limit=200", headers=tenant.headers
    )
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


# ---- round trips ----


def test_ndjson_export_round_trips_through_offline_verification(
    client: TestClient, tenant: Tenant, tmp_path: Path
) -> None:
    resp = client.get(f"/api/v1/orgs/{tenant.org_slug}/audit-events/export", headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/x-ndjson"
    disposition = resp.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="audit-export-works-')
    assert disposition.endswith('.ndjson"')
    records = lines_of(resp.content)
    header, trailer = records[0], records[-1]
    assert header["format"] == "tenantry-audit-export/1"
    assert (header["chain_id"], header["filtered"], header["start_seq"]) == (
        tenant.org_id,
        False,
        1,
    )
    assert header["public_key_pem"] == server_key(client)
    events = [r for r in records if r["type"] == "event"]
    listed = listed_events(client, tenant)
    assert [e["id"] for e in events] == [e["id"] for e in listed]
    assert events[0]["ip"] == listed[0]["ip"]  # personal details ride along, outside the hash
    assert trailer["type"] == "trailer"
    assert (trailer["count"], trailer["last_seq"]) == (len(events), events[-1]["seq"])

    path = tmp_path / "export.ndjson"
    path.write_bytes(resp.content)
    key = tmp_path / "server.pem"
    key.write_text(server_key(client))
    verdict = offline.verify_file(path, public_key_pem=key.read_text())
    assert outcome(verdict) == (True, None, None)
    assert (verdict.events_checked, verdict.checkpoints_checked) == (len(events), 1)
    assert verdict.chain_checked and verdict.key_source == "given"
    code, from_script = script_verdict(path, key)
    assert (code, script_outcome(from_script)) == (0, (True, None, None))
    assert from_script["events_checked"] == len(events)


def test_json_export_holds_the_same_parts_and_verifies(
    client: TestClient, tenant: Tenant, tmp_path: Path
) -> None:
    resp = client.get(
        f"/api/v1/orgs/{tenant.org_id}/audit-events/export?format=json", headers=tenant.headers
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["content-disposition"].endswith('.json"')
    document = resp.json()
    assert sorted(document) == ["checkpoints", "events", "header", "trailer"]
    ndjson = lines_of(export_body(client, tenant))
    assert document["events"] == [r for r in ndjson if r["type"] == "event"]
    assert document["checkpoints"] == [r for r in ndjson if r["type"] == "checkpoint"]
    path = tmp_path / "export.json"
    path.write_bytes(resp.content)
    verdict = offline.verify_file(path)
    assert outcome(verdict) == (True, None, None)
    assert verdict.events_checked == len(document["events"])
    assert verdict.key_source == "export" and offline.KEY_FROM_EXPORT_NOTE in verdict.notes


def test_an_empty_filter_result_still_verifies(
    client: TestClient, tenant: Tenant, tmp_path: Path
) -> None:
    body = export_body(client, tenant, query="action=billing.")
    records = lines_of(body)
    assert [r["type"] for r in records] == ["header", "checkpoint", "trailer"]
    path = tmp_path / "none.ndjson"
    path.write_bytes(body)
    assert outcome(offline.verify_file(path)) == (True, None, None)
    assert script_outcome(script_verdict(path)[1]) == (True, None, None)


def test_export_filters_are_those_of_the_list(
    client: TestClient, tenant: Tenant, factory: Factory
) -> None:
    other = factory.tenant("Someone Else")
    records = lines_of(export_body(client, tenant, query="action=invitation."))
    assert records[0]["filtered"] is True
    events = [r for r in records if r["type"] == "event"]
    assert events and all(e["action"].startswith("invitation.") for e in events)
    assert all(e["org_id"] == tenant.org_id for e in events)
    listed = client.get(
        f"/api/v1/orgs/{tenant.org_id}/audit-events?action=invitation.", headers=tenant.headers
    ).json()["items"]
    assert [e["id"] for e in events] == [e["id"] for e in listed]
    # Another org's export holds nothing of this one.
    theirs = export_body(client, other)
    assert tenant.org_id not in theirs.decode()
    resp = client.get(f"/api/v1/orgs/{tenant.org_id}/audit-events/export", headers=other.headers)
    assert_problem(resp, 404, "not_found")
    resp = client.get(
        f"/api/v1/orgs/{tenant.org_id}/audit-events/export?format=xml", headers=tenant.headers
    )
    assert_problem(resp, 422)


# ---- CSV ----


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("team.updated", "team.updated"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_neutralize(cell: str, shown: str) -> None:
    assert export.neutralize(cell) == shown


def test_csv_export_neutralizes_formulas(
    client: TestClient, tenant: Tenant, database: Database, clock: FrozenClock
) -> None:
    seed_events(
        database,
        clock,
        org_id=tenant.org_id,
        count=1,
        action="=cmd()",
        target_type="+SUM(1)",
        target_id="-1+1",
        request_id="@SUM(A1)",
        summary={"note": "=evil()"},
    )
    # A caller chooses its own User-Agent, which the trail records with the event.
    hostile = {**tenant.headers, "User-Agent": '=HYPERLINK("http://evil")'}
    client.post(f"/api/v1/orgs/{tenant.org_id}/audit-checkpoints", headers=hostile)
    resp = client.get(
        f"/api/v1/orgs/{tenant.org_id}/audit-events/export?format=csv", headers=tenant.headers
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "text/csv; charset=utf-8"
    assert resp.headers["content-disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert list(rows[0]) == list(export.CSV_COLUMNS)
    assert [int(r["seq"]) for r in rows] == list(range(1, len(rows) + 1))
    seeded = next(r for r in rows if r["action"] == "'=cmd()")
    assert seeded["target_type"] == "'+SUM(1)"
    assert seeded["target_id"] == "'-1+1"
    assert seeded["request_id"] == "'@SUM(A1)"
    assert json.loads(seeded["summary"]) == {"note": "=evil()"}  # inside JSON text: inert
    assert json.loads(seeded["personal"]) == {"note": "event 0"}
    assert rows[-1]["user_agent"] == '\'=HYPERLINK("http://evil")'
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row


# ---- consistency, size and memory ----


def test_an_export_is_one_snapshot(
    app: FastAPI, tenant: Tenant, database: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    """Events written while an export runs belong to the next export, not half to this one."""
    state = app.state
    chunks = export.chunks(
        database, state.notary, clock, export.ExportRequest(chain_id=tenant.org_id)
    )
    body = bytearray(next(chunks))  # the header: the snapshot is taken
    seed_events(database, clock, org_id=tenant.org_id, count=5)
    body += b"".join(chunks)
    records = lines_of(bytes(body))
    head_before = records[-1]["last_seq"]
    assert records[-1]["count"] == head_before == len([r for r in records if r["type"] == "event"])
    path = tmp_path / "snapshot.ndjson"
    path.write_bytes(bytes(body))
    assert outcome(offline.verify_file(path)) == (True, None, None)
    later = lines_of(b"".join(export.chunks(database, state.notary, clock, export.ExportRequest(
        chain_id=tenant.org_id))))  # fmt: skip
    assert later[-1]["last_seq"] == head_before + 5


LARGE = 5000


def test_a_large_export_streams_in_flat_memory(
    app: FastAPI,
    client: TestClient,
    tenant: Tenant,
    database: Database,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    seed_events(database, clock, org_id=tenant.org_id, count=LARGE)
    body = export_body(client, tenant)
    path = tmp_path / "large.ndjson"
    path.write_bytes(body)
    verdict = offline.verify_file(path)
    assert outcome(verdict) == (True, None, None)
    assert verdict.events_checked > LARGE
    assert script_outcome(script_verdict(path)[1]) == (True, None, None)

    request = export.ExportRequest(chain_id=tenant.org_id)
    for _ in export.chunks(database, app.state.notary, clock, request):
        pass  # warm up: imports, statement caches
    tracemalloc.start()
    try:
        started = time.perf_counter()
        size = sum(
            len(chunk) for chunk in export.chunks(database, app.state.notary, clock, request)
        )
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == len(body)  # the same export: the clock stands still, signatures are fixed
    print(f"\nexport of {verdict.events_checked} events: {size} bytes, peak {peak} bytes, "
          f"{verdict.events_checked / elapsed:.0f} events/s under tracemalloc")  # fmt: skip
    # A batch at a time: the peak is a small fraction of the whole, and stays put as it grows.
    assert peak < size / 3, (peak, size)


# ---- the SDK ----


def test_sdk_exports_to_a_file_and_as_lines(
    client: TestClient, tenant: Tenant, tmp_path: Path
) -> None:
    with Client("http://testserver", tenant.token, http=client) as api:
        path = tmp_path / "sdk.ndjson"
        with path.open("wb") as file:
            written = api.export_audit_events(tenant.org_id, file)
        assert written == path.stat().st_size > 0
        assert outcome(offline.verify_file(path)) == (True, None, None)
        lines = list(api.iter_audit_export(tenant.org_id, format="csv", action="invitation."))
        assert lines[0].startswith("chain_id,seq,id,")
        assert all("invitation." in line for line in lines[1:]) and len(lines) > 1
        verdict = api.verify_audit_chain(tenant.org_id)
        assert verdict.ok and verdict.fault is None and verdict.head_seq == verdict.last_seq
        made = api.create_audit_checkpoint(tenant.org_slug)
        assert made.seq == verdict.head_seq + 1  # it covers the event recording it
        assert [c.id for c in api.list_audit_checkpoints(tenant.org_id)][-1] == made.id
        assert api.audit_public_key().public_key_pem == server_key(client)


def test_async_sdk_exports(app: FastAPI, tenant: Tenant) -> None:
    async def export_both() -> tuple[bytes, list[str]]:
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
            AsyncClient("http://testserver", tenant.token, http=http) as api,
        ):
            sink = io.BytesIO()
            written = await api.export_audit_events(tenant.org_id, sink, format="json")
            assert written == len(sink.getvalue())
            lines = [line async for line in api.iter_audit_export(tenant.org_id)]
            return sink.getvalue(), lines

    document, lines = anyio.run(export_both)
    events = json.loads(document)["events"]
    records = [json.loads(line) for line in lines]
    assert [r for r in records if r["type"] == "event"] == events


# ---- the CLI ----


@pytest.fixture
def cli(client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`cli(tenant, *args)` runs `tenantry ...` with the tenant owner's token."""
    monkeypatch.setattr(connection, "http_override", client)
    runner = CliRunner()

    def run(tenant: Tenant | None, *args: str) -> Result:
        env = {
            "TENANTRY_CONFIG_DIR": str(tmp_path / "cli-config"),
            "TENANTRY_SERVER": "http://testserver",
            "TENANTRY_TOKEN": tenant.token if tenant else "",
        }
        result = runner.invoke(cli_app, list(args), env=env)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    yield run


def test_cli_exports_and_verifies_offline(cli: Any, tenant: Tenant, tmp_path: Path) -> None:
    target = tmp_path / "trail.ndjson"
    result = cli(
        tenant, "audit", "export", tenant.org_slug, "--format", "ndjson", "-o", str(target)
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Exported the audit trail of {tenant.org_slug} to {target}")
    assert not (tmp_path / "trail.ndjson.part").exists()
    key = tmp_path / "server.pem"
    result = cli(None, "audit", "public-key")
    assert result.exit_code == 0 and result.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    key.write_text(result.stdout)

    result = cli(None, "audit", "verify", "--file", str(target), "--public-key", str(key))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"OK: export of chain {tenant.org_id} verified offline")
    result = cli(None, "audit", "verify", "--file", str(target))
    assert result.exit_code == 0 and "not who made it" in result.stderr  # the key's caveat
    verdict = json.loads(cli(None, "audit", "verify", "--file", str(target), "--json").stdout)
    assert verdict["ok"] is True and verdict["key_source"] == "export"

    lines = target.read_bytes().splitlines(keepends=True)
    del lines[2]  # seq 2
    target.write_bytes(b"".join(lines))
    result = cli(None, "audit", "verify", "--file", str(target))
    assert result.exit_code == 5 and result.stdout == ""
    assert result.stderr.startswith("error: ") and "at seq 2: missing_event" in result.stderr
    result = cli(None, "audit", "verify", "--file", str(target), "--json")
    assert result.exit_code == 5
    assert json.loads(result.stdout)["fault"]["kind"] == "missing_event"


def test_cli_exports_csv_and_json_with_filters(cli: Any, tenant: Tenant, tmp_path: Path) -> None:
    result = cli(tenant, "audit", "export", tenant.org_id, "--format", "csv", "-o", "-",
                 "--action", "invitation.")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows and all(r["action"].startswith("invitation.") for r in rows)
    target = tmp_path / "trail.json"
    result = cli(tenant, "audit", "export", tenant.org_id, "--format", "json", "-o", str(target),
                 "--since", "2000-01-01", "--result", "success", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bytes"] == target.stat().st_size
    assert json.loads(target.read_text())["header"]["filtered"] is True
    result = cli(tenant, "audit", "export", tenant.org_id, "--format", "xml", "-o", "-")
    assert result.exit_code == 2
    # A refused export leaves no file behind, whole or partial.
    missing = tmp_path / "none.ndjson"
    result = cli(tenant, "audit", "export", "no-such-org", "-o", str(missing))
    assert result.exit_code == 1 and result.stderr.startswith("error: 404 not_found")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("none")) == []


def test_cli_verifies_on_the_server_and_reports_a_forged_checkpoint(
    cli: Any, tenant: Tenant, database: Database, clock: FrozenClock
) -> None:
    result = cli(tenant, "audit", "verify", tenant.org_slug)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"OK: chain {tenant.org_id} is intact")
    made = json.loads(cli(tenant, "audit", "checkpoint", tenant.org_id, "--json").stdout)
    listed = json.loads(cli(tenant, "audit", "checkpoints", tenant.org_id, "--json").stdout)
    assert [c["id"] for c in listed][-1] == made["id"]
    assert made["id"] in cli(tenant, "audit", "checkpoints", tenant.org_id).stdout

    with database.session(write=True) as session:  # a checkpoint no key of the server signed
        session.add(
            AuditCheckpoint(
                id="ckp_forged",
                chain_id=tenant.org_id,
                seq=2,
                hash="0" * 64,
                created_at=clock.now(),
                reason="manual",
                purged_through=0,
                signature="00" * 64,
            )
        )
        session.commit()
    result = cli(tenant, "audit", "verify", tenant.org_id)
    assert result.exit_code == 5 and result.stdout == ""
    assert "not intact at seq 2: bad_checkpoint" in result.stderr
    verdict = json.loads(cli(tenant, "audit", "verify", tenant.org_id, "--json").stdout)
    assert verdict["ok"] is False and verdict["fault"]["seq"] == 2


def test_cli_verify_needs_an_org_or_a_file(cli: Any, tenant: Tenant, tmp_path: Path) -> None:
    assert cli(tenant, "audit", "verify").exit_code == 2
    other = tmp_path / "x.ndjson"
    other.write_text("")
    assert cli(tenant, "audit", "verify", tenant.org_id, "--file", str(other)).exit_code == 2
    assert cli(tenant, "audit", "verify", "--file", str(tmp_path / "missing")).exit_code == 2
    result = cli(tenant, "audit", "verify", "--file", str(other))
    assert result.exit_code == 5 and "malformed" in result.stderr
