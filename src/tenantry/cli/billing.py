"""`tenantry billing ...`: plans and prices, an org's subscription, invoices, payment methods,
payments and tax.

`usage-cost` is the one billing command that needs no server: it rates the usage it is given
with `tenantry.billing.rating`, the same pure functions the server invoices with, against the
standard overage rates or a plan of the catalog shipped with this version.

That server-side code (the rating, the plan catalog, money formatting) and Rich are imported by
the functions that use them, never at the top: every `tenantry` command imports this module to
build its help, and should not pay for them (see "Start-up" in docs/cli.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from tenantry.cli import config, connection, values
from tenantry.cli.output import (
    EXIT_PAYMENT_FAILED,
    CliError,
    JsonFlag,
    console,
    done,
    plain,
    print_json,
    print_table,
    show,
)

if TYPE_CHECKING:
    from tenantry.billing.rating import BillingPeriod, Line
    from tenantry.client.billing import (
        Invoice,
        InvoiceLine,
        InvoicePreview,
        InvoiceSummary,
        OrgSubscription,
        Payment,
        PaymentMethod,
        PaymentResult,
        PlanPrice,
        PriceList,
        Subscription,
        SubscriptionChange,
    )

app = typer.Typer(
    no_args_is_help=True,
    help="Plans and prices, subscriptions, invoices, payment methods and payments.",
)
invoice_app = typer.Typer(no_args_is_help=True, help="One invoice: show, create, change, credit.")
method_app = typer.Typer(no_args_is_help=True, help="An organization's payment methods.")
app.add_typer(invoice_app, name="invoice")
app.add_typer(method_app, name="payment-method")

OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]
InvoiceArg = Annotated[
    str, typer.Argument(metavar="ID", help="The invoice's id (in_…).", show_default=False)
]
InvoiceStatusOpt = Literal["draft", "open", "paid", "void", "uncollectible", "issued"]

QUOTA_LABELS = {
    "models": "Models",
    "experiments": "Experiments",
    "storage_gb": "Storage, GB",
    "compute_hours": "Compute hours",
    "team_members": "Team members",
    "api_calls": "API calls",
    "concurrent_runs": "Concurrent runs",
}
OVERAGE_UNITS = {
    "compute_hours": "compute hour",
    "storage_gb": "storage GB-month",
    "api_calls": "API call",
}


# ---- how figures read ----


def _money(amount: str | Decimal, currency: str) -> str:
    from tenantry.kit.money import format_money  # the server's own formatting, pure code

    return format_money(Decimal(amount), currency)


def _price(value: str | Decimal, currency: str) -> str:
    """A unit price with all its digits and at least the cents ($0.50, $0.00001): rounding it
    to the cent would show the API-calls rate as $0.00."""
    price = Decimal(value)
    decimals = max(2, -int(price.normalize().as_tuple().exponent))
    digits = f"{abs(price):,.{decimals}f}"
    sign = "-" if price < 0 else ""
    return f"{sign}${digits}" if currency.lower() == "usd" else f"{sign}{digits} {currency.upper()}"


def _quantity(value: str | Decimal) -> str:
    text = f"{Decimal(value).normalize():,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _percent(rate: str | Decimal) -> str:
    return f"{_quantity(Decimal(rate) * 100)}%"


def _day(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d")


def _span(start: datetime | None, end: datetime | None) -> str:
    return "-" if start is None or end is None else f"{_day(start)} to {_day(end)}"


def _facts(pairs: Sequence[tuple[str, str]]) -> None:
    """`name  value` lines, like `print_record`, for values this module formats itself."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for name, value in pairs:
        grid.add_row(name, value)
    console().print(grid)


def _decimal(text: str, *, option: str, minimum: Decimal | None = None) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise CliError(f"{option}: expected a number, not {text!r}") from None
    if not value.is_finite() or (minimum is not None and value < minimum):
        floor = "" if minimum is None else f" of at least {minimum}"
        raise CliError(f"{option}: expected a number{floor}, not {text!r}")
    return value


def _line_rows(lines: Sequence[InvoiceLine | Line], currency: str, *, empty: str) -> None:
    """Invoice lines from the server, or lines rated here: both have the same four figures."""
    if not lines:
        typer.echo(empty)
        return
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    table.add_column("DESCRIPTION", overflow="fold")
    for title in ("QUANTITY", "UNIT PRICE", "AMOUNT"):
        table.add_column(title, justify="right")
    for x in lines:
        table.add_row(
            x.description,
            _quantity(x.quantity),
            _price(x.unit_price, currency),
            _money(x.amount, currency),
        )
    console().print(table)


