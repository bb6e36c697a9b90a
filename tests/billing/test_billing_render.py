"""The printable invoice: HTML and PDF drawn from in-memory invoices (no database), the PDF read
back with pypdf."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from pypdf import PdfReader

from tenantry.billing import render
from tenantry.billing.invoices import InvoiceView
from tenantry.billing.models import Invoice, InvoiceLine, PaymentAttempt

ISSUED = datetime(2026, 3, 1, 14, tzinfo=UTC)
PERIOD_END = datetime(2026, 4, 1, 14, tzinfo=UTC)
DUE = datetime(2026, 3, 31, 14, tzinfo=UTC)


def make_invoice(**fields: Any) -> Invoice:
    values: dict[str, Any] = {
        "id": "in_01render",
        "org_id": "org_01render",
        "number": "INV-2026-0007",
        "kind": "subscription",
        "status": "open",
        "period_key": "sub_01render:2026-03-01T14:00:00+00:00",
        "period_start": ISSUED,
        "period_end": PERIOD_END,
        "currency": "usd",
        "tax_rate": Decimal("0.0825"),
        "subtotal": 4450,
        "tax": 367,
        "total": 4817,
        "amount_paid": 1000,
        "memo": "Thank you for your business",
        "corrects_id": None,
        "created_at": ISSUED,
        "finalized_at": ISSUED,
        "due_at": DUE,
        "paid_at": None,
        "voided_at": None,
        "next_attempt_at": None,
        "attempt_count": 1,
        "provider_invoice_id": None,
    }
    values.update(fields)
    return Invoice(**values)


def make_line(position: int, description: str, **fields: Any) -> InvoiceLine:
    values: dict[str, Any] = {
        "id": f"il_01render{position}",
        "org_id": "org_01render",
        "invoice_id": "in_01render",
        "position": position,
        "kind": "base",
        "description": description,
        "meter": None,
        "quantity": Decimal(1),
        "unit_price": Decimal("29.00"),
        "exact": Decimal("29.00"),
        "amount": 2900,
        "period_start": None,
        "period_end": None,
        "created_at": ISSUED,
    }
    values.update(fields)
    return InvoiceLine(**values)


def make_attempt(**fields: Any) -> PaymentAttempt:
    values: dict[str, Any] = {
        "id": "pay_01render",
        "org_id": "org_01render",
        "invoice_id": "in_01render",
        "attempt": 1,
        "payment_method_id": "pm_01render",
        "amount": 1000,
        "currency": "usd",
        "status": "succeeded",
        "idempotency_key": "in_01render:1",
        "provider": "local",
        "provider_payment_id": "lp_1",
        "failure_code": None,
        "failure_message": None,
        "created_at": ISSUED,
        "completed_at": ISSUED,
    }
    values.update(fields)
    return PaymentAttempt(**values)


def invoice_view(org_name: str = "Acme Research", **fields: Any) -> InvoiceView:
    invoice = make_invoice(**fields)
    # Given out of order: the documents list lines by position.
    lines = [
        make_line(
            2,
            "Tokens beyond the 1,000,000 included",
            kind="overage",
            meter="tokens",
            quantity=Decimal(775000),
            unit_price=Decimal("0.00002"),
            exact=Decimal("15.50"),
            amount=1550,
        ),
        make_line(1, "Pro plan (monthly)", period_start=ISSUED, period_end=PERIOD_END),
    ]
    due = invoice.total - invoice.amount_paid
    return InvoiceView(invoice, lines, [make_attempt()], due, org_name)


def credit_note_view() -> InvoiceView:
    note = make_invoice(
        id="in_01credit",
        number="CN-2026-0002",
        kind="credit_note",
        status="issued",
        period_key=None,
        period_start=None,
        period_end=None,
        tax_rate=Decimal(0),
        subtotal=-2900,
        tax=0,
        total=-2900,
        amount_paid=0,
        memo="Service outage on 2026-03-04",
        corrects_id="in_01render",
        due_at=None,
        attempt_count=0,
    )
    line = make_line(
        1,
        "Credit for INV-2026-0007: outage",
        kind="credit",
        invoice_id="in_01credit",
        quantity=Decimal(-1),
        exact=Decimal("-29.00"),
        amount=-2900,
    )
    return InvoiceView(note, [line], [], 0, "Acme Research")


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


class _Parser(HTMLParser):
    """Collects the document's text and every URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.urls: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(html: str) -> _Parser:
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser


# ---- PDF ----


