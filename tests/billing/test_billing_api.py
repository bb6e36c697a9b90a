"""Billing through the HTTP API: subscriptions, prorations, period invoices from the worker,
payments with the local provider, retries, credit notes, states and bad input.

The clock starts on 2026-01-01 00:00 UTC, so a monthly period is January's 31 days."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import (
    PASSWORD,
    Factory,
    Tenant,
    assert_problem,
    bearer,
    count_rows,
    operator_headers,
    operator_url,
)
from tenantry.billing.models import Invoice
from tenantry.billing.providers import LocalProvider
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.worker import run_once

D = Decimal


class Org:
    """An org and its owner, with a fresh token whenever the clock has moved past the last."""

    def __init__(self, client: TestClient, clock: FrozenClock, tenant: Tenant) -> None:
        self.client, self.clock, self.tenant = client, clock, tenant
        self._token, self._minted = tenant.token, clock.now()

    @property
    def id(self) -> str:
        return self.tenant.org_id

    @property
    def headers(self) -> dict[str, str]:
        if self.clock.now() - self._minted > timedelta(minutes=10):
            resp = self.client.post(
                "/api/v1/auth/login",
                json={"email": self.tenant.owner_email, "password": PASSWORD},
            )
            assert resp.status_code == 200, resp.text
            self._token, self._minted = resp.json()["access_token"], self.clock.now()
        return bearer(self._token)

    def call(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        resp = self.client.request(method, "/api/v1" + path, headers=self.headers, **kw)
        assert resp.status_code == status, resp.text
        return resp.json() if resp.content else None

    def subscribe(self, plan: str = "starter", **body: Any) -> dict[str, Any]:
        return dict(self.call("PUT", f"/orgs/{self.id}/subscription", json={"plan": plan, **body}))

    def add_card(self, token: str = "tok_visa", **body: Any) -> dict[str, Any]:
        card = {"token": token, "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}
        return dict(self.call("POST", f"/orgs/{self.id}/payment-methods", 201, json=card | body))

    def invoices(self) -> list[dict[str, Any]]:
        return list(self.call("GET", f"/orgs/{self.id}/invoices")["items"])

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/invoices/{invoice_id}"))

    def record(self, meter: str, quantity: str, *, event_id: str) -> None:
        event = {
            "id": event_id,
            "meter": meter,
            "quantity": quantity,
            "timestamp": self.clock.now().isoformat(),
            "team": self.tenant.team_id,
        }
        body = self.call("POST", "/usage/events", json={"org": self.id, "events": [event]})
        assert body["results"][0]["status"] == "accepted", body


@pytest.fixture
def org(client: TestClient, clock: FrozenClock, factory: Factory) -> Org:
    return Org(client, clock, factory.tenant("Acme AI"))


@pytest.fixture
def worker(settings: Settings, clock: FrozenClock, database: Database) -> Callable[[], Any]:
    return lambda: run_once(settings, clock=clock, database=database, payments=LocalProvider())


def test_subscribing_issues_the_first_invoice_and_changes_quotas_at_once(org: Org) -> None:
    assert org.call("GET", f"/orgs/{org.id}/plan")["key"] == "free"
    change = org.subscribe("starter")
    assert change["change"] == "created"
    sub = change["subscription"]
    assert (sub["plan"], sub["cycle"], sub["status"]) == ("starter", "monthly", "active")
    assert sub["current_period_end"] == "2026-02-01T00:00:00Z"
    invoice = change["invoice"]
    assert invoice["number"] == "INV-2026-0001"
    assert (invoice["status"], invoice["total"], invoice["amount_due"]) == (
        "open",
        "29.00",
        "29.00",
    )
    assert [x["amount"] for x in invoice["lines"]] == ["29.00"]
    # Quotas and rate limits follow the plan in the same request.
    assert org.call("GET", f"/orgs/{org.id}/plan")["key"] == "starter"
    limits = org.call("GET", f"/orgs/{org.id}/rate-limits")
    assert limits["plan"] == "starter"


def test_pay_with_the_local_provider(org: Org) -> None:
    invoice = org.subscribe()["invoice"]
    card = org.add_card()
    assert card["is_default"] and card["last4"] == "4242"
    paid = org.call("POST", f"/invoices/{invoice['id']}/pay", json={})
    assert paid["payment"]["status"] == "succeeded"
    assert paid["payment"]["amount"] == "29.00"
    assert paid["invoice"]["status"] == "paid"
    assert paid["invoice"]["amount_due"] == "0.00"
    # Paying again: nothing is left to pay.
    again = org.client.post(f"/api/v1/invoices/{invoice['id']}/pay", headers=org.headers, json={})
    assert_problem(again, 409, "invoice_not_payable")
    history = org.call("GET", f"/orgs/{org.id}/payments")["items"]
    assert [(p["attempt"], p["status"]) for p in history] == [(1, "succeeded")]


def test_a_card_number_is_never_accepted(org: Org, database: Database) -> None:
    before = count_rows(database)
    resp = org.client.post(
        f"/api/v1/orgs/{org.id}/payment-methods",
        headers=org.headers,
        json={"token": "tok", "number": "4242424242424242"},
    )
    assert_problem(resp, 422)
    resp = org.client.post(
        f"/api/v1/orgs/{org.id}/payment-methods",
        headers=org.headers,
        json={"token": "tok", "last4": "42424242"},
    )
    assert_problem(resp, 422)
    assert count_rows(database) == before


def test_upgrade_mid_period_is_prorated_on_the_next_invoice(org: Org, clock: FrozenClock) -> None:
    org.subscribe("starter")
    clock.advance(days=15, hours=12)  # exactly half of January
    change = org.subscribe("professional")
    assert change["change"] == "changed"
    assert [(x["kind"], x["amount"]) for x in change["prorations"]] == [
        ("proration_credit", "-14.50"),
        ("proration_charge", "49.50"),
    ]
    assert org.call("GET", f"/orgs/{org.id}/plan")["key"] == "professional"
    upcoming = org.call("GET", f"/orgs/{org.id}/invoices/upcoming")
    # Next period's base fee on Professional, and the two proration lines.
    assert [x["amount"] for x in upcoming["lines"]] == ["99.00", "-14.50", "49.50"]
    assert upcoming["total"] == "134.00"


def test_the_period_invoice_is_made_once_however_often_the_job_runs(
    org: Org, clock: FrozenClock, worker: Callable[[], Any], database: Database
) -> None:
    first = org.subscribe("starter")["invoice"]
    org.add_card()
    # Usage in January: 1,200 compute hours (1,000 included), in three events.
    for n, hours in enumerate(("500", "400", "300")):
        org.record("compute_hours", hours, event_id=f"job-{n}")
        clock.advance(hours=1)
    report = worker()  # collects the first invoice (a default card exists)
    assert org.invoice(first["id"])["status"] == "paid"
    assert report.billing.periods_closed == 0
    clock.set(clock.now().replace(month=2, day=1, hour=0) + timedelta(minutes=59))
    assert worker().billing.periods_closed == 0  # within the hour's delay for late usage
    clock.advance(minutes=2)
    report = worker()
    assert report.billing.periods_closed == 1
    assert worker().billing.periods_closed == 0
    assert worker().billing.invoices == []
    with database.session(write=False) as session:
        count = session.scalar(
            select(func.count()).select_from(Invoice).where(Invoice.org_id == org.id)
        )
    assert count == 2
    second = org.invoice(report.billing.invoices[0])
    assert second["number"] == "INV-2026-0002"
    assert [(x["kind"], x["amount"]) for x in second["lines"]] == [
        ("overage", "100.00"),
        ("base", "29.00"),
    ]
    assert second["total"] == "129.00"
    assert second["status"] == "paid"  # collected automatically in the same pass
    sub = org.call("GET", f"/orgs/{org.id}/subscription")["subscription"]
    assert (sub["current_period_start"], sub["current_period_end"]) == (
        "2026-02-01T00:00:00Z",
        "2026-03-01T00:00:00Z",
    )


def test_concurrent_invoice_jobs_invoice_a_period_once(
    org: Org, clock: FrozenClock, settings: Settings, database: Database
) -> None:
    org.subscribe("starter")
    clock.set(clock.now() + timedelta(days=32))
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def job() -> None:
        try:
            barrier.wait()
            run_once(settings, clock=clock, database=database, payments=LocalProvider())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=job) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    numbers = sorted(x["number"] for x in org.invoices())
    assert numbers == ["INV-2026-0001", "INV-2026-0002"]


def test_declined_payment_is_retried_and_the_subscription_recovers(
    org: Org, clock: FrozenClock, worker: Callable[[], Any]
) -> None:
    org.subscribe("starter")
    org.add_card(token="local_declines", last4="0002")
    report = worker()
    [outcome] = report.billing.payments.values()
    assert outcome == "failed"
    invoice = org.invoices()[0]
    detail = org.invoice(invoice["id"])
    assert detail["status"] == "open"
    assert detail["next_attempt_at"] == "2026-01-02T00:00:00Z"  # one day later
    assert org.call("GET", f"/orgs/{org.id}/subscription")["subscription"]["status"] == "past_due"
    # Nothing is tried again before its time.
    clock.advance(hours=23)
    assert worker().billing.payments == {}
    # A working card as the new default; the retry a day after the failure collects.
    org.add_card(token="tok_good", last4="4242", default=True)
    clock.advance(hours=1)
    report = worker()
    assert list(report.billing.payments.values()) == ["succeeded"]
    detail = org.invoice(invoice["id"])
    assert detail["status"] == "paid"
    assert [(p["attempt"], p["status"]) for p in detail["payments"]] == [
        (1, "failed"),
        (2, "succeeded"),
    ]
    assert org.call("GET", f"/orgs/{org.id}/subscription")["subscription"]["status"] == "active"


def test_cancel_at_period_end_then_free(
    org: Org, clock: FrozenClock, worker: Callable[[], Any]
) -> None:
    org.subscribe("professional")
    change = org.call("DELETE", f"/orgs/{org.id}/subscription")
    assert change["subscription"]["cancel_at_period_end"] is True
    assert org.call("GET", f"/orgs/{org.id}/plan")["key"] == "professional"
    upcoming = org.call("GET", f"/orgs/{org.id}/invoices/upcoming")
    assert upcoming["lines"] == []  # no next base fee
    clock.set(clock.now() + timedelta(days=31, hours=2))
    assert worker().billing.periods_closed == 1
    sub = org.call("GET", f"/orgs/{org.id}/subscription")
    assert sub["plan"] == "free" and sub["subscription"]["status"] == "canceled"
    assert len(org.invoices()) == 1  # nothing to bill for the last period


def test_cancel_now_drops_to_free_at_once(org: Org, clock: FrozenClock) -> None:
    org.subscribe("starter")
    clock.advance(days=3)
    change = org.call("DELETE", f"/orgs/{org.id}/subscription", params={"immediately": "true"})
    assert change["subscription"]["status"] == "canceled"
    assert org.call("GET", f"/orgs/{org.id}/plan")["key"] == "free"
    resp = org.client.delete(f"/api/v1/orgs/{org.id}/subscription", headers=org.headers)
    assert_problem(resp, 404, "no_subscription")
    # Subscribing again starts afresh.
    again = org.subscribe("starter")
    assert again["change"] == "created" and again["invoice"]["number"] == "INV-2026-0002"


def test_yearly_cycle_change_credits_and_invoices_now(org: Org, clock: FrozenClock) -> None:
    org.subscribe("starter")
    clock.advance(days=15, hours=12)
    change = org.subscribe("starter", cycle="yearly")
    invoice = change["invoice"]
    assert [(x["kind"], x["amount"]) for x in invoice["lines"]] == [
        ("base", "290.00"),
        ("proration_credit", "-14.50"),
    ]
    assert invoice["total"] == "275.50"
    sub = change["subscription"]
    assert sub["cycle"] == "yearly"
    assert (sub["current_period_start"], sub["current_period_end"]) == (
        "2026-01-16T12:00:00Z",
        "2027-01-16T12:00:00Z",
    )


def test_manual_invoice_with_tax_draft_finalize_and_states(org: Org) -> None:
    account = org.call("PATCH", f"/orgs/{org.id}/billing/account", json={"tax_rate": "0.2"})
    assert account["tax_rate"] == "0.2"
    draft = org.call(
        "POST",
        f"/orgs/{org.id}/invoices",
        201,
        json={
            "lines": [
                {"description": "Onboarding workshop", "quantity": "3", "unit_price": "3.333"},
                {"description": "Rounding probe", "unit_price": "0.005"},
            ],
            "memo": "Thank you",
        },
    )
    assert (draft["status"], draft["number"]) == ("draft", None)
    assert (draft["subtotal"], draft["tax"], draft["total"]) == ("10.01", "2.00", "12.01")
    final = org.call("POST", f"/invoices/{draft['id']}/finalize")
    assert (final["status"], final["number"]) == ("open", "INV-2026-0001")
    again = org.client.post(f"/api/v1/invoices/{draft['id']}/finalize", headers=org.headers)
    assert_problem(again, 409, "invoice_not_draft")
    uncollectible = org.call("POST", f"/invoices/{draft['id']}/mark-uncollectible")
    assert uncollectible["status"] == "uncollectible"
    resp = org.client.post(f"/api/v1/invoices/{draft['id']}/void", headers=org.headers)
    assert_problem(resp, 409, "invoice_not_voidable")
    # An uncollectible invoice can still be paid.
    org.add_card()
    paid = org.call("POST", f"/invoices/{draft['id']}/pay", json={})
    assert paid["invoice"]["status"] == "paid" and paid["payment"]["amount"] == "12.01"


def test_void_and_gapless_numbers_per_org(
    org: Org, factory: Factory, client: TestClient, clock: FrozenClock
) -> None:
    line = {"lines": [{"description": "x", "unit_price": "5"}]}
    a = org.call("POST", f"/orgs/{org.id}/invoices", 201, json=line | {"finalize": True})
    voided = org.call("POST", f"/invoices/{a['id']}/void")
    assert voided["status"] == "void" and voided["number"] == "INV-2026-0001"
    b = org.call("POST", f"/orgs/{org.id}/invoices", 201, json=line | {"finalize": True})
    assert b["number"] == "INV-2026-0002"
    other = Org(client, clock, factory.tenant("Other"))
    c = other.call("POST", f"/orgs/{other.id}/invoices", 201, json=line | {"finalize": True})
    assert c["number"] == "INV-2026-0001"
    # Another org's invoice does not exist for this one.
    resp = client.get(f"/api/v1/invoices/{c['id']}", headers=org.headers)
    assert_problem(resp, 404)


def test_credit_note_on_open_and_paid_invoices(org: Org) -> None:
    line = {"lines": [{"description": "Consulting", "quantity": "2", "unit_price": "50"}]}
    inv = org.call("POST", f"/orgs/{org.id}/invoices", 201, json=line | {"finalize": True})
    note = org.call(
        "POST",
        f"/invoices/{inv['id']}/credit-notes",
        201,
        json={"reason": "one hour less", "amount": "50"},
    )
    assert (note["kind"], note["number"], note["status"], note["total"]) == (
        "credit_note",
        "CN-2026-0001",
        "issued",
        "-50.00",
    )
    assert org.invoice(inv["id"])["amount_due"] == "50.00"
    resp = org.client.post(
        f"/api/v1/invoices/{inv['id']}/credit-notes",
        headers=org.headers,
        json={"reason": "too much", "amount": "60"},
    )
    assert_problem(resp, 422, "invalid_credit")
    org.add_card()
    paid = org.call("POST", f"/invoices/{inv['id']}/pay", json={})
    assert paid["payment"]["amount"] == "50.00" and paid["invoice"]["status"] == "paid"
    # A credit on a paid invoice waits for the next invoice.
    org.call(
        "POST",
        f"/invoices/{inv['id']}/credit-notes",
        201,
        json={"reason": "goodwill", "amount": "10"},
    )
    upcoming = org.call("GET", f"/orgs/{org.id}/invoices/upcoming")
    assert [x["amount"] for x in upcoming["lines"]] == ["-10.00"]


def test_bad_input_writes_nothing(org: Org, database: Database) -> None:
    before = count_rows(database)
    cases = [
        ("PUT", f"/orgs/{org.id}/subscription", {"plan": "gold"}, 422),
        ("PUT", f"/orgs/{org.id}/subscription", {"plan": "free"}, 422),
        ("PUT", f"/orgs/{org.id}/subscription", {"plan": "starter", "cycle": "weekly"}, 422),
        ("PUT", f"/orgs/{org.id}/subscription", {"plan": "starter", "trial_days": 0}, 422),
        ("PATCH", f"/orgs/{org.id}/billing/account", {"tax_rate": "1.5"}, 422),
        ("POST", f"/orgs/{org.id}/invoices", {"lines": []}, 422),
        (
            "POST",
            f"/orgs/{org.id}/invoices",
            {"lines": [{"description": "x", "unit_price": "NaN"}]},
            422,
        ),
    ]
    for method, path, body, status in cases:
        resp = org.client.request(method, "/api/v1" + path, headers=org.headers, json=body)
        assert_problem(resp, status)
    assert count_rows(database) == before


def test_billing_needs_billing_permissions(org: Org, factory: Factory, client: TestClient) -> None:
    _, admin_token = factory.member(org.tenant, org_role="admin")
    _, member_token = factory.member(org.tenant)
    # An admin sees billing but may not change it; a member sees nothing of it.
    assert (
        client.get(f"/api/v1/orgs/{org.id}/subscription", headers=bearer(admin_token)).status_code
        == 200
    )
    resp = client.put(
        f"/api/v1/orgs/{org.id}/subscription", headers=bearer(admin_token), json={"plan": "starter"}
    )
    assert_problem(resp, 403)
    resp = client.get(f"/api/v1/orgs/{org.id}/invoices", headers=bearer(member_token))
    assert_problem(resp, 403)


def test_trial_then_first_invoice_at_its_end(
    org: Org, clock: FrozenClock, worker: Callable[[], Any]
) -> None:
    change = org.subscribe("professional", trial_days=14)
    assert change["subscription"]["status"] == "trialing" and change["invoice"] is None
    assert org.call("GET", f"/orgs/{org.id}/plan")["key"] == "professional"
    org.record("compute_hours", "9000", event_id="trial-usage")  # a trial's usage is free
    # A trial that ends unpaid falls back to Free (tests/operators/test_operators.py).
    org.add_card()
    clock.set(clock.now() + timedelta(days=14, hours=2))
    report = worker()
    [invoice_id] = report.billing.invoices
    invoice = org.invoice(invoice_id)
    assert [(x["kind"], x["amount"]) for x in invoice["lines"]] == [("base", "99.00")]
    sub = org.call("GET", f"/orgs/{org.id}/subscription")["subscription"]
    assert sub["status"] == "active"
    assert (sub["current_period_start"], sub["current_period_end"]) == (
        "2026-01-15T00:00:00Z",
        "2026-02-15T00:00:00Z",
    )


def test_plans_are_public(client: TestClient) -> None:
    body = client.get("/api/v1/billing/plans").json()
    prices = {p["key"]: (p["monthly_price"], p["yearly_price"]) for p in body["plans"]}
    assert prices == {
        "free": ("0.00", "0.00"),
        "starter": ("29.00", "290.00"),
        "professional": ("99.00", "990.00"),
        "enterprise": ("499.00", "4990.00"),
    }
    assert body["overage_rates"] == {
        "compute_hours": "0.5",
        "storage_gb": "0.1",
        "api_calls": "0.00001",
    }


def test_the_plan_of_a_subscribed_org_moves_only_through_its_subscription(org: Org) -> None:
    # The owner never sets the plan directly: PATCH takes no `plan` (422, nothing written).
    resp = org.client.patch(f"/api/v1/orgs/{org.id}", headers=org.headers, json={"plan": "free"})
    assert_problem(resp, 422, "validation_error")
    # An operator may give a plan outside billing (a contract)...
    operator = operator_headers(org.client)
    resp = org.client.put(operator_url(org.id, "/plan"), headers=operator, json={"plan": "starter"})
    assert resp.status_code == 200, resp.text
    org.subscribe("professional")
    # ...but not around a subscription: its plan moves through billing.
    resp = org.client.put(operator_url(org.id, "/plan"), headers=operator, json={"plan": "free"})
    assert_problem(resp, 409, "subscription_active")
    assert org.call("GET", f"/orgs/{org.id}/plan")["key"] == "professional"


def test_invoice_pdf_and_html_downloads(org: Org) -> None:
    from io import BytesIO

    from pypdf import PdfReader

    invoice = org.subscribe("starter")["invoice"]
    resp = org.client.get(f"/api/v1/invoices/{invoice['id']}/pdf", headers=org.headers)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/pdf"
    assert 'filename="INV-2026-0001.pdf"' in resp.headers["content-disposition"]
    text = "".join(page.extract_text() for page in PdfReader(BytesIO(resp.content)).pages)
    for expected in ("INV-2026-0001", "Acme AI", "Starter plan, monthly", "$29.00"):
        assert expected in text, (expected, text)
    html = org.client.get(f"/api/v1/invoices/{invoice['id']}/html", headers=org.headers)
    assert html.status_code == 200 and "INV-2026-0001" in html.text
