"""Printable documents of an invoice or credit note: a self-contained HTML page and a PDF.

Both are drawn from one `Document` (every figure and date already formatted), so the page and
the PDF cannot disagree about what an invoice says.

The HTML is rendered by Jinja2 with autoescaping on: org names, line descriptions and memos are
user input. The PDF is drawn with fpdf2's built-in Helvetica, which every PDF reader has, so
nothing depends on a font file being installed. Those fonts only know the Windows-1252 (Western
European) characters, so the PDF shows other text through `pdf_text`: a letter with an accent
that Windows-1252 lacks loses the accent ("ő" -> "o"), a few letters without a decomposition
get their usual Latin spelling ("Ł" -> "L"), and anything else is shown as "?". The org's id is
printed beside its name so a bill-to of question marks is still traceable; the HTML page always
shows the original text.

The PDF's dates (creation date, file id) come from the invoice, so one invoice gives the same
bytes every time and can be cached under an ETag.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from fpdf import FPDF, FontFace
from fpdf.enums import Align, TableBordersLayout, XPos, YPos
from jinja2 import Environment, StrictUndefined

from tenantry.billing.models import Invoice, InvoiceLine, InvoiceStatus
from tenantry.kit.clock import as_utc
from tenantry.kit.money import MINOR_EXPONENT, format_money, from_minor, plain

if TYPE_CHECKING:
    from tenantry.billing.invoices import InvoiceView

SELLER: Final = "Tenantry"
SELLER_LINE: Final = "Issued by this Tenantry deployment"

STATUS_LABELS: Final[dict[str, str]] = {
    InvoiceStatus.DRAFT: "Draft",
    InvoiceStatus.OPEN: "Open",
    InvoiceStatus.PAID: "Paid",
    InvoiceStatus.VOID: "Void",
    InvoiceStatus.UNCOLLECTIBLE: "Uncollectible",
    InvoiceStatus.ISSUED: "Issued",
}


# ---- the document both renderings draw ----


@dataclass(frozen=True)
class DocumentLine:
    description: str
    period: str | None
    quantity: str
    unit_price: str
    amount: str


@dataclass(frozen=True)
class Document:
    title: str  # Invoice | Credit note
    number: str  # "Draft" until finalized
    status: str
    org_name: str
    org_id: str
    invoice_id: str
    facts: list[tuple[str, str]]  # label, value: dates, period, currency, what it corrects
    lines: list[DocumentLine]
    totals: list[tuple[str, str]]  # label, value; the last row is what the reader looks for
    memo: str | None


def document(view: InvoiceView) -> Document:
    invoice = view.invoice
    currency = invoice.currency
    is_credit_note = invoice.kind == "credit_note"

    def money(minor: int) -> str:
        return format_money(from_minor(minor, currency), currency)

    totals = [
        ("Subtotal", money(invoice.subtotal)),
        (f"Tax ({percent(invoice.tax_rate)})", money(invoice.tax)),
        ("Total", money(invoice.total)),
    ]
    # A credit note is never paid or due: its total is what it takes back.
    if not is_credit_note:
        totals += [
            ("Amount paid", money(invoice.amount_paid)),
            ("Amount due", money(view.amount_due)),
        ]
    return Document(
        title="Credit note" if is_credit_note else "Invoice",
        number=invoice.number or "Draft",
        status=STATUS_LABELS.get(invoice.status, invoice.status.replace("_", " ").capitalize()),
        org_name=view.org_name,
        org_id=invoice.org_id,
        invoice_id=invoice.id,
        facts=_facts(invoice),
        lines=[_line(x, currency) for x in sorted(view.lines, key=lambda x: x.position)],
        totals=totals,
        memo=invoice.memo or None,
    )


def _facts(invoice: Invoice) -> list[tuple[str, str]]:
    facts: list[tuple[str, str]] = []
    if invoice.finalized_at is not None:
        facts.append(("Issued", day(invoice.finalized_at)))
    else:
        facts.append(("Created", day(invoice.created_at)))
    if invoice.due_at is not None:
        facts.append(("Due", day(invoice.due_at)))
    if invoice.paid_at is not None:
        facts.append(("Paid", day(invoice.paid_at)))
    if invoice.voided_at is not None:
        facts.append(("Voided", day(invoice.voided_at)))
    if invoice.period_start is not None and invoice.period_end is not None:
        facts.append(("Period", period(invoice.period_start, invoice.period_end)))
    facts.append(("Currency", invoice.currency.upper()))
    if invoice.corrects_id is not None:
        facts.append(("Corrects invoice", invoice.corrects_id))
    return facts


def _line(row: InvoiceLine, currency: str) -> DocumentLine:
    return DocumentLine(
        description=row.description,
        period=(
            period(row.period_start, row.period_end)
            if row.period_start is not None and row.period_end is not None
            else None
        ),
        quantity=quantity(row.quantity),
        unit_price=unit_price(row.unit_price, currency),
        amount=format_money(from_minor(row.amount, currency), currency),
    )


# ---- formatting ----


def day(moment: datetime) -> str:
    # ISO dates: unambiguous to every reader and independent of the server's locale.
    return as_utc(moment).date().isoformat()


def period(start: datetime, end: datetime) -> str:
    """A period [start, end): periods begin on the hour they were started, so the hour is shown
    unless both ends are midnight."""
    start, end = as_utc(start), as_utc(end)
    if start.time() == time(0) and end.time() == time(0):
        return f"{start.date().isoformat()} to {end.date().isoformat()}"
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"


def percent(rate: Decimal) -> str:
    """A tax rate kept as a fraction (0.0825) as a percentage (8.25%)."""
    return f"{plain(rate * 100)}%"


def quantity(value: Decimal) -> str:
    return plain(value, grouped=True)


def unit_price(value: Decimal, currency: str) -> str:
    """A unit price keeps all its digits (usage is priced in fractions of a cent, $0.00002 a
    token); only the line amounts are rounded."""
    exponent = MINOR_EXPONENT[currency.lower()]
    if -_plain_exponent(value) <= exponent:
        return format_money(value, currency)
    sign = "-" if value < 0 else ""
    digits = plain(abs(value), grouped=True)
    if currency.lower() == "usd":
        return f"{sign}${digits}"
    return f"{sign}{digits} {currency.upper()}"


def _plain_exponent(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return exponent if isinstance(exponent, int) else 0


# ---- HTML ----

_TEMPLATE: Final = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ doc.title }} {{ doc.number }} · {{ seller }}</title>
<style>
  @page { size: A4; margin: 15mm; }
  * { box-sizing: border-box; }
  body { margin: 0; padding: 24px; color: #1f2328; background: #fff;
         font: 14px/1.45 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
  .sheet { max-width: 800px; margin: 0 auto; }
  header { display: flex; justify-content: space-between; align-items: flex-start;
           border-bottom: 2px solid #1f2328; padding-bottom: 12px; margin-bottom: 20px; }
  .seller { font-size: 22px; font-weight: 700; }
  .muted { color: #59636e; font-size: 12px; }
  .doc { text-align: right; }
  .doc h1 { margin: 0; font-size: 20px; text-transform: uppercase; letter-spacing: .04em; }
  .number { font-size: 16px; font-weight: 600; }
  .status { display: inline-block; margin-top: 4px; padding: 1px 8px; border-radius: 10px;
            border: 1px solid #59636e; font-size: 12px; }
  .parties { display: flex; justify-content: space-between; gap: 24px; margin-bottom: 20px; }
  .label { color: #59636e; font-size: 11px; text-transform: uppercase; letter-spacing: .06em; }
  .org { font-size: 16px; font-weight: 600; overflow-wrap: anywhere; }
  dl.facts { display: grid; grid-template-columns: auto auto; gap: 2px 16px; margin: 0; }
  dl.facts dt { color: #59636e; }
  dl.facts dd { margin: 0; text-align: right; }
  table { width: 100%; border-collapse: collapse; }
  th, td { padding: 6px 8px; border-bottom: 1px solid #d1d9e0; vertical-align: top; }
  th { text-align: left; font-size: 12px; color: #59636e; border-bottom: 2px solid #1f2328; }
  .num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
  .desc { overflow-wrap: anywhere; }
  .line-period { color: #59636e; font-size: 12px; }
  table.totals { width: auto; margin: 12px 0 0 auto; min-width: 280px; }
  table.totals th { color: #1f2328; font-size: 14px; font-weight: 400; border-bottom: 0; }
  table.totals td { border-bottom: 0; }
  table.totals tr:last-child th, table.totals tr:last-child td {
    font-weight: 700; border-top: 2px solid #1f2328; }
  .memo { margin-top: 24px; white-space: pre-wrap; overflow-wrap: anywhere; }
  footer { margin-top: 32px; }
  @media print { body { padding: 0; } }
</style>
</head>
<body>
<div class="sheet">
  <header>
    <div>
      <div class="seller">{{ seller }}</div>
      <div class="muted">{{ seller_line }}</div>
    </div>
    <div class="doc">
      <h1>{{ doc.title }}</h1>
      <div class="number">{{ doc.number }}</div>
      <div class="status">{{ doc.status }}</div>
    </div>
  </header>
  <section class="parties">
    <div>
      <div class="label">Bill to</div>
      <div class="org">{{ doc.org_name }}</div>
      <div class="muted">{{ doc.org_id }}</div>
    </div>
    <dl class="facts">
      {%- for label, value in doc.facts %}
      <dt>{{ label }}</dt><dd>{{ value }}</dd>
      {%- endfor %}
    </dl>
  </section>
  <table class="lines">
    <thead>
      <tr><th>Description</th><th class="num">Quantity</th><th class="num">Unit price</th>
        <th class="num">Amount</th></tr>
    </thead>
    <tbody>
      {%- for line in doc.lines %}
      <tr>
        <td class="desc">{{ line.description }}
          {%- if line.period %}<div class="line-period">{{ line.period }}</div>{% endif %}</td>
        <td class="num">{{ line.quantity }}</td>
        <td class="num">{{ line.unit_price }}</td>
        <td class="num">{{ line.amount }}</td>
      </tr>
      {%- else %}
      <tr><td colspan="4" class="muted">No lines</td></tr>
      {%- endfor %}
    </tbody>
  </table>
  <table class="totals">
    {%- for label, value in doc.totals %}
    <tr><th scope="row">{{ label }}</th><td class="num">{{ value }}</td></tr>
    {%- endfor %}
  </table>
  {%- if doc.memo %}
  <section class="memo"><div class="label">Memo</div>{{ doc.memo }}</section>
  {%- endif %}
  <footer class="muted">{{ doc.title }} {{ doc.invoice_id }} · {{ seller_line }}</footer>
</div>
</body>
</html>
"""

