"""Billing in the browser, against Stripe's API faked at its transport (tests/support/
stripe_fake.py): subscribe, add a card by its payment method token, pay the invoice, download
its PDF; what the pages did is what the API and the payment provider show afterwards."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from playwright.sync_api import expect

from conftest import Factory
from support.stripe_fake import DECLINING, FakeStripe
from tenantry.app import create_app
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from web.conftest import LiveServer, check_accessibility, sign_in


@pytest.fixture
def fake() -> FakeStripe:
    return FakeStripe()


@pytest.fixture
def app(settings: Settings, clock: FrozenClock, database: Database, fake: FakeStripe) -> FastAPI:
    """The app with Stripe as its payment provider, over the fake transport."""
    made = create_app(settings, clock=clock, database=database)
    made.state.payments = fake.provider()
    return made


def test_subscribe_add_a_card_pay_and_download_the_pdf(
    page: Any, live_server: LiveServer, factory: Factory, fake: FakeStripe, shots: Any
) -> None:
    tenant = factory.tenant("Acme Labs")
    sign_in(page, tenant.owner_email)
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Billing").click()
    expect(page.locator("#current-plan")).to_have_text("Free")
    expect(page.locator("#invoices-h + .empty .empty-title")).to_have_text("No invoices yet")
    check_accessibility(page, "billing, on Free")

    page.get_by_role("combobox", name="Plan").select_option("starter")
    page.get_by_label("Billing cycle").select_option("monthly")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.locator(".notice")).to_have_text("Subscribed to starter (monthly).")
    expect(page.locator("#current-plan")).to_have_text("Starter")
    invoice_row = page.locator("#invoices tbody tr").first
    expect(invoice_row).to_contain_text("INV-2026-0001")
    expect(invoice_row).to_contain_text("open")

    page.get_by_label("Payment method token").fill("pm_card_visa")
    page.get_by_role("button", name="Add payment method").click()
    # Stripe, not the form, says what the card is.
    expect(page.locator(".notice")).to_have_text("Added visa ending 4242.")
    expect(page.locator("#payment-methods")).to_contain_text("Visa ending 4242")

    page.get_by_role("button", name="Pay INV-2026-0001").click()
    expect(page.locator(".notice")).to_have_text("Invoice INV-2026-0001 paid.")
    expect(invoice_row).to_contain_text("paid")
    expect(page.locator("#payments tbody tr").first).to_contain_text("succeeded")
    check_accessibility(page, "billing, subscribed and paid")
    page.evaluate("window.scrollTo(0, 0)")  # the navigation where it sits
    page.screenshot(path=str(shots / "billing.png"), full_page=True)

    with page.expect_download() as download:
        page.get_by_role("link", name="PDF of INV-2026-0001").click()
    assert download.value.suggested_filename == "INV-2026-0001.pdf"
    pdf = download.value.path().read_bytes()
    assert pdf.startswith(b"%PDF-")

    with live_server.http() as api:
        invoices = api.get(f"/api/v1/orgs/{tenant.org_id}/invoices", headers=tenant.headers)
        (invoice,) = invoices.json()["items"]
        same_pdf = api.get(f"/api/v1/invoices/{invoice['id']}/pdf", headers=tenant.headers)
        payments = api.get(f"/api/v1/orgs/{tenant.org_id}/payments", headers=tenant.headers)
    assert (invoice["status"], invoice["total"], invoice["amount_due"]) == ("paid", "29.00", "0.00")
    assert same_pdf.content == pdf  # the API's PDF of the same invoice, byte for byte
    assert [(p["status"], p["amount"]) for p in payments.json()["items"]] == [
        ("succeeded", "29.00")
    ]
    (charge,) = fake.charges()
    assert (charge["amount"], charge["payment_method"]) == (2900, "pm_card_visa")


def test_a_declined_card_is_said_and_nothing_is_paid(
    page: Any, live_server: LiveServer, factory: Factory, fake: FakeStripe
) -> None:
    tenant = factory.tenant()
    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/billing")
    page.get_by_role("button", name="Subscribe").click()
    # The answer replaces the page's forms: the card goes in once it has landed.
    expect(page.locator(".notice")).to_have_text("Subscribed to starter (monthly).")
    page.get_by_label("Payment method token").fill(DECLINING)
    page.get_by_role("button", name="Add payment method").click()
    expect(page.locator(".notice")).to_have_text("Added visa ending 9995.")
    page.get_by_role("button", name="Pay INV-2026-0001").click()
    expect(page.locator(".notice.bad")).to_have_text(
        "The payment of invoice INV-2026-0001 failed: Your card has insufficient funds."
    )
    expect(page.locator("#invoices tbody tr").first).to_contain_text("open")
    assert fake.charges() == []


def test_an_unknown_card_token_is_shown_beside_its_field(page: Any, factory: Factory) -> None:
    tenant = factory.tenant()
    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/billing")
    page.get_by_label("Payment method token").fill("pm_card_unknown")
    page.get_by_role("button", name="Add payment method").click()
    expect(page.locator("#f-token-error")).to_contain_text("pm_card_unknown")
    expect(page.locator("#methods-h + .empty .empty-title")).to_have_text("No payment method")
