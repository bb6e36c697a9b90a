"""Helpers of the audit export, stream and offline-verification tests."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from conftest import Tenant
from tenantry.audit import offline, service
from tenantry.audit.models import AuditSubjectKey
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "verify_audit_export.py"


def seed_events(
    database: Database,
    clock: FrozenClock,
    *,
    org_id: str,
    count: int,
    actor_id: str = "usr_seeded",
    **overrides: Any,
) -> None:
    """Append `count` events to the org's chain in one transaction, straight through the
    service (thousands per second, instead of one HTTP request each)."""
    with database.session(write=True) as session, session.no_autoflush:
        held: list[AuditSubjectKey] = []
        for n in range(count):
            service.append(
                session,
                now=clock.now() + timedelta(microseconds=n),
                org_id=org_id,
                actor_type="user",
                actor_id=actor_id,
                action=overrides.get("action", "team.updated"),
                result="success",
                subject_id=actor_id,
                personal=service.Personal("192.0.2.7", "seeder/1.0", {"note": f"event {n}"}),
                target_type=overrides.get("target_type", "team"),
                target_id=overrides.get("target_id", f"team_{n:06d}"),
                team_id=overrides.get("team_id"),
                request_id=overrides.get("request_id"),
                summary=overrides.get("summary", {"n": n, "name": f"Team number {n}"}),
            )
            if not held:
                # The session keeps only what someone holds: keep the subject's key in reach,
                # or every append reads it again.
                held.append(session.get_one(AuditSubjectKey, actor_id))
        session.commit()


def export_body(client: TestClient, tenant: Tenant, fmt: str = "ndjson", query: str = "") -> bytes:
    url = f"/api/v1/orgs/{tenant.org_id}/audit-events/export?format={fmt}"
    resp = client.get(url + (f"&{query}" if query else ""), headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    return resp.content


def server_key(client: TestClient) -> str:
    resp = client.get("/api/v1/audit/public-key")
    assert resp.status_code == 200, resp.text
    return str(resp.json()["public_key_pem"])


def script_verdict(path: Path, public_key: Path | None = None) -> tuple[int, dict[str, Any]]:
    """The standalone script's exit code and verdict, run as an auditor would run it."""
    args = [sys.executable, str(SCRIPT), str(path), "--json"]
    if public_key is not None:
        args += ["--public-key", str(public_key)]
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)
    assert done.stderr == "", done.stderr
    return done.returncode, json.loads(done.stdout)


def outcome(verdict: offline.ExportVerdict) -> tuple[bool, int | None, str | None]:
    fault = verdict.fault
    return verdict.ok, fault.seq if fault else None, fault.kind if fault else None


def script_outcome(verdict: dict[str, Any]) -> tuple[bool, int | None, str | None]:
    fault = verdict["fault"]
    return verdict["ok"], fault["seq"] if fault else None, fault["kind"] if fault else None


def lines_of(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def write_lines(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
    return path