# autoescape=True, not select_autoescape(): the latter decides by file name, and a template
# made from a string has none, so it would leave user input unescaped.
_ENVIRONMENT: Final = Environment(
    autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True
)
_HTML: Final = _ENVIRONMENT.from_string(_TEMPLATE)


def invoice_html(view: InvoiceView) -> str:
    """The invoice or credit note as one printable HTML page (inline CSS, no external assets)."""
    return _HTML.render(doc=document(view), seller=SELLER, seller_line=SELLER_LINE)


# ---- PDF ----

PDF_ENCODING: Final = "windows-1252"
# Letters that have no Unicode decomposition to a Latin base letter, spelled as they usually
# are in Latin text.
_LATIN_SPELLINGS: Final[dict[str, str]] = {
    "Ł": "L",
    "ł": "l",
    "Đ": "D",
    "đ": "d",
    "Ħ": "H",
    "ħ": "h",
    "\N{LATIN SMALL LETTER DOTLESS I}": "i",
    "ŀ": "l",
    "Ŀ": "L",
    "ŧ": "t",
    "Ŧ": "T",
}
REPLACEMENT: Final = "?"


def pdf_text(text: str) -> str:
    """`text` with every character the PDF's built-in fonts cannot show replaced (see the
    module's docstring); text they can show is returned unchanged."""
    return "".join(_pdf_char(c) for c in text)