def test_pdf_shows_number_org_lines_and_totals() -> None:
    pdf = render.invoice_pdf(invoice_view())

    assert pdf.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)  # A4 in points
    text = pdf_text(pdf)
    for expected in (
        "Tenantry",
        "Issued by this Tenantry deployment",
        "INVOICE",
        "INV-2026-0007",
        "Open",
        "Acme Research",
        "org_01render",
        "Pro plan (monthly)",
        "$29.00",
        "Tokens beyond the 1,000,000 included",
        "775,000",
        "$0.00002",  # a unit price keeps its fraction of a cent
        "$15.50",
        "Subtotal",
        "$44.50",
        "Tax (8.25%)",
        "$3.67",
        "Total",
        "$48.17",
        "Amount paid",
        "$10.00",
        "Amount due",
        "$38.17",
        "Issued",
        "2026-03-01",
        "Due",
        "2026-03-31",
        "2026-03-01 14:00 to 2026-04-01 14:00 UTC",
        "USD",
        "Thank you for your business",
    ):
        assert expected in text, expected
    # Lines in their positions, whatever order they were given in.
    assert text.index("Pro plan (monthly)") < text.index("Tokens beyond")
    assert reader.metadata is not None
    assert reader.metadata.title == "Invoice INV-2026-0007"


def test_same_invoice_gives_the_same_pdf_bytes() -> None:
    first = render.invoice_pdf(invoice_view())
    second = render.invoice_pdf(invoice_view())

    assert first == second
    reader = PdfReader(io.BytesIO(first))
    assert reader.metadata is not None
    assert reader.metadata.creation_date == ISSUED  # from the invoice, not the clock
    # And the bytes do follow the invoice: another status is another document.
    assert render.invoice_pdf(invoice_view(status="paid", amount_paid=4817)) != first


def test_pdf_of_many_lines_runs_over_pages_and_keeps_every_line() -> None:
    lines = [
        make_line(n, f"Seat for member {n:03d}", amount=100 * n, unit_price=Decimal(n))
        for n in range(1, 91)
    ]
    view = replace(invoice_view(), lines=lines)

    pdf = render.invoice_pdf(view)

    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 2
    text = pdf_text(pdf)
    for n in range(1, 91):
        assert f"Seat for member {n:03d}" in text
    assert f"Page 2 of {len(reader.pages)}" in text
    assert "$48.17" in text


def test_pdf_keeps_the_totals_on_one_page() -> None:
    # Around 22 lines the table ends near the foot of the first page: every count there must
    # still show Subtotal and Amount due on the same page.
    for count in range(18, 28):
        lines = [make_line(n, f"Seat {n:03d}", amount=100 * n) for n in range(1, count + 1)]
        pdf = render.invoice_pdf(replace(invoice_view(), lines=lines))
        pages = [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]
        subtotal = [i for i, text in enumerate(pages) if "Subtotal" in text]
        due = [i for i, text in enumerate(pages) if "Amount due" in text]
        assert subtotal == due, count


# ---- HTML ----


def test_html_is_a_self_contained_page_with_the_same_content() -> None:
    html = render.invoice_html(invoice_view())

    assert html.startswith("<!DOCTYPE html>")
    page = parsed(html)
    assert page.urls == []  # no external assets: styles are inline, there are no images
    assert "link" not in page.tags
    assert "script" not in page.tags
    assert "<style>" in html
    assert "@page { size: A4" in html
    text = " ".join(" ".join(page.text).split())
    for expected in (
        "Tenantry",
        "Issued by this Tenantry deployment",
        "Bill to",
        "Acme Research",
        "INV-2026-0007",
        "Open",
        "Pro plan (monthly)",
        "Tokens beyond the 1,000,000 included",
        "775,000",
        "$0.00002",
        "$15.50",
        "Subtotal $44.50",
        "Tax (8.25%) $3.67",
        "Total $48.17",
        "Amount paid $10.00",
        "Amount due $38.17",
        "Issued 2026-03-01",
        "Due 2026-03-31",
        "Period 2026-03-01 14:00 to 2026-04-01 14:00 UTC",
        "Currency USD",
        "Thank you for your business",
    ):
        assert expected in text, expected


def test_html_escapes_user_input() -> None:
    view = invoice_view(
        org_name='<script>alert("org")</script> & Co',
        memo="<img src=x onerror=alert(1)>",
    )
    view.lines[0].description = "<b>bold</b> tokens"

    html = render.invoice_html(view)

    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;org&#34;)&lt;/script&gt; &amp; Co" in html
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>bold</b>" not in html
    assert "&lt;b&gt;bold&lt;/b&gt; tokens" in html
    page = parsed(html)
    assert page.urls == []
    assert "script" not in page.tags
    # The PDF shows the same text literally.
    assert '<script>alert("org")</script> & Co' in pdf_text(render.invoice_pdf(view))


# ---- kinds and states ----


def test_credit_note_names_the_invoice_it_corrects() -> None:
    view = credit_note_view()

    html = render.invoice_html(view)
    pdf = render.invoice_pdf(view)

    text = pdf_text(pdf)
    for expected in (
        "CREDIT NOTE",
        "CN-2026-0002",
        "Issued",
        "Corrects invoice",
        "in_01render",
        "Credit for INV-2026-0007: outage",
        "-1",
        "-$29.00",
        "Tax (0%)",
        "Service outage on 2026-03-04",
    ):
        assert expected in text, expected
        assert expected.replace("CREDIT NOTE", "Credit note") in html, expected
    # A credit note is neither paid nor due.
    assert "Amount due" not in text
    assert "Amount due" not in html
    assert "Total -$29.00" in " ".join(" ".join(parsed(html).text).split())