# ---- the price list ----


def _overage_row(meter: str, plans: Sequence[PlanPrice]) -> list[str]:
    """The label and each plan's rate of one meter; sub-cent rates read better per thousand
    ("per 1,000 API calls: $0.01", not "per API call: $0.00001")."""
    unit = OVERAGE_UNITS.get(meter, meter)
    rates = [plan.overage_rates.get(meter) for plan in plans]
    given = [Decimal(r) for r in rates if r is not None]
    per = 1000 if given and all(0 < r < Decimal("0.01") for r in given) else 1
    cells = [
        "-" if rate is None else _price(Decimal(rate) * per, plan.currency)
        for plan, rate in zip(plans, rates, strict=True)
    ]
    return [f"Overage, per 1,000 {unit}s" if per > 1 else f"Overage, per {unit}", *cells]


def _limit(quotas: dict[str, str | None], key: str) -> str:
    if key not in quotas:
        return "-"
    limit = quotas[key]
    return "unlimited" if limit is None else _quantity(limit)


def _pricing_rows(found: PriceList) -> None:
    from rich.table import Table

    from tenantry.plans.catalog import QUOTA_SHAPES, Period  # the catalog: how quotas count

    period_suffix = {Period.DAY: " per day", Period.MONTH: " per month"}
    table = Table(show_edge=False, header_style="bold")
    table.add_column("")
    for plan in found.plans:
        table.add_column(plan.name, justify="right")
    table.add_row("Monthly", *(_money(p.monthly_price, p.currency) for p in found.plans))
    table.add_row("Yearly", *(_money(p.yearly_price, p.currency) for p in found.plans))
    quota_keys = list(dict.fromkeys(k for p in found.plans for k in p.quotas))
    for key in quota_keys:
        shape = QUOTA_SHAPES.get(key)
        label = QUOTA_LABELS.get(key, key) + (period_suffix.get(shape[1], "") if shape else "")
        cells = [_limit(plan.quotas, key) for plan in found.plans]
        table.add_row(label, *cells)
    for meter in found.overage_rates:
        table.add_row(*_overage_row(meter, found.plans))
    console().print(table)
    typer.echo("Usage beyond a quota is billed at the overage rates;")
    typer.echo("a plan without them (-) refuses usage beyond its quotas instead.")


@app.command("pricing")
def pricing(json_output: JsonFlag = False) -> None:
    """The plans: monthly and yearly prices, quotas and overage rates (no sign-in needed)."""
    with connection.anonymous(connection.server_url(config.load())) as api:
        found = api.list_plans()
    show(found, json_output, lambda: _pricing_rows(found))


# ---- what usage would cost (computed here) ----


def _usage_cost(
    usage: dict[str, Decimal], plan_key: str | None, now: datetime
) -> tuple[list[Line], BillingPeriod | None, str]:
    from tenantry.billing import rating
    from tenantry.billing.rating import BillingPeriod, Cycle
    from tenantry.plans.catalog import PLANS

    if plan_key is None:
        return rating.overage(None, usage, None), None, "usd"
    plan = PLANS.get(plan_key)
    if plan is None:
        raise CliError(f"--plan: expected one of {', '.join(PLANS)}, not {plan_key!r}")
    period = BillingPeriod.starting(now, Cycle.MONTHLY)
    base = rating.base_fee(plan, Cycle.MONTHLY, period)
    lines = ([base] if base else []) + rating.overage(plan, usage, period)
    return lines, period, plan.currency


def _cost_json(
    usage: dict[str, Decimal],
    plan_key: str | None,
    lines: list[Line],
    period: BillingPeriod | None,
    currency: str,
) -> dict[str, Any]:
    """The same figures as the server's invoice lines (decimal strings, amounts to the cent)."""
    from tenantry.billing import rating
    from tenantry.billing.rating import Cycle
    from tenantry.kit.money import plain as plain_decimal

    total = rating.totals(lines, tax_rate=Decimal(0), currency=currency).total
    return {
        "plan": plan_key,
        "cycle": Cycle.MONTHLY.value if plan_key else None,
        "period_start": period.start.isoformat() if period else None,
        "period_end": period.end.isoformat() if period else None,
        "currency": currency,
        "usage": {meter: plain_decimal(q) for meter, q in usage.items()},
        "lines": [
            {
                "kind": x.kind.value,
                "description": x.description,
                "meter": x.meter,
                "quantity": plain_decimal(x.quantity),
                "unit_price": plain_decimal(x.unit_price),
                "amount": format(x.amount, "f"),
            }
            for x in lines
        ],
        "total": format(total, "f"),
    }