def _pdf_char(char: str) -> str:
    if _encodable(char):
        return char
    if char in _LATIN_SPELLINGS:
        return _LATIN_SPELLINGS[char]
    # NFKD splits "ő" into "o" + a combining accent and folds compatibility forms (full-width
    # letters, ligatures) to plain letters; the accents that cannot be shown are dropped.
    kept = "".join(
        c
        for c in unicodedata.normalize("NFKD", char)
        if not unicodedata.combining(c) and _encodable(c)
    )
    return kept or REPLACEMENT


def _encodable(char: str) -> bool:
    try:
        char.encode(PDF_ENCODING)
    except UnicodeEncodeError:
        return False
    # Control characters encode but draw nothing useful; a newline is laid out by the caller.
    return char == "\n" or unicodedata.category(char) != "Cc"


class _InvoicePDF(FPDF):
    def __init__(self, doc: Document) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.doc = doc

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("helvetica", size=8)
        self.set_text_color(89, 99, 110)
        left = pdf_text(f"{self.doc.title} {self.doc.number} - {SELLER_LINE}")
        self.cell(0, 5, left, align=Align.L)
        self.set_x(self.l_margin)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align=Align.R)


def invoice_pdf(view: InvoiceView) -> bytes:
    """The invoice or credit note as an A4 PDF; the same invoice gives the same bytes."""
    doc = document(view)
    invoice = view.invoice
    pdf = _InvoicePDF(doc)
    pdf.core_fonts_encoding = PDF_ENCODING
    # The creation date is also hashed into the file id: from the invoice, not the clock.
    pdf.set_creation_date(as_utc(invoice.finalized_at or invoice.created_at).astimezone(UTC))
    pdf.set_title(pdf_text(f"{doc.title} {doc.number}"))
    pdf.set_author(SELLER)
    pdf.set_subject(pdf_text(f"{doc.title} for {doc.org_name}"))
    pdf.set_creator(SELLER)
    pdf.set_producer(SELLER)
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()

    _draw_header(pdf, doc)
    _draw_parties(pdf, doc)
    _draw_lines(pdf, doc)
    _draw_totals(pdf, doc)
    if doc.memo:
        pdf.ln(6)
        pdf.set_font("helvetica", "B", 9)
        pdf.cell(0, 5, "Memo", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("helvetica", size=10)
        pdf.multi_cell(0, 5, pdf_text(doc.memo), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())


def _draw_header(pdf: FPDF, doc: Document) -> None:
    top = pdf.get_y()
    pdf.set_font("helvetica", "B", 20)
    pdf.cell(90, 9, SELLER, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", size=9)
    pdf.set_text_color(89, 99, 110)
    pdf.cell(90, 5, SELLER_LINE, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0)

    pdf.set_y(top)
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(0, 8, doc.title.upper(), align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", "B", 12)
    pdf.cell(0, 6, pdf_text(doc.number), align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", size=10)
    pdf.cell(0, 5, pdf_text(doc.status), align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pdf.ln(3)
    pdf.set_line_width(0.5)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
    pdf.set_line_width(0.2)
    pdf.ln(5)


def _draw_parties(pdf: FPDF, doc: Document) -> None:
    top = pdf.get_y()
    pdf.set_font("helvetica", "B", 8)
    pdf.set_text_color(89, 99, 110)
    pdf.cell(75, 5, "BILL TO", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0)
    pdf.set_font("helvetica", "B", 12)
    pdf.multi_cell(75, 6, pdf_text(doc.org_name), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", size=9)
    pdf.set_text_color(89, 99, 110)
    pdf.cell(75, 5, pdf_text(doc.org_id), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0)
    left_bottom = pdf.get_y()

    pdf.set_y(top)
    # 28 + 72 mm: wide enough for a period given to the hour at this size.
    label_width, value_width = 28.0, 72.0
    label_x = pdf.w - pdf.r_margin - label_width - value_width
    for label, value in doc.facts:
        pdf.set_x(label_x)
        pdf.set_font("helvetica", size=9)
        pdf.set_text_color(89, 99, 110)
        pdf.cell(label_width, 5, pdf_text(label))
        pdf.set_text_color(0)
        pdf.multi_cell(
            value_width, 5, pdf_text(value), align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
    pdf.set_y(max(left_bottom, pdf.get_y()) + 6)


def _draw_lines(pdf: FPDF, doc: Document) -> None:
    pdf.set_font("helvetica", size=10)
    grey = (89, 99, 110)
    with pdf.table(
        col_widths=(95, 25, 30, 30),
        text_align=(Align.L, Align.R, Align.R, Align.R),
        borders_layout=TableBordersLayout.HORIZONTAL_LINES,
        headings_style=FontFace(emphasis="BOLD", color=grey),
        line_height=5.5,
        padding=(1.5, 1.5),
        width=pdf.epw,
    ) as table:
        table.row(["Description", "Quantity", "Unit price", "Amount"])
        for line in doc.lines:
            description = line.description
            if line.period:
                description += f"\n{line.period}"
            table.row(
                [pdf_text(description), line.quantity, pdf_text(line.unit_price), line.amount]
            )
        if not doc.lines:
            table.row(["No lines", "", "", ""])


def _draw_totals(pdf: FPDF, doc: Document) -> None:
    pdf.ln(3)
    row_height = 6.5
    # The totals stay together: a total alone at the top of a page reads as a different bill.
    if pdf.get_y() + row_height * len(doc.totals) > pdf.page_break_trigger:
        pdf.add_page()
    label_width, value_width = 45.0, 35.0
    x = pdf.w - pdf.r_margin - label_width - value_width
    last = len(doc.totals) - 1
    for index, (label, value) in enumerate(doc.totals):
        if index == last:
            pdf.set_line_width(0.5)
            pdf.line(x, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
            pdf.set_line_width(0.2)
            pdf.set_font("helvetica", "B", 11)
        else:
            pdf.set_font("helvetica", size=10)
        pdf.set_x(x)
        pdf.cell(label_width, row_height, pdf_text(label))
        pdf.cell(
            value_width,
            row_height,
            pdf_text(value),
            align=Align.R,
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