def test_draft_has_no_number_yet() -> None:
    created = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    view = replace(
        invoice_view(
            number=None,
            status="draft",
            created_at=created,
            finalized_at=None,
            due_at=None,
            amount_paid=0,
        ),
        amount_due=0,
    )

    html = render.invoice_html(view)
    pdf = render.invoice_pdf(view)

    text = pdf_text(pdf)
    assert "INV-" not in text
    assert "Draft" in text
    assert "Created" in text
    assert "2026-03-02" in text
    assert "Due" not in text.replace("Amount due", "")
    assert "<title>Invoice Draft" in html
    assert '<div class="number">Draft</div>' in html
    reader = PdfReader(io.BytesIO(pdf))
    assert reader.metadata is not None
    assert reader.metadata.creation_date == created
    assert render.invoice_pdf(view) == pdf


def test_other_currency_and_dates_at_midnight() -> None:
    midnight = datetime(2026, 3, 1, tzinfo=UTC)
    view = invoice_view(
        currency="eur",
        period_start=midnight,
        period_end=datetime(2026, 4, 1, tzinfo=UTC),
        tax_rate=Decimal("0.2"),
    )

    text = pdf_text(render.invoice_pdf(view))

    assert "2026-03-01 to 2026-04-01" in text
    assert "Tax (20%)" in text
    assert "48.17 EUR" in text
    assert "0.00002 EUR" in text
    assert "EUR" in text


# ---- text the PDF fonts cannot show ----


def test_non_latin1_names_and_descriptions_render_with_replacements() -> None:
    view = invoice_view(
        org_name="Łódź 株式会社 \N{ROCKET}",
        memo="Παρακαλώ πληρώστε",
    )
    view.lines[0].description = "Tokens \N{EM DASH} Ελληνικά \N{EURO SIGN}5 plan"

    pdf = render.invoice_pdf(view)
    html = render.invoice_html(view)

    text = pdf_text(pdf)
    assert "Lódz ???? ?" in text
    assert "Tokens \N{EM DASH} ???????? \N{EURO SIGN}5 plan" in text
    # The number, the figures and the rest of the invoice are untouched.
    assert "INV-2026-0007" in text
    assert "$48.17" in text
    assert "org_01render" in text  # so a bill-to of question marks is still traceable
    # The HTML page keeps the original text.
    assert "Łódź 株式会社 \N{ROCKET}" in html
    assert "Παρακαλώ πληρώστε" in html


WINDOWS_1252 = (
    "\N{EURO SIGN} \N{EM DASH} \N{LEFT DOUBLE QUOTATION MARK}x\N{RIGHT DOUBLE QUOTATION MARK}"
)


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("Acme GmbH & Söhne", "Acme GmbH & Söhne"),  # Latin-1 as it is
        (WINDOWS_1252, WINDOWS_1252),  # beyond Latin-1, but the fonts have them
        ("Győr Kft.", "Gyor Kft."),  # an accent Windows-1252 lacks is dropped
        ("Łukasz Đorđević", "Lukasz Dordevic"),  # letters without a decomposition
        ("\N{LATIN SMALL LIGATURE FI}rm \N{FULLWIDTH LATIN CAPITAL LETTER A}", "firm A"),
        ("日本", "??"),
        ("a\N{ROCKET}b", "a?b"),
        ("line\none", "line\none"),
        ("tab\x00stop", "tab?stop"),
    ],
)
def test_pdf_text_replacement(given: str, shown: str) -> None:
    assert render.pdf_text(given) == shown


# ---- formatting ----


@pytest.mark.parametrize(
    ("rate", "shown"),
    [
        (Decimal(0), "0%"),
        (Decimal("0.2"), "20%"),
        (Decimal("0.0825"), "8.25%"),
        (Decimal("0.19000"), "19%"),
    ],
)
def test_tax_rate_as_percentage(rate: Decimal, shown: str) -> None:
    assert render.percent(rate) == shown


def test_quantities_and_unit_prices() -> None:
    assert render.quantity(Decimal("1500.000")) == "1,500"
    assert render.quantity(Decimal("0.5")) == "0.5"
    assert render.quantity(Decimal(-1)) == "-1"
    assert render.unit_price(Decimal(29), "usd") == "$29.00"
    assert render.unit_price(Decimal("1234.5"), "usd") == "$1,234.50"
    assert render.unit_price(Decimal("0.000015"), "usd") == "$0.000015"
    assert render.unit_price(Decimal("-0.005"), "usd") == "-$0.005"
    assert render.unit_price(Decimal(300), "jpy") == "300 JPY"
    assert render.unit_price(Decimal("0.5"), "jpy") == "0.5 JPY"
