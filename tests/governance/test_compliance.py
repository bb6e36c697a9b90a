"""Compliance reports: a month with known events (a member added, a role changed, an API key
made, a violation and its approval, a member's export and an erasure) is reported with exactly
those, by framework; the digest and signature check; the PDF parses and shows the sections and
the chain's verification; bad input writes nothing; another org's report is not found; the
schedule makes each month's report once and sends `compliance.report_ready`."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import func, select

from conftest import Factory, Tenant, assert_problem, bearer, count_rows
from governance.test_governance import admit, join, login, policy
from support.smtp import smtp_server
from tenantry.audit.models import AuditEvent
from tenantry.governance.compliance import tasks
from tenantry.governance.compliance.reports import digest_of
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.kit.mail import Mailer

OCTOBER = datetime(2026, 10, 20, 9, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 5, 10, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 2, 8, tzinfo=UTC)


def reports_url(tenant: Tenant) -> str:
    return f"/api/v1/orgs/{tenant.org_id}/compliance/reports"


def generate(client: TestClient, tenant: Tenant, headers: dict[str, str],
             **body: Any) -> dict[str, Any]:  # fmt: skip
    resp = client.post(reports_url(tenant), headers=headers, json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def section(report: dict[str, Any], key: str) -> dict[str, Any]:
    [found] = [s for s in report["sections"] if s["key"] == key]
    return found


def audit_count(database: Database, org_id: str) -> int:
    with database.session(write=False) as s:
        return int(s.scalar(select(func.count()).where(AuditEvent.org_id == org_id)) or 0)


def a_known_month(client: TestClient, factory: Factory, clock: FrozenClock) -> dict[str, Any]:
    """October: the org, an approval policy, a member who leaves later. November: the events
    the report must list. December: more that it must not."""
    clock.set(OCTOBER)
    acme = factory.tenant("Acme", plan="professional")
    policy(
        client, acme, [{"field": "estimated_cost", "operator": "greater_than", "value": 10}],
        [{"type": "require_approval", "parameters": {"roles": ["owner"]}}], "Approve big",
    )  # fmt: skip
    leaver_id, _ = join(client, factory, acme, "leaver@acme.example", team_role=None)

    clock.set(NOVEMBER)
    owner = login(client, acme.owner_email)
    acme.token = owner["Authorization"].removeprefix("Bearer ")
    dev_id, dev = join(client, factory, acme, "dev@acme.example")  # joins, then a team role
    promoted = client.patch(
        f"/api/v1/orgs/{acme.org_id}/members/{dev_id}", headers=owner, json={"role": "admin"}
    )
    assert promoted.status_code == 200, promoted.text
    key = factory.api_key(acme)
    asked = admit(client, dev, acme.team_id, "11")
    assert asked["reasons"][0]["code"] == "approval_required"
    approved = client.post(f"/api/v1/approvals/{asked['approval_id']}/approve", headers=owner)
    assert approved.status_code == 200, approved.text
    exported = client.get(f"/api/v1/orgs/{acme.org_id}/members/{dev_id}/export", headers=owner)
    assert exported.status_code == 200, exported.text
    leaver = login(client, "leaver@acme.example")
    erased = client.request(
        "DELETE", f"/api/v1/users/{leaver_id}", headers=leaver,
        json={"confirm": "leaver@acme.example"},
    )  # fmt: skip
    assert erased.status_code == 204, erased.text

    clock.set(DECEMBER)
    owner = login(client, acme.owner_email)
    acme.token = owner["Authorization"].removeprefix("Bearer ")
    join(client, factory, acme, "late@acme.example", team_role=None)
    return {"acme": acme, "dev_id": dev_id, "leaver_id": leaver_id, "key": key,
            "approval_id": asked["approval_id"]}  # fmt: skip


def test_a_month_of_known_events_is_reported_exactly(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    known = a_known_month(client, factory, clock)
    acme: Tenant = known["acme"]
    before = audit_count(database, acme.org_id)
    soc2 = generate(client, acme, acme.headers, framework="soc2", period="2026-11")
    assert audit_count(database, acme.org_id) == before + 1  # the generation's one event

    assert soc2["framework"] == "soc2" and soc2["trigger"] == "manual"
    assert soc2["period"] == {
        "label": "2026-11", "start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"
    }  # fmt: skip
    assert soc2["generated_at"] == "2026-12-02T08:00:00Z"
    assert [s["key"] for s in soc2["sections"]] == [
        "access_review", "privileged_actions", "policy_enforcement", "audit_integrity",
        "retention_and_classification",
    ]  # fmt: skip
    assert soc2["proves"] and soc2["does_not_prove"]
    access = section(soc2, "access_review")
    assert "CC6.2" in access["controls"]
    assert [c["action"] for c in access["changes"]] == [
        "invitation.accepted", "team.member.added", "organization.member.updated",
    ]  # fmt: skip
    assert {m["user_id"]: m["role"] for m in access["members"]}[known["dev_id"]] == "admin"
    # The erased account is gone from the members; the late joiner is, as of now, a member.
    members = {m["email"] for m in access["members"]}
    assert "leaver@acme.example" not in members and "late@acme.example" in members
    privileged = section(soc2, "privileged_actions")["actions"]
    assert [(a["action"], a["target_id"]) for a in privileged] == [
        ("api_key.created", known["key"]["id"])
    ]
    enforcement = section(soc2, "policy_enforcement")
    assert [(v["kind"], v["user_id"]) for v in enforcement["violations"]] == [
        ("require_approval", known["dev_id"])
    ]
    assert [(a["id"], a["status"]) for a in enforcement["approvals"]] == [
        (known["approval_id"], "approved")
    ]
    integrity = section(soc2, "audit_integrity")
    assert integrity["verified"] is True and integrity["fault"] is None
    assert integrity["checkpoint"]["seq"] == integrity["head_seq"] + 1  # and the generation's
    retention = section(soc2, "retention_and_classification")
    assert retention["plan"] == "professional" and retention["audit_retention_source"] == "plan"
    assert soc2["summary"]["access_review"]["changes"] == 3

    # The digest is of the report without its digest and signature; the audit key signed it.
    body = {k: v for k, v in soc2.items() if k not in ("digest", "signature",
                                                       "signature_algorithm")}  # fmt: skip
    assert digest_of(body) == soc2["digest"]
    pem = client.get("/api/v1/audit/public-key").json()["public_key_pem"]
    load_pem_public_key(pem.encode()).verify(  # type: ignore[union-attr]
        bytes.fromhex(soc2["signature"]), bytes.fromhex(soc2["digest"])
    )

    gdpr = generate(client, acme, acme.headers, framework="gdpr", period="2026-11")
    assert "Art. 17" in section(gdpr, "data_subject_requests")["controls"]
    requests = section(gdpr, "data_subject_requests")
    assert [r["subject_id"] for r in requests["erasures"]] == [known["leaver_id"]]
    assert [(r["subject_id"], r["requested_by"]) for r in requests["exports"]] == [
        (known["dev_id"], acme.owner_id)
    ]
    hipaa = generate(client, acme, acme.headers, framework="hipaa", period="2026-11")
    assert "§164.312(b)" in section(hipaa, "audit_integrity")["controls"]

    listed = client.get(reports_url(acme), headers=acme.headers).json()["items"]
    assert [(r["id"], r["framework"]) for r in listed] == [
        (soc2["id"], "soc2"), (gdpr["id"], "gdpr"), (hipaa["id"], "hipaa")
    ]  # fmt: skip
    shown = client.get(f"{reports_url(acme)}/{soc2['id']}", headers=acme.headers)
    assert shown.status_code == 200 and shown.json() == soc2
    # A span of days: only the 5th of November, which holds every November event.
    day = generate(client, acme, acme.headers, framework="soc2", **{"from": "2026-11-05",
                                                                   "to": "2026-11-05"})  # fmt: skip
    assert day["period"]["label"] == "2026-11-05..2026-11-05"
    assert len(section(day, "access_review")["changes"]) == 3


def test_the_pdf_parses_with_its_sections_and_the_chain_verification(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    known = a_known_month(client, factory, clock)
    acme: Tenant = known["acme"]
    report = generate(client, acme, acme.headers, framework="soc2", period="2026-11")
    url = f"{reports_url(acme)}/{report['id']}"
    answers = [
        client.get(url, headers=acme.headers, params={"format": "pdf"}),
        client.get(f"{url}.pdf", headers=acme.headers),
        client.get(url, headers={**acme.headers, "Accept": "application/pdf"}),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/pdf"
    assert answers[0].content == answers[1].content == answers[2].content  # the same bytes
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(answers[0].content)).pages)
    flat = " ".join(text.split())
    for heading in ("What this report proves", "What it does not prove", "Access review",
                    "Privileged actions", "Policy violations and approvals",
                    "Audit trail integrity", "Retention and data classification"):  # fmt: skip
        assert heading in flat, heading
    assert "Data-subject requests" not in flat  # not a SOC 2 section
    assert "Chain verification: VERIFIED" in flat
    # Table cells wrap long words: the events' actions are read without the breaks.
    compact = flat.replace(" ", "")
    assert report["digest"] in compact
    assert "organization.member.updated" in compact and "api_key.created" in compact
    assert "CC6.1" in flat
    assert_problem(client.get(url, headers=acme.headers, params={"format": "xml"}), 422)


def test_bad_input_writes_nothing_and_other_orgs_see_nothing(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    clock.set(NOVEMBER)
    acme = factory.tenant("Acme")
    other = factory.tenant("Other")
    before = count_rows(database)
    for body, code in [
        ({"framework": "soc2", "period": "2026-13"}, "invalid_period"),
        ({"framework": "soc2", "period": "2027-01"}, "period_in_future"),
        ({"framework": "soc2"}, "invalid_period"),
        ({"framework": "soc2", "period": "2026-10", "from": "2026-10-01", "to": "2026-10-02"},
         "invalid_period"),
        ({"framework": "soc2", "from": "2026-10-05", "to": "2026-10-01"}, "invalid_period"),
        ({"framework": "soc2", "from": "2025-01-01", "to": "2026-10-01"}, "invalid_period"),
    ]:  # fmt: skip
        assert_problem(client.post(reports_url(acme), headers=acme.headers, json=body), 422, code)
    assert_problem(
        client.post(reports_url(acme), headers=acme.headers,
                    json={"framework": "iso27001", "period": "2026-10"}), 422,
    )  # fmt: skip
    assert_problem(
        client.put(f"/api/v1/orgs/{acme.org_id}/compliance/schedule", headers=acme.headers,
                   json={"frameworks": ["soc2"], "recipients": ["not an email"]}), 422,
    )  # fmt: skip
    assert count_rows(database) == before

    report = generate(client, acme, acme.headers, framework="gdpr", period="2026-10")
    url = f"{reports_url(acme)}/{report['id']}"
    assert_problem(client.get(url.replace(acme.org_id, other.org_id), headers=other.headers), 404)
    assert_problem(client.get(url, headers=other.headers), 404)
    assert client.get(reports_url(other), headers=other.headers).json()["items"] == []
    # A member may not read the trail: 403; an admin may read but not generate without
    # governance:manage (admins hold it, so they may).
    _, member = factory.member(acme)
    assert_problem(client.get(reports_url(acme), headers=bearer(member)), 403)
    assert_problem(
        client.post(reports_url(acme), headers=bearer(member),
                    json={"framework": "soc2", "period": "2026-10"}), 403,
    )  # fmt: skip


def test_the_schedule_makes_each_month_once_and_sends_report_ready(
    app: FastAPI, client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    clock.set(datetime(2026, 11, 15, 12, tzinfo=UTC))
    acme = factory.tenant("Acme", plan="professional")
    hook = client.post(
        f"/api/v1/orgs/{acme.org_id}/webhooks", headers=acme.headers,
        json={"url": "https://hooks.acme.example/compliance",
              "event_types": ["compliance.report_ready"]},
    )  # fmt: skip
    assert hook.status_code == 201, hook.text
    schedule_url = f"/api/v1/orgs/{acme.org_id}/compliance/schedule"
    assert client.get(schedule_url, headers=acme.headers).json()["frameworks"] == []
    put = client.put(
        schedule_url, headers=acme.headers,
        json={"frameworks": ["soc2", "gdpr"], "recipients": ["CISO@acme.example"]},
    )  # fmt: skip
    assert put.status_code == 200, put.text
    assert put.json()["frameworks"] == ["soc2", "gdpr"]
    assert put.json()["recipients"] == ["ciso@acme.example"]
    assert put.json()["next_run"].startswith("2026-12-01")

    notary = app.state.notary
    with smtp_server() as inbox:
        mailer = Mailer(host=inbox.host, port=inbox.port, sender="t@tenantry.test",
                        security="none")  # fmt: skip
        first = tasks.run_schedules(database, notary, now=clock.now(), mailer=mailer)
        assert len(first.generated) == 2 and not first.failed  # October's, both frameworks
        again = tasks.run_schedules(database, notary, now=clock.advance(hours=1), mailer=mailer)
        assert again.generated == []  # once per period
        clock.set(datetime(2026, 12, 1, 0, 5, tzinfo=UTC))
        december = tasks.run_schedules(database, notary, now=clock.now(), mailer=mailer)
        assert len(december.generated) == 2
        assert tasks.run_schedules(database, notary, now=clock.now(), mailer=mailer).generated == []
    assert first.emails_sent == 2 and december.emails_sent == 2
    assert [m["To"] for m in inbox.messages] == ["ciso@acme.example"] * 4
    assert "2026-10" in inbox.messages[0]["Subject"]

    owner = login(client, acme.owner_email)
    listed = client.get(reports_url(acme), headers=owner).json()["items"]
    assert sorted((r["framework"], r["period"], r["trigger"]) for r in listed) == [
        ("gdpr", "2026-10", "schedule"), ("gdpr", "2026-11", "schedule"),
        ("soc2", "2026-10", "schedule"), ("soc2", "2026-11", "schedule"),
    ]  # fmt: skip
    sent = client.get(
        f"/api/v1/orgs/{acme.org_id}/webhooks/{hook.json()['id']}/deliveries", headers=owner
    ).json()["items"]
    assert sorted(d["event_type"] for d in sent) == ["compliance.report_ready"] * 4
    with database.session(write=False) as s:
        generated = list(s.scalars(select(AuditEvent).where(
            AuditEvent.org_id == acme.org_id, AuditEvent.action == "compliance_report.generated"
        )))  # fmt: skip
    assert sorted(e.target_id or "" for e in generated) == sorted(r["id"] for r in listed)
    assert {e.actor_type for e in generated} == {"system"}

    stopped = client.put(schedule_url, headers=owner, json={"frameworks": []})
    assert stopped.status_code == 200 and stopped.json()["next_run"] is None
    clock.set(datetime(2027, 1, 1, 1, tzinfo=UTC))
    assert tasks.run_schedules(database, notary, now=clock.now(), mailer=None).generated == []