def _cost_rows(
    plan_key: str | None, lines: list[Line], period: BillingPeriod | None, currency: str
) -> None:
    from tenantry.billing import rating
    from tenantry.plans.catalog import PLANS

    plan = PLANS[plan_key] if plan_key else None
    if plan is None or period is None:
        typer.echo("Without a plan: all usage billed at the standard overage rates, before tax.")
    else:
        span = _span(period.start, period.end)
        typer.echo(f"{plan.name} plan, one monthly period ({span}), before tax:")
        if not plan.overage_rates:
            typer.echo("Its quotas are hard: usage beyond them is refused, not billed.")
    _line_rows(lines, currency, empty="Nothing to pay.")
    total = rating.totals(lines, tax_rate=Decimal(0), currency=currency).total
    typer.echo(f"Total: {_money(total, currency)}")


@app.command("usage-cost")
def usage_cost(
    compute_hours: Annotated[
        str, typer.Option("--compute-hours", help="Compute hours used.", show_default=False)
    ] = "0",
    storage_gb: Annotated[
        str,
        typer.Option("--storage-gb", help="Storage held, in GB-months.", show_default=False),
    ] = "0",
    api_calls: Annotated[
        str, typer.Option("--api-calls", help="API calls made.", show_default=False)
    ] = "0",
    plan: Annotated[
        str | None,
        typer.Option(
            "--plan",
            help="Rate against this plan for one monthly period starting now: its monthly fee, "
            "plus usage beyond what it includes in that period (API calls: the daily quota "
            "times the days of the month).",
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """What usage costs, line by line, before tax. Without --plan all of it is billable at the
    standard overage rates. Computed here with the catalog of this version of tenantry; no
    server needed. One monthly period is assumed; the usage is the period's total."""
    usage = {
        "compute_hours": _decimal(compute_hours, option="--compute-hours", minimum=Decimal(0)),
        "storage_gb": _decimal(storage_gb, option="--storage-gb", minimum=Decimal(0)),
        "api_calls": _decimal(api_calls, option="--api-calls", minimum=Decimal(0)),
    }
    lines, period, currency = _usage_cost(usage, plan, values.now())
    if json_output:
        print_json(_cost_json(usage, plan, lines, period, currency))
    else:
        _cost_rows(plan, lines, period, currency)


# ---- subscription ----


def _subscription_facts(sub: Subscription) -> list[tuple[str, str]]:
    period = _span(sub.current_period_start, sub.current_period_end)
    if sub.cancel_at_period_end:
        period += ", canceled: ends then"
    facts = [
        ("plan", sub.plan),
        ("cycle", sub.cycle),
        ("status", sub.status),
        ("period", period),
    ]
    if sub.trial_end:
        facts.append(("trial ends", _day(sub.trial_end)))
    facts += [("provider", sub.provider), ("id", sub.id)]
    return facts


def _subscription_rows(found: OrgSubscription) -> None:
    if found.subscription is None:
        typer.echo(f"Plan: {found.plan} (no subscription)")
        return
    _facts(_subscription_facts(found.subscription))


@app.command("subscription")
def subscription(org: OrgArg, json_output: JsonFlag = False) -> None:
    """The org's plan and subscription: cycle, status, current period."""
    with connection.signed_in() as api:
        found = api.get_subscription(org)
    show(found, json_output, lambda: _subscription_rows(found))


def _invoice_note(invoice: Invoice) -> str:
    name = invoice.number or invoice.id
    if invoice.status == "open" and Decimal(invoice.amount_due) > 0:
        return (
            f"Invoice {name}: {_money(invoice.amount_due, invoice.currency)} due "
            f"{_day(invoice.due_at)}; pay it with `tenantry billing pay {invoice.id}`."
        )
    return f"Invoice {name}: {_money(invoice.total, invoice.currency)}, {invoice.status}."


def _change_rows(found: SubscriptionChange) -> None:
    sub = found.subscription
    until = _day(sub.current_period_end)
    message = {
        "created": f"Subscribed to {sub.plan} ({sub.cycle}), period until {until}.",
        "changed": f"Now on {sub.plan} ({sub.cycle}), period until {until}.",
        "resumed": f"Cancellation taken back: {sub.plan} ({sub.cycle}) renews on {until}.",
        "unchanged": f"Already on {sub.plan} ({sub.cycle}): nothing changed.",
        "canceled": (
            "Canceled now: the plan is Free."
            if sub.status == "canceled"
            else f"Canceled: {sub.plan} stays until {until}, then the plan is Free."
        ),
    }.get(found.change, f"{found.change}: {sub.plan} ({sub.cycle}, {sub.status}).")
    typer.echo(message)
    if found.prorations:
        typer.echo("Prorations, on the next invoice:")
        _line_rows(found.prorations, "usd", empty="")
    if found.invoice is not None:
        typer.echo(_invoice_note(found.invoice))


@app.command("subscribe")
def subscribe(
    org: OrgArg,
    plan: Annotated[
        str,
        typer.Option("--plan", help="starter, professional or enterprise.", show_default=False),
    ],
    cycle: Annotated[
        Literal["monthly", "yearly"], typer.Option("--cycle", help="How often to pay.")
    ] = "monthly",
    trial_days: Annotated[
        int | None,
        typer.Option("--trial-days", min=1, help="Start a new subscription with a free trial."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Subscribe the org to a plan, or change its plan or cycle (prorated), or take back a
    cancellation by subscribing to the same plan. Quotas follow the new plan at once."""
    with connection.signed_in() as api:
        found = api.subscribe(org, plan, cycle=cycle, trial_days=trial_days)
    show(found, json_output, lambda: _change_rows(found))


@app.command("cancel")
def cancel(
    org: OrgArg,
    now: Annotated[
        bool,
        typer.Option(
            "--now",
            help="End now and drop to Free; the usage so far is invoiced, the unused rest of "
            "the fee is not refunded.",
        ),
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Cancel the subscription at the end of the paid period (the plan stays until then)."""
    with connection.signed_in() as api:
        found = api.cancel_subscription(org, immediately=now)
    show(found, json_output, lambda: _change_rows(found))


# ---- invoices ----


def _summary_rows(found: list[InvoiceSummary]) -> None:
    print_table(
        found,
        [
            ("NUMBER", lambda x: x.number or "(draft)"),
            ("STATUS", lambda x: x.status),
            ("TOTAL", lambda x: _money(x.total, x.currency)),
            ("DUE", lambda x: _money(x.amount_due, x.currency)),
            ("ID", lambda x: x.id),
        ],
        empty="No invoices.",
        keep_whole=("ID",),
    )


@app.command("invoices")
def invoices(
    org: OrgArg,
    status: Annotated[
        InvoiceStatusOpt | None, typer.Option("--status", help="Only invoices in this state.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """The org's invoices and credit notes, oldest first."""
    with connection.signed_in() as api:
        found = list(api.iter_invoices(org, status=status))
    show(found, json_output, lambda: _summary_rows(found))


def _payment_rows(found: Sequence[Payment], *, of_one_invoice: bool = False) -> None:
    columns: list[tuple[str, Callable[[Payment], Any]]] = [
        ("DATE", lambda x: _day(x.created_at)),
        ("INVOICE", lambda x: x.invoice_id),
        ("AMOUNT", lambda x: _money(x.amount, x.currency)),
        ("STATUS", lambda x: f"{x.status}: {x.failure_code}" if x.failure_code else x.status),
    ]
    if of_one_invoice:
        columns[1] = ("PAYMENT", lambda x: x.id)
    print_table(found, columns, empty="No payments.", keep_whole=("INVOICE", "PAYMENT"))


def _invoice_rows(invoice: Invoice) -> None:
    c = invoice.currency
    facts = [
        ("number", invoice.number or "(draft)"),
        ("kind", invoice.kind),
        ("status", invoice.status),
        ("period", _span(invoice.period_start, invoice.period_end)),
        ("created", plain(invoice.created_at)),
        ("due", _day(invoice.due_at)),
    ]
    facts += [
        (name, plain(moment))
        for name, moment in (
            ("paid", invoice.paid_at),
            ("voided", invoice.voided_at),
            ("next attempt", invoice.next_attempt_at),
        )
        if moment is not None
    ]
    if invoice.memo:
        facts.append(("memo", invoice.memo))
    if invoice.corrects_id:
        facts.append(("credits", invoice.corrects_id))
    facts += [("org", invoice.org_id), ("id", invoice.id)]
    _facts(facts)
    typer.echo()
    _line_rows(invoice.lines, c, empty="No lines.")
    typer.echo()
    _facts(
        [
            ("Subtotal", _money(invoice.subtotal, c)),
            (f"Tax ({_percent(invoice.tax_rate)})", _money(invoice.tax, c)),
            ("Total", _money(invoice.total, c)),
            ("Paid", _money(invoice.amount_paid, c)),
            ("Amount due", _money(invoice.amount_due, c)),
        ]
    )
    if invoice.payments:
        typer.echo()
        _payment_rows(invoice.payments, of_one_invoice=True)


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all: a failed write leaves no half file to be mistaken for the invoice."""
    partial = path.with_name(path.name + ".part")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)


@invoice_app.command("show")
def invoice_show(
    invoice_id: InvoiceArg,
    pdf: Annotated[
        Path | None, typer.Option("--pdf", dir_okay=False, help="Also write it as PDF to FILE.")
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option("--html", dir_okay=False, help="Also write it as an HTML page to FILE."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """An invoice or credit note: its lines, totals and payment attempts."""
    with connection.signed_in() as api:
        invoice = api.get_invoice(invoice_id)
        documents: list[tuple[Path, bytes]] = []
        if pdf is not None:
            documents.append((pdf, api.invoice_pdf(invoice_id)))
        if html is not None:
            documents.append((html, api.invoice_html(invoice_id).encode()))
    for path, data in documents:
        _write(path, data)

    def render() -> None:
        _invoice_rows(invoice)
        for path, data in documents:
            typer.echo(f"Wrote {path} ({len(data)} bytes).")

    show(invoice, json_output, render)


def _parse_line(text: str) -> dict[str, str]:
    """DESCRIPTION:QUANTITY:UNIT_PRICE, split from the right so a description may hold colons."""
    description, sep1, rest = text.rpartition(":")
    from tenantry.client.billing import invoice_line

    description, sep2, quantity = description.rpartition(":")
    if not (sep1 and sep2) or not description.strip():
        raise CliError(f"--line: expected DESCRIPTION:QUANTITY:UNIT_PRICE, not {text!r}")
    return invoice_line(
        description.strip(),
        _decimal(rest, option="--line UNIT_PRICE"),
        _decimal(quantity, option="--line QUANTITY"),
    )


def _invoice_done(invoice: Invoice, verb: str) -> None:
    if invoice.number is None:
        total = _money(invoice.total, invoice.currency)
        typer.echo(f"{verb} draft invoice {invoice.id}: {total}.")
        typer.echo(f"Finalize it with `tenantry billing invoice finalize {invoice.id}`.")
        return
    typer.echo(f"{verb} invoice {invoice.number} ({invoice.id}).")
    typer.echo(_invoice_note(invoice))


@invoice_app.command("create")
def invoice_create(
    org: OrgArg,
    line: Annotated[
        list[str],
        typer.Option(
            "--line",
            help="DESCRIPTION:QUANTITY:UNIT_PRICE, e.g. 'Onboarding workshop:2:450' "
            "(repeatable; a negative price is a discount).",
            show_default=False,
        ),
    ],
    memo: Annotated[str | None, typer.Option("--memo", help="A note printed on it.")] = None,
    finalize: Annotated[
        bool, typer.Option("--finalize", help="Number it and open it at once, not a draft.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Raise a manual invoice: a draft to finalize later, or open at once with --finalize."""
    lines = [_parse_line(x) for x in line]
    with connection.signed_in() as api:
        invoice = api.create_invoice(org, lines, memo=memo, finalize=finalize)
    show(invoice, json_output, lambda: _invoice_done(invoice, "Created"))


@invoice_app.command("finalize")
def invoice_finalize(invoice_id: InvoiceArg, json_output: JsonFlag = False) -> None:
    """Give a draft its number and open it for payment; it cannot change afterwards."""
    with connection.signed_in() as api:
        invoice = api.finalize_invoice(invoice_id)
    show(invoice, json_output, lambda: _invoice_done(invoice, "Finalized"))


@invoice_app.command("void")
def invoice_void(invoice_id: InvoiceArg, json_output: JsonFlag = False) -> None:
    """Void a draft, or an open invoice with nothing paid (otherwise issue a credit note)."""
    with connection.signed_in() as api:
        invoice = api.void_invoice(invoice_id)
    show(invoice, json_output, lambda: typer.echo(f"Voided {invoice.number or invoice.id}."))


@invoice_app.command("mark-uncollectible")
def invoice_uncollectible(invoice_id: InvoiceArg, json_output: JsonFlag = False) -> None:
    """Stop collecting an open invoice (it can still be paid later)."""
    with connection.signed_in() as api:
        invoice = api.mark_invoice_uncollectible(invoice_id)
    message = f"Marked {invoice.number or invoice.id} uncollectible."
    show(invoice, json_output, lambda: typer.echo(message))


@invoice_app.command("credit")
def invoice_credit(
    invoice_id: InvoiceArg,
    reason: Annotated[
        str, typer.Option("--reason", help="Why, printed on the credit note.", show_default=False)
    ],
    amount: Annotated[
        str | None,
        typer.Option("--amount", help="How much, before tax; default: all that is left."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Issue a credit note against a finalized invoice."""
    value = None if amount is None else _decimal(amount, option="--amount", minimum=Decimal(0))
    with connection.signed_in() as api:
        note = api.credit_invoice(invoice_id, reason=reason, amount=value)
    message = (
        f"Issued credit note {note.number or note.id} for {_money(note.total, note.currency)} "
        f"against {invoice_id} ({note.id})."
    )
    show(note, json_output, lambda: typer.echo(message))


@app.command("upcoming")
def upcoming(org: OrgArg, json_output: JsonFlag = False) -> None:
    """What the current period's invoice would say if the period ended now (nothing is
    written): usage beyond the plan so far, pending prorations and credits, the next fee."""
    with connection.signed_in() as api:
        found = api.upcoming_invoice(org)
    show(found, json_output, lambda: _preview_rows(found))


def _preview_rows(found: InvoicePreview) -> None:
    c = found.currency
    typer.echo(f"Period: {_span(found.period_start, found.period_end)}")
    _line_rows(found.lines, c, empty="No lines.")
    _facts(
        [
            ("Subtotal", _money(found.subtotal, c)),
            (f"Tax ({_percent(found.tax_rate)})", _money(found.tax, c)),
            ("Total", _money(found.total, c)),
        ]
    )


# ---- paying ----


def _pay_outcome(result: PaymentResult, json_output: bool) -> None:
    payment, invoice = result.payment, result.invoice
    name = invoice.number or invoice.id
    amount = _money(payment.amount, payment.currency)
    if json_output:
        print_json(result)
    elif payment.status == "succeeded":
        remaining = Decimal(invoice.amount_due)
        tail = "" if remaining == 0 else f"; {_money(remaining, invoice.currency)} still due"
        typer.echo(f"Paid {amount} on {name} ({payment.id}); invoice {invoice.status}{tail}.")
    if payment.status == "failed":
        why = payment.failure_message or "no reason given"
        code = f" ({payment.failure_code})" if payment.failure_code else ""
        raise CliError(
            f"payment of {amount} on {name} failed: {why}{code}", exit_code=EXIT_PAYMENT_FAILED
        )
    if payment.status != "succeeded":
        # Paying again asks the provider about this same attempt: it cannot charge twice.
        raise CliError(
            f"payment of {amount} on {name} has no answer from the provider yet "
            f"({payment.status}); run `tenantry billing pay {invoice.id}` again to ask, it will "
            "not charge twice",
            exit_code=EXIT_PAYMENT_FAILED,
        )


@app.command("pay")
def pay(
    invoice_id: InvoiceArg,
    method: Annotated[
        str | None,
        typer.Option("--method", help="Payment method id (pm_…); default: the org's default."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Pay what is due on an invoice now. Exits 7 when the payment failed or its outcome is
    unknown, with why (and with --json, after printing the answer)."""
    with connection.signed_in() as api:
        result = api.pay_invoice(invoice_id, payment_method_id=method)
    _pay_outcome(result, json_output)


@app.command("payments")
def payments(org: OrgArg, json_output: JsonFlag = False) -> None:
    """Every payment attempt of the org, oldest first."""
    with connection.signed_in() as api:
        found = list(api.iter_payments(org))
    show(found, json_output, lambda: _payment_rows(found))


# ---- payment methods ----

_EXPIRY = re.compile(r"^\s*(\d{1,2})\s*/\s*(\d{4})\s*$")


def _expiry(text: str | None) -> tuple[int | None, int | None]:
    if text is None:
        return None, None
    match = _EXPIRY.match(text)
    if match is None or not 1 <= int(match.group(1)) <= 12:
        raise CliError(f"--exp: expected MM/YYYY such as 04/2030, not {text!r}")
    return int(match.group(1)), int(match.group(2))


def _describe(method: PaymentMethod) -> str:
    if method.kind == "bank_account":
        what = method.bank_name or "bank account"
    else:
        what = method.brand or "card"
    return f"{what} ending {method.last4}" if method.last4 else what


def _method_expiry(method: PaymentMethod) -> str:
    if method.exp_month is None or method.exp_year is None:
        return "-"
    return f"{method.exp_month:02d}/{method.exp_year}"


@method_app.command("add")
def method_add(
    org: OrgArg,
    token: Annotated[
        str,
        typer.Option(
            "--token",
            help="The payment provider's token (pm_… on Stripe; any name on the local "
            "provider, where local_declines is a card that is always declined).",
            show_default=False,
        ),
    ],
    kind: Annotated[
        Literal["card", "bank_account"], typer.Option("--kind", help="What it is.")
    ] = "card",
    brand: Annotated[str | None, typer.Option("--brand", help="Card brand, e.g. visa.")] = None,
    last4: Annotated[str | None, typer.Option("--last4", help="Last four digits.")] = None,
    exp: Annotated[str | None, typer.Option("--exp", help="Card expiry, MM/YYYY.")] = None,
    bank_name: Annotated[str | None, typer.Option("--bank-name", help="A bank's name.")] = None,
    default: Annotated[
        bool, typer.Option("--default", help="Make it the default (the first one always is).")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Add a payment method by the provider's token. The provider's own description wins over
    --brand, --last4 and --exp (the local provider keeps what you give)."""
    exp_month, exp_year = _expiry(exp)
    with connection.signed_in() as api:
        method = api.add_payment_method(
            org,
            token,
            kind=kind,
            brand=brand,
            last4=last4,
            exp_month=exp_month,
            exp_year=exp_year,
            bank_name=bank_name,
            default=default,
        )
    tail = ", the default" if method.is_default else ""
    message = f"Added {_describe(method)} ({method.id}){tail}."
    show(method, json_output, lambda: typer.echo(message))


@method_app.command("list")
def method_list(org: OrgArg, json_output: JsonFlag = False) -> None:
    """The org's payment methods (never a card number)."""
    with connection.signed_in() as api:
        found = list(api.list_payment_methods(org).items)
    show(
        found,
        json_output,
        lambda: print_table(
            found,
            [
                ("ID", lambda m: m.id),
                ("METHOD", _describe),
                ("EXPIRES", _method_expiry),
                ("DEFAULT", lambda m: "yes" if m.is_default else ""),
            ],
            empty="No payment methods.",
            keep_whole=("ID",),
        ),
    )


@method_app.command("remove")
def method_remove(
    org: OrgArg,
    method_id: Annotated[
        str, typer.Argument(metavar="ID", help="The method's id (pm_…).", show_default=False)
    ],
    json_output: JsonFlag = False,
) -> None:
    """Remove a payment method."""
    with connection.signed_in() as api:
        api.remove_payment_method(org, method_id)
    done(
        json_output,
        f"Removed payment method {method_id}.",
        {"removed": "payment_method", "id": method_id, "org": org},
    )


# ---- tax ----


@app.command("tax")
def tax(
    org: OrgArg,
    rate: Annotated[
        str | None,
        typer.Option("--rate", help="Set the tax rate, a fraction: 0.2 is 20%."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """The org's tax rate (and currency and provider); with --rate, set it for invoices
    finalized from now on."""
    with connection.signed_in() as api:
        if rate is None:
            account = api.get_billing_account(org)
        else:
            value = _decimal(rate, option="--rate", minimum=Decimal(0))
            account = api.set_tax_rate(org, value)
    verb = "Tax rate now" if rate is not None else "Tax rate"
    message = (
        f"{verb} {_percent(account.tax_rate)} ({account.currency.upper()}, "
        f"provider {account.provider})."
    )
    show(account, json_output, lambda: typer.echo(message))
