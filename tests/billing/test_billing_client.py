"""The SDK's billing calls against the real app (local payment provider), sync and async."""

from __future__ import annotations

import asyncio
import io
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import Factory
from tenantry.client import AsyncClient, Client, Conflict, NotFound, ValidationFailed
from tenantry.client.billing import invoice_line

BASE = "http://testserver"


def test_the_sync_client_covers_every_billing_route(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant("Acme")
    api = Client(BASE, acme.token, http=client)
    org = acme.org_slug

    prices = Client(BASE, http=client).list_plans()  # no credentials needed
    assert [p.key for p in prices.plans] == ["free", "starter", "professional", "enterprise"]
    assert prices.overage_rates["compute_hours"] == "0.5"
    assert api.get_subscription(org).subscription is None

    change = api.subscribe(org, "starter", cycle="yearly")
    assert change.change == "created" and change.subscription.cycle == "yearly"
    assert change.invoice is not None and change.invoice.total == "290.00"
    first = change.invoice.id
    assert api.get_subscription(org).plan == "starter"
    [summary] = api.list_invoices(org).items
    assert (summary.id, summary.status, summary.amount_due) == (first, "open", "290.00")
    assert [x.id for x in api.iter_invoices(org, status="open")] == [first]
    assert api.list_invoices(org, status="paid").items == []

    declining = api.add_payment_method(org, "local_declines", brand="visa", last4="0002")
    assert declining.is_default and declining.last4 == "0002"
    failed = api.pay_invoice(first)
    assert not failed.succeeded and failed.payment.failure_code == "card_declined"
    assert failed.invoice.status == "open"
    card = api.add_payment_method(
        org, "tok_card", brand="mastercard", last4="4444", exp_month=4, exp_year=2030, default=True
    )
    assert [m.is_default for m in api.list_payment_methods(org).items] == [False, True]
    paid = api.pay_invoice(first, idempotency_key="pay-first-1")
    assert paid.succeeded and paid.invoice.status == "paid" and paid.invoice.amount_due == "0.00"
    assert paid.payment.payment_method_id == card.id
    # The same key replays the first answer instead of paying again.
    assert api.pay_invoice(first, idempotency_key="pay-first-1").payment.id == paid.payment.id
    with pytest.raises(Conflict):
        api.pay_invoice(first)
    assert [p.status for p in api.iter_payments(org)] == ["failed", "succeeded"]
    assert api.list_payments(org, limit=1).next_cursor is not None
    api.remove_payment_method(org, declining.id)
    assert [m.id for m in api.list_payment_methods(org).items] == [card.id]

    invoice = api.get_invoice(first)
    assert invoice.lines[0].kind == "base" and len(invoice.payments) == 2
    pdf = api.invoice_pdf(first)
    assert pdf.startswith(b"%PDF")
    sink = io.BytesIO()
    assert api.download_invoice_pdf(first, sink) == len(pdf) and sink.getvalue() == pdf
    assert invoice.number and invoice.number in api.invoice_html(first)

    account = api.set_tax_rate(org, Decimal("0.2"))
    assert account.tax_rate == "0.2" and api.get_billing_account(org).tax_rate == "0.2"
    with pytest.raises(ValidationFailed):
        api.set_tax_rate(org, "1.5")
    draft = api.create_invoice(
        org, [invoice_line("Workshop", "450", 2), invoice_line("Discount", "-100")], memo="Hi"
    )
    assert (draft.status, draft.number, draft.memo) == ("draft", None, "Hi")
    final = api.finalize_invoice(draft.id)
    assert (final.status, final.subtotal, final.tax, final.total) == (
        "open",
        "800.00",
        "160.00",
        "960.00",
    )
    note = api.credit_invoice(final.id, reason="Goodwill", amount=Decimal("100"))
    assert note.corrects_id == final.id
    assert api.mark_invoice_uncollectible(final.id).status == "uncollectible"
    other = api.create_invoice(org, [invoice_line("Oops", "5")], finalize=True)
    assert other.status == "open" and other.number
    assert api.void_invoice(other.id).status == "void"

    preview = api.upcoming_invoice(org)
    assert preview.org_id == acme.org_id and any(x.kind == "base" for x in preview.lines)
    later = api.cancel_subscription(org)
    assert later.change == "canceled" and later.subscription.cancel_at_period_end
    assert api.subscribe(org, "starter", cycle="yearly").change == "resumed"
    assert api.cancel_subscription(org, immediately=True).subscription.status == "canceled"
    assert api.get_subscription(org).plan == "free"


def test_another_orgs_invoice_is_not_found(client: TestClient, factory: Factory) -> None:
    acme, beta = factory.tenant("Acme"), factory.tenant("Beta")
    theirs = Client(BASE, beta.token, http=client).subscribe(beta.org_slug, "starter").invoice
    assert theirs is not None
    mine = Client(BASE, acme.token, http=client)
    for call in (mine.get_invoice, mine.invoice_pdf, mine.pay_invoice, mine.void_invoice):
        with pytest.raises(NotFound):
            call(theirs.id)


def test_the_async_client_has_the_same_billing_calls(
    app: FastAPI, client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant("Acme")
    org = acme.org_slug

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport) as http,
            AsyncClient(BASE, acme.token, http=http) as api,
        ):
            assert len((await api.list_plans()).plans) == 4
            change = await api.subscribe(org, "professional")
            assert change.invoice is not None and change.invoice.total == "99.00"
            invoice_id = change.invoice.id
            assert [x.id async for x in api.iter_invoices(org)] == [invoice_id]
            await api.add_payment_method(org, "tok_async", brand="visa", last4="4242")
            paid = await api.pay_invoice(invoice_id)
            assert paid.succeeded and paid.payment.amount == "99.00"
            assert [p.status async for p in api.iter_payments(org)] == ["succeeded"]
            assert (await api.invoice_pdf(invoice_id)).startswith(b"%PDF")
            sink = io.BytesIO()
            assert await api.download_invoice_pdf(invoice_id, sink) > 0
            assert sink.getvalue().startswith(b"%PDF")
            assert (await api.get_invoice(invoice_id)).status == "paid"
            assert (await api.set_tax_rate(org, "0.1")).tax_rate == "0.1"
            preview = await api.upcoming_invoice(org)
            assert preview.tax_rate == "0.1"
            draft = await api.create_invoice(org, [invoice_line("Setup", "50")])
            assert (await api.finalize_invoice(draft.id)).number
            canceled = await api.cancel_subscription(org, immediately=True)
            assert canceled.subscription.status == "canceled"
            with pytest.raises(NotFound):
                await api.get_invoice("inv_missing")

    asyncio.run(scenario())
