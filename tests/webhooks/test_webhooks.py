"""Outbound webhooks against a real HTTP receiver on loopback: endpoints and their secret shown
once, events written to the outbox in the event's transaction and delivered by the worker,
signatures checked with the Standard Webhooks reference code, retries by moving the clock, the
delivery log, redelivery, automatic disabling with its audit event and email, the SSRF guard
(at saving and at delivery), and another tenant's endpoints answering 404."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks import Webhook, WebhookVerificationError

from conftest import Factory, Tenant, assert_problem, bearer, count_rows, database_contains
from support.smtp import smtp_server
from support.webhook_receiver import Receiver, webhook_receiver
from tenantry import worker
from tenantry.app import create_app
from tenantry.audit.models import AuditEvent
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.webhooks import guard, tasks
from tenantry.webhooks.models import WebhookDelivery

BUDGET_EVENTS = ["budget.exceeded", "budget.threshold_reached"]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret-" + "x" * 40,
        password_time_cost=1,
        password_memory_cost_kib=1024,
        webhooks_allow_private_urls=True,  # the receiver is on loopback
        webhooks_max_attempts=4,
        webhooks_disable_after_failures=6,
    )


@pytest.fixture
def clock() -> FrozenClock:
    # The reference verifier compares the signed timestamp with the wall clock (5 minutes).
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as found:
        yield found


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def deliver(database: Database, settings: Settings, clock: FrozenClock) -> tasks.DeliveryReport:
    return tasks.deliver_due(database, settings, clock=clock)


def add_endpoint(
    client: TestClient, tenant: Tenant, url: str, event_types: list[str] | None = None
) -> dict[str, Any]:
    resp = client.post(
        f"/api/v1/orgs/{tenant.org_id}/webhooks",
        headers=tenant.headers,
        json={"url": url, "description": "ops", "event_types": event_types or BUDGET_EVENTS},
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def log_of(client: TestClient, tenant: Tenant, endpoint_id: str) -> list[dict[str, Any]]:
    resp = client.get(
        f"/api/v1/orgs/{tenant.org_id}/webhooks/{endpoint_id}/deliveries", headers=tenant.headers
    )
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


def send_test(client: TestClient, tenant: Tenant, endpoint_id: str) -> dict[str, Any]:
    resp = client.post(
        f"/api/v1/orgs/{tenant.org_id}/webhooks/{endpoint_id}/test", headers=tenant.headers
    )
    assert resp.status_code == 202, resp.text
    return dict(resp.json())


def audit_actions(database: Database, org_id: str) -> list[tuple[str, str]]:
    with database.session(write=False) as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.org_id == org_id).order_by(AuditEvent.seq)
        )
        return [(e.action, e.actor_type) for e in rows if e.target_type == "webhook"]


def test_secret_is_shown_once_and_a_test_event_arrives_signed(
    client: TestClient,
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    acme = factory.tenant("Acme")
    created = add_endpoint(client, acme, receiver.url)
    secret = created["secret"]
    assert secret.startswith("whsec_") and created["enabled"] is True
    assert created["event_types"] == BUDGET_EVENTS
    # Never again, and not stored as it was shown.
    listed = client.get(f"/api/v1/orgs/{acme.org_id}/webhooks", headers=acme.headers).json()
    assert [w["id"] for w in listed["webhooks"]] == [created["id"]]
    assert "secret" not in listed["webhooks"][0]
    shown = client.get(f"/api/v1/orgs/{acme.org_id}/webhooks/{created['id']}", headers=acme.headers)
    assert "secret" not in shown.json()
    assert database_contains(database, secret.removeprefix("whsec_")) == []

    queued = send_test(client, acme, created["id"])
    assert queued["status"] == "pending" and queued["attempts"] == 0
    assert receiver.requests == []  # the request only wrote the outbox

    report = deliver(database, settings, clock)
    assert (report.attempted, report.succeeded) == (1, 1)
    [got] = receiver.requests
    payload = Webhook(secret).verify(got.body, got.headers)
    assert payload["type"] == "webhook.test"
    assert payload["data"]["org_id"] == acme.org_id
    assert got.headers["webhook-id"] == queued["message_id"]
    assert got.headers["webhook-timestamp"] == str(int(clock.now().timestamp()))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(got.body + b" ", got.headers)  # a changed body does not pass

    [logged] = log_of(client, acme, created["id"])
    assert logged["status"] == "succeeded" and logged["attempts"] == 1
    assert logged["last_status_code"] == 200 and logged["last_response"] == "ok"
    assert logged["last_duration_ms"] >= 0 and logged["delivered_at"] is not None
    assert deliver(database, settings, clock).attempted == 0  # delivered once
    assert audit_actions(database, acme.org_id) == [
        ("webhook.created", "user"),
        ("webhook.tested", "user"),
    ]


def test_budget_alerts_are_delivered_to_subscribed_endpoints_only(
    client: TestClient,
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    acme = factory.tenant("Acme")
    budgets = add_endpoint(client, acme, receiver.url + "/budgets")
    add_endpoint(client, acme, receiver.url + "/invoices", ["invoice.paid"])
    resp = client.post(
        f"/api/v1/teams/{acme.team_id}/budgets",
        headers=acme.headers,
        json={"amount": "1", "thresholds": [50]},
    )
    assert resp.status_code == 201, resp.text
    budget_id = resp.json()["id"]
    call = {"id": "c1", "team": acme.team_id, "provider": "openai", "model": "gpt-4o-mini",
            "input_tokens": 10, "output_tokens": 5, "cost": "2"}  # fmt: skip
    resp = client.post("/api/v1/llm-calls", headers=acme.headers, json={"calls": [call]})
    assert resp.status_code == 200, resp.text
    with database.session(write=False) as session:
        queued = list(session.scalars(select(WebhookDelivery)))
    assert sorted(d.event_type for d in queued) == ["budget.exceeded", "budget.threshold_reached"]
    assert {d.endpoint_id for d in queued} == {budgets["id"]}

    assert deliver(database, settings, clock).succeeded == 2
    assert {r.path for r in receiver.requests} == {"/hooks/budgets"}
    payloads = [Webhook(budgets["secret"]).verify(r.body, r.headers) for r in receiver.requests]
    by_type = {p["type"]: p["data"] for p in payloads}
    assert sorted(by_type) == ["budget.exceeded", "budget.threshold_reached"]
    exceeded = by_type["budget.exceeded"]
    assert exceeded["budget_id"] == budget_id and exceeded["team_id"] == acme.team_id
    assert exceeded["threshold"] == 100 and exceeded["spent"] == "2"
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 2


def test_failed_attempts_are_retried_with_exponential_backoff(
    client: TestClient,
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    acme = factory.tenant("Acme")
    endpoint = add_endpoint(client, acme, receiver.url)
    receiver.script = [500, 503]  # then 200
    queued = send_test(client, acme, endpoint["id"])
    start = clock.now()

    assert deliver(database, settings, clock).failed == 1
    [logged] = log_of(client, acme, endpoint["id"])
    assert (logged["status"], logged["attempts"], logged["last_status_code"]) == ("pending", 1, 500)
    assert logged["last_response"] == "receiver says no"
    assert logged["next_attempt_at"] == iso(start + timedelta(seconds=30))
    assert deliver(database, settings, clock).attempted == 0  # not due yet

    clock.advance(seconds=30)
    assert deliver(database, settings, clock).failed == 1
    [logged] = log_of(client, acme, endpoint["id"])
    assert (logged["attempts"], logged["last_status_code"]) == (2, 503)
    assert logged["next_attempt_at"] == iso(clock.now() + timedelta(minutes=2))

    clock.advance(seconds=119)
    assert deliver(database, settings, clock).attempted == 0
    clock.advance(seconds=1)
    assert deliver(database, settings, clock).succeeded == 1
    [logged] = log_of(client, acme, endpoint["id"])
    assert (logged["status"], logged["attempts"], logged["last_status_code"]) == (
        "succeeded",
        3,
        200,
    )
    # Every attempt is the same message, signed anew at its own time.
    assert {r.headers["webhook-id"] for r in receiver.requests} == {queued["message_id"]}
    assert len({r.headers["webhook-timestamp"] for r in receiver.requests}) == 3
    assert tasks.retry_schedule(settings) == [
        timedelta(seconds=30),
        timedelta(minutes=2),
        timedelta(minutes=8),
    ]


def test_a_failing_endpoint_is_disabled_audited_and_its_admins_emailed(
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    with smtp_server() as inbox:
        mailing = settings.model_copy(
            update={"smtp_host": inbox.host, "smtp_port": inbox.port, "smtp_security": "none"}
        )
        app = create_app(mailing, clock=clock, database=database)
        with TestClient(app, raise_server_exceptions=False) as client:
            acme = Factory(client).tenant("Acme")
            endpoint = add_endpoint(client, acme, receiver.url)
            receiver.status = 503
            first = send_test(client, acme, endpoint["id"])
            send_test(client, acme, endpoint["id"])
            # Two deliveries, 4 attempts each at most; the 6th failure in a row disables it.
            for wait in (0, 30, 120):
                clock.advance(seconds=wait)
                deliver(database, mailing, clock)
            report = deliver(database, mailing, clock)
            assert report.disabled_endpoints == [] and len(receiver.requests) == 6
            shown = client.get(
                f"/api/v1/orgs/{acme.org_id}/webhooks/{endpoint['id']}", headers=acme.headers
            ).json()
            assert shown["enabled"] is False and shown["disabled_reason"] == "failing"
            assert shown["consecutive_failures"] == 6
            assert ("webhook.disabled", "system") in audit_actions(database, acme.org_id)
            [mail] = inbox.to(acme.owner_email)
            assert endpoint["id"] in mail.get_content()

            # Disabled: nothing more is attempted, tests and redeliveries are refused.
            clock.advance(minutes=8)
            assert deliver(database, mailing, clock).attempted == 0
            url = f"/api/v1/orgs/{acme.org_id}/webhooks/{endpoint['id']}"
            assert_problem(
                client.post(f"{url}/test", headers=acme.headers), 409, "webhook_disabled"
            )

            # Enabled again: the count starts afresh and the pending deliveries resume.
            resp = client.patch(url, headers=acme.headers, json={"enabled": True})
            assert resp.status_code == 200, resp.text
            assert resp.json()["consecutive_failures"] == 0
            receiver.status = 200
            assert deliver(database, mailing, clock).succeeded == 2
            logged = {d["id"]: d for d in log_of(client, acme, endpoint["id"])}
            assert logged[first["id"]]["status"] == "succeeded"


def test_a_delivery_that_gave_up_is_redelivered_as_the_same_message(
    client: TestClient,
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    acme = factory.tenant("Acme")
    endpoint = add_endpoint(client, acme, receiver.url)
    receiver.status = 500
    queued = send_test(client, acme, endpoint["id"])
    for wait in (0, 30, 120, 480):
        clock.advance(seconds=wait)
        deliver(database, settings, clock)
    [logged] = log_of(client, acme, endpoint["id"])
    assert (logged["status"], logged["attempts"], logged["next_attempt_at"]) == ("failed", 4, None)
    clock.advance(minutes=4)  # within the access token's 15 minutes
    assert deliver(database, settings, clock).attempted == 0  # it gave up

    receiver.status = 200
    url = f"/api/v1/orgs/{acme.org_id}/webhooks/{endpoint['id']}/deliveries/{queued['id']}"
    resp = client.post(f"{url}/redeliver", headers=acme.headers)
    assert resp.status_code == 202, resp.text
    again = resp.json()
    assert again["redelivery_of"] == queued["id"] and again["message_id"] == queued["message_id"]
    assert deliver(database, settings, clock).succeeded == 1
    assert receiver.requests[-1].headers["webhook-id"] == queued["message_id"]
    assert receiver.requests[-1].body == receiver.requests[0].body
    assert client.get(url, headers=acme.headers).json()["status"] == "failed"  # its log stays
    assert ("webhook_delivery.redelivered", "user") in audit_actions(database, acme.org_id)


def test_a_receiver_that_is_down_never_reaches_the_request(
    client: TestClient, factory: Factory, database: Database, settings: Settings, clock: FrozenClock
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    acme = factory.tenant("Acme")
    endpoint = add_endpoint(client, acme, f"http://127.0.0.1:{port}/down")
    send_test(client, acme, endpoint["id"])
    [logged] = log_of(client, acme, endpoint["id"])
    assert logged["attempts"] == 0  # the request wrote the outbox and answered

    report = deliver(database, settings, clock)
    assert report.failed == 1
    [logged] = log_of(client, acme, endpoint["id"])
    assert logged["last_status_code"] is None and logged["last_error"].startswith("ConnectError")


def test_a_running_worker_delivers_between_its_passes(
    client: TestClient,
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    acme = factory.tenant("Acme")
    endpoint = add_endpoint(client, acme, receiver.url)
    polling = settings.model_copy(update={"webhooks_poll_seconds": 0.05})
    stop, first_pass = threading.Event(), threading.Event()
    reports: list[worker.WorkerReport] = []

    def heard(report: worker.WorkerReport) -> None:
        reports.append(report)
        first_pass.set()

    loop = threading.Thread(
        target=worker.run,
        args=(polling,),
        kwargs={"interval": 3600, "clock": clock, "database": database, "stop": stop,
                "on_report": heard},
    )  # fmt: skip
    loop.start()
    try:
        assert first_pass.wait(60)
        send_test(client, acme, endpoint["id"])  # after the pass: only the polling sends it
        assert receiver.arrived.wait(60)
    finally:
        stop.set()
        loop.join(60)
    assert len(reports) == 1 and len(receiver.requests) == 1


def test_the_worker_delivers_in_its_pass(
    client: TestClient,
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    acme = factory.tenant("Acme")
    endpoint = add_endpoint(client, acme, receiver.url)
    send_test(client, acme, endpoint["id"])
    report = worker.run_once(settings, clock=clock, database=database)
    assert report.webhooks.succeeded == 1 and len(receiver.requests) == 1
    assert report.as_dict()["webhooks"]["succeeded"] == 1


@pytest.fixture
def guarded(
    tmp_path: Path, database_url: str, clock: FrozenClock, database: Database
) -> Iterator[TestClient]:
    """The app with the SSRF guard on (the deployment's default)."""
    settings = Settings(
        data_dir=tmp_path / "guarded",
        database_url=database_url,
        secret_key="test-secret-" + "x" * 40,
        password_time_cost=1,
        password_memory_cost_kib=1024,
    )
    with TestClient(create_app(settings, clock=clock, database=database)) as found:
        yield found


REFUSED_URLS = [
    "http://203.0.113.9/hooks",  # not https
    "https://127.0.0.1/hooks",
    "https://localhost/hooks",
    "https://10.1.2.3/hooks",
    "https://192.168.0.10:8443/hooks",
    "https://169.254.169.254/latest/meta-data",  # cloud metadata
    "https://[::1]/hooks",
    "https://[::ffff:127.0.0.1]/hooks",
    "https://100.64.0.1/hooks",  # carrier-grade NAT
    "https://0.0.0.0/hooks",
    "https://user:pass@8.8.8.8/hooks",
    "ftp://8.8.8.8/hooks",
    "not a url",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_private_or_plain_urls_are_refused_and_nothing_is_written(
    guarded: TestClient, database: Database, url: str
) -> None:
    acme = Factory(guarded).tenant("Acme")
    before = count_rows(database)
    resp = guarded.post(
        f"/api/v1/orgs/{acme.org_id}/webhooks",
        headers=acme.headers,
        json={"url": url, "event_types": BUDGET_EVENTS},
    )
    assert_problem(resp, 422, "webhook_url_refused")
    assert count_rows(database) == before


def test_a_url_changed_to_a_private_address_is_refused(
    guarded: TestClient, database: Database
) -> None:
    acme = Factory(guarded).tenant("Acme")
    created = guarded.post(
        f"/api/v1/orgs/{acme.org_id}/webhooks",
        headers=acme.headers,
        json={"url": "https://8.8.8.8/hooks", "event_types": BUDGET_EVENTS},
    )
    assert created.status_code == 201, created.text
    url = f"/api/v1/orgs/{acme.org_id}/webhooks/{created.json()['id']}"
    before = count_rows(database)
    resp = guarded.patch(url, headers=acme.headers, json={"url": "https://127.0.0.1/x"})
    assert_problem(resp, 422, "webhook_url_refused")
    assert count_rows(database) == before
    assert guarded.get(url, headers=acme.headers).json()["url"] == "https://8.8.8.8/hooks"


def test_a_name_that_now_resolves_to_loopback_is_refused_at_delivery(
    guarded: TestClient,
    database: Database,
    clock: FrozenClock,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: the name resolved to a public address when it was saved, to loopback when
    it is delivered. DNS is the edge we cannot run here, so its answers are set."""
    answers = {"hooks.rebind.test": "93.184.216.34"}
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, *args: Any, **kw: Any) -> Any:
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    acme = Factory(guarded).tenant("Acme")
    created = guarded.post(
        f"/api/v1/orgs/{acme.org_id}/webhooks",
        headers=acme.headers,
        json={"url": f"https://hooks.rebind.test:{receiver.port}/x", "event_types": BUDGET_EVENTS},
    )
    assert created.status_code == 201, created.text
    send_test(guarded, acme, created.json()["id"])
    answers["hooks.rebind.test"] = "127.0.0.1"
    settings: Settings = guarded.app.state.settings  # type: ignore[attr-defined]
    assert deliver(database, settings, clock).failed == 1
    assert receiver.requests == []
    [logged] = log_of(guarded, acme, created.json()["id"])
    assert "resolves to 127.0.0.1" in logged["last_error"]


def test_unknown_event_types_are_refused(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    before = count_rows(database)
    for event_types in (["budget.exceeded", "budget.eaten"], [], ["webhook.test"]):
        resp = client.post(
            f"/api/v1/orgs/{acme.org_id}/webhooks",
            headers=acme.headers,
            json={"url": "https://8.8.8.8/x", "event_types": event_types},
        )
        assert_problem(resp, 422)
    assert count_rows(database) == before
    listed = client.get("/api/v1/webhook-event-types", headers=acme.headers).json()
    assert "budget.exceeded" in [t["type"] for t in listed["event_types"]]


def test_another_orgs_endpoints_and_deliveries_answer_404(
    client: TestClient, factory: Factory, receiver: Receiver
) -> None:
    acme, globex = factory.tenant("Acme"), factory.tenant("Globex")
    endpoint = add_endpoint(client, acme, receiver.url)
    delivery = send_test(client, acme, endpoint["id"])
    for org in (acme.org_id, globex.org_id):  # acme's path (not a member) or globex's own
        base = f"/api/v1/orgs/{org}/webhooks/{endpoint['id']}"
        deliveries = f"{base}/deliveries/{delivery['id']}"
        for method, url in (
            ("GET", base),
            ("PATCH", base),
            ("DELETE", base),
            ("POST", f"{base}/test"),
            ("GET", f"{base}/deliveries"),
            ("GET", deliveries),
            ("POST", f"{deliveries}/redeliver"),
        ):
            body = {"enabled": False} if method == "PATCH" else None
            resp = client.request(method, url, headers=globex.headers, json=body)
            assert_problem(resp, 404)
    assert len(log_of(client, acme, endpoint["id"])) == 1


def test_a_removed_endpoint_takes_its_pending_deliveries_with_it(
    client: TestClient,
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    acme = factory.tenant("Acme")
    endpoint = add_endpoint(client, acme, receiver.url)
    send_test(client, acme, endpoint["id"])
    url = f"/api/v1/orgs/{acme.org_id}/webhooks/{endpoint['id']}"
    assert client.delete(url, headers=acme.headers).status_code == 204
    assert deliver(database, settings, clock).attempted == 0
    assert receiver.requests == []
    assert count_rows(database)["webhook_deliveries"] == 0
    assert_problem(client.get(url, headers=acme.headers), 404)


def test_a_member_without_the_permission_is_refused(
    client: TestClient, factory: Factory, receiver: Receiver
) -> None:
    acme = factory.tenant("Acme")
    _, token = factory.member(acme, team_role="editor")
    resp = client.get(f"/api/v1/orgs/{acme.org_id}/webhooks", headers=bearer(token))
    assert_problem(resp, 403)
    resp = client.post(
        f"/api/v1/orgs/{acme.org_id}/webhooks",
        headers=bearer(token),
        json={"url": receiver.url, "event_types": BUDGET_EVENTS},
    )
    assert_problem(resp, 403)


def test_the_message_body_is_the_standard_shape(
    client: TestClient,
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    acme = factory.tenant("Acme")
    endpoint = add_endpoint(client, acme, receiver.url)
    send_test(client, acme, endpoint["id"])
    deliver(database, settings, clock)
    [got] = receiver.requests
    body = json.loads(got.body)
    assert set(body) == {"type", "timestamp", "data"}
    assert body["timestamp"] == iso(clock.now())
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-signature"].startswith("v1,")


BILLING_EVENTS = ["invoice.finalized", "invoice.paid", "payment.failed", "payment.succeeded"]


def test_invoice_and_payment_events_are_delivered(
    client: TestClient,
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    acme = factory.tenant("Acme")
    endpoint = add_endpoint(client, acme, receiver.url, BILLING_EVENTS)
    resp = client.put(
        f"/api/v1/orgs/{acme.org_id}/subscription", headers=acme.headers, json={"plan": "starter"}
    )
    assert resp.status_code == 200, resp.text
    invoice_id = resp.json()["invoice"]["id"]
    card = {"token": "local_declines", "brand": "visa", "last4": "0002", "exp_month": 12,
            "exp_year": 2030}  # fmt: skip
    resp = client.post(
        f"/api/v1/orgs/{acme.org_id}/payment-methods", headers=acme.headers, json=card
    )
    assert resp.status_code == 201, resp.text
    pay = f"/api/v1/invoices/{invoice_id}/pay"
    assert client.post(pay, headers=acme.headers, json={}).json()["payment"]["status"] == "failed"
    card |= {"token": "tok_visa", "last4": "4242", "default": True}
    resp = client.post(
        f"/api/v1/orgs/{acme.org_id}/payment-methods", headers=acme.headers, json=card
    )
    assert resp.status_code == 201, resp.text
    assert (
        client.post(pay, headers=acme.headers, json={}).json()["payment"]["status"] == "succeeded"
    )

    assert deliver(database, settings, clock).succeeded == 4
    payloads = [Webhook(endpoint["secret"]).verify(r.body, r.headers) for r in receiver.requests]
    assert sorted(p["type"] for p in payloads) == [
        "invoice.finalized",
        "invoice.paid",
        "payment.failed",
        "payment.succeeded",
    ]
    by_type = {p["type"]: p["data"] for p in payloads}
    assert by_type["invoice.finalized"]["invoice_id"] == invoice_id
    assert by_type["invoice.finalized"]["number"] == "INV-" + str(clock.now().year) + "-0001"
    assert by_type["invoice.paid"]["status"] == "paid"
    assert by_type["payment.failed"]["failure_code"] is not None
    assert by_type["payment.succeeded"]["invoice"]["status"] == "paid"
    assert by_type["payment.succeeded"]["amount"] == by_type["invoice.paid"]["total"] == 2900


def test_the_log_keeps_the_first_kilobyte_of_any_answer(
    client: TestClient,
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    acme = factory.tenant("Acme")
    endpoint = add_endpoint(client, acme, receiver.url)
    receiver.reply = b"\x00\xff" + b"x" * 5000  # a NUL, a byte that is not UTF-8, and more
    send_test(client, acme, endpoint["id"])
    assert deliver(database, settings, clock).succeeded == 1
    [logged] = log_of(client, acme, endpoint["id"])
    assert logged["last_response"] == "\ufffd\ufffd" + "x" * 1022


def test_an_attempt_goes_to_the_address_that_was_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host name resolves once, the request names that address, and the name travels in
    Host and TLS's SNI; DNS is the edge we cannot run here, so its answer is set."""
    answer = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 8443))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **kw: answer)
    target = guard.target_of("https://hooks.acme.test:8443/in?x=1", allow_private=False)
    assert target == guard.Target(
        "https://93.184.216.34:8443/in?x=1",
        host="hooks.acme.test",
        host_header="hooks.acme.test:8443",
    )
    assert guard.target_of("https://8.8.8.8/in", allow_private=False).host is None
    allowed = guard.target_of("http://localhost:9/in", allow_private=True)
    assert allowed == guard.Target("http://localhost:9/in")
