"""`tenantry billing ...` through the CLI against the real app (local payment provider), and
`billing usage-cost`, which rates locally without a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli.test_cli import Cli, one_error_line, people  # noqa: F401 - the fixture
from conftest import Factory, Tenant
from tenantry.cli import connection
from tenantry.cli.output import EXIT_API_ERROR, EXIT_PAYMENT_FAILED, EXIT_USAGE

USAGE = ("--compute-hours", "150", "--storage-gb", "50", "--api-calls", "50000")


def _signed_in(cli: dict[str, Cli], factory: Factory) -> tuple[Cli, Tenant]:
    acme = factory.tenant("Acme")
    ann = cli["ann"]
    assert ann.login(acme.owner_email).exit_code == 0
    return ann, acme


def _subscribed(ann: Cli, org: str) -> str:
    """Subscribes `org` to Starter and returns the id of the first invoice ($29.00)."""
    change = ann.json("billing", "subscribe", org, "--plan", "starter")
    assert change["change"] == "created"
    return str(change["invoice"]["id"])


def test_pricing_lists_every_plan_without_signing_in(people: dict[str, Cli]) -> None:
    table = people["guest"].ok("billing", "pricing")
    for text in ("Starter", "Enterprise", "$29.00", "$290.00", "$4,990.00", "unlimited"):
        assert text in table
    assert "Overage, per compute hour" in table and "Overage, per 1,000 API calls" in table
    assert "$0.50" in table and "$0.01" in table
    assert "API calls per day" in table and "Compute hours per month" in table
    found = people["guest"].json("billing", "pricing")
    assert [p["key"] for p in found["plans"]] == ["free", "starter", "professional", "enterprise"]
    starter = found["plans"][1]
    assert (starter["monthly_price"], starter["yearly_price"]) == ("29.00", "290.00")
    assert found["plans"][0]["overage_rates"] == {}


def test_usage_cost_without_a_plan_needs_no_server(
    people: dict[str, Cli],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nowhere to connect to: the command must not try.
    monkeypatch.setattr(connection, "http_override", None)
    cli = people["guest"]
    out = cli.ok("billing", "usage-cost", *USAGE, TENANTRY_SERVER="http://127.0.0.1:9")
    assert "Total: $80.50" in out.splitlines()
    for amount in ("$75.00", "$5.00", "$0.50"):
        assert amount in out
    found = cli.json("billing", "usage-cost", *USAGE, TENANTRY_SERVER="http://127.0.0.1:9")
    assert found["total"] == "80.50" and found["plan"] is None
    assert [(x["meter"], x["quantity"], x["amount"]) for x in found["lines"]] == [
        ("compute_hours", "150", "75.00"),
        ("storage_gb", "50", "5.00"),
        ("api_calls", "50000", "0.50"),
    ]


def test_usage_cost_against_a_plan_adds_its_fee_and_bills_beyond_its_quotas(
    people: dict[str, Cli],
) -> None:
    cli = people["guest"]
    # Starter includes 1,000 compute hours, 100 GB-months and 100,000 API calls a day: $29.00
    # + 200 h x $0.50 + 50 GB-months x $0.10, and the API calls are within the quota.
    usage = ("--compute-hours", "1200", "--storage-gb", "150", "--api-calls", "50000")
    found = cli.json("billing", "usage-cost", *usage, "--plan", "starter")
    assert [(x["kind"], x["amount"]) for x in found["lines"]] == [
        ("base", "29.00"),
        ("overage", "100.00"),
        ("overage", "5.00"),
    ]
    assert found["total"] == "134.00" and found["cycle"] == "monthly"
    out = cli.ok("billing", "usage-cost", *usage, "--plan", "starter")
    assert "Total: $134.00" in out.splitlines() and "one monthly period" in out
    # Free's quotas are hard: nothing beyond them is billed, and it has no fee.
    free = cli.json("billing", "usage-cost", *usage, "--plan", "free")
    assert (free["lines"], free["total"]) == ([], "0.00")
    line = one_error_line(cli.run("billing", "usage-cost", "--plan", "gold"))
    assert "--plan" in line and "starter" in line
    bad = cli.run("billing", "usage-cost", "--compute-hours", "lots")
    assert bad.exit_code == EXIT_USAGE and "--compute-hours" in one_error_line(bad)


def test_subscribe_pay_and_download_the_invoice(
    people: dict[str, Cli],
    factory: Factory,
    tmp_path: Path,
) -> None:
    ann, acme = _signed_in(people, factory)
    org = acme.org_slug
    assert "Plan: free (no subscription)" in ann.ok("billing", "subscription", org)
    said = ann.ok("billing", "subscribe", org, "--plan", "starter")
    assert "Subscribed to starter (monthly)" in said and "$29.00 due" in said
    assert ann.json("billing", "subscription", org)["subscription"]["plan"] == "starter"
    [invoice] = ann.json("billing", "invoices", org)
    assert (invoice["status"], invoice["total"]) == ("open", "29.00")
    listed = ann.ok("billing", "invoices", org)
    assert invoice["number"] in listed and "$29.00" in listed
    assert ann.json("billing", "invoices", org, "--status", "paid") == []

    no_method = ann.run("billing", "pay", invoice["id"])
    assert no_method.exit_code == EXIT_API_ERROR
    assert "no_payment_method" in one_error_line(no_method)
    added = ann.ok(
        "billing", "payment-method", "add", org, "--token", "tok_visa",
        "--brand", "visa", "--last4", "4242", "--exp", "04/2030",
    )  # fmt: skip
    assert "visa ending 4242" in added and "the default" in added
    [method] = ann.json("billing", "payment-method", "list", org)
    assert (method["exp_month"], method["exp_year"], method["is_default"]) == (4, 2030, True)

    paid = ann.ok("billing", "pay", invoice["id"])
    assert f"Paid $29.00 on {invoice['number']}" in paid and "invoice paid" in paid
    shown = ann.json("billing", "invoice", "show", invoice["id"])
    assert (shown["status"], shown["amount_due"]) == ("paid", "0.00")
    [payment] = ann.json("billing", "payments", org)
    assert (payment["status"], payment["amount"]) == ("succeeded", "29.00")
    again = ann.run("billing", "pay", invoice["id"])
    assert again.exit_code == EXIT_API_ERROR and "invoice_not_payable" in one_error_line(again)

    pdf, html = tmp_path / "invoice.pdf", tmp_path / "invoice.html"
    out = ann.ok(
        "billing", "invoice", "show", invoice["id"], "--pdf", str(pdf), "--html", str(html)
    )
    assert pdf.read_bytes().startswith(b"%PDF")
    assert invoice["number"] in html.read_text()
    assert f"Wrote {pdf}" in out and "Starter plan, monthly" in out and "$29.00" in out
    assert list(tmp_path.glob("*.part")) == []


def test_a_declined_payment_exits_non_zero_with_the_reason(
    people: dict[str, Cli],
    factory: Factory,
) -> None:
    ann, acme = _signed_in(people, factory)
    invoice_id = _subscribed(ann, acme.org_slug)
    ann.ok("billing", "payment-method", "add", acme.org_slug, "--token", "local_declines")
    declined = ann.run("billing", "pay", invoice_id)
    assert declined.exit_code == EXIT_PAYMENT_FAILED
    line = one_error_line(declined)
    assert "failed" in line and "card_declined" in line and "$29.00" in line
    # With --json the answer is printed for the script, and the exit code still says no.
    as_json = ann.run("billing", "pay", invoice_id, "--json")
    assert as_json.exit_code == EXIT_PAYMENT_FAILED
    assert '"status": "failed"' in as_json.stdout

    good = ann.json("billing", "payment-method", "add", acme.org_slug, "--token", "tok_ok")
    assert not good["is_default"]  # the first method stays the default
    paid = ann.ok("billing", "pay", invoice_id, "--method", good["id"])
    assert "Paid $29.00" in paid
    statuses = [p["status"] for p in ann.json("billing", "payments", acme.org_slug)]
    assert statuses == ["failed", "failed", "succeeded"]
    assert "card_declined" in ann.ok("billing", "payments", acme.org_slug)


def _lines(invoice: dict[str, Any]) -> list[tuple[str, str]]:
    return [(x["description"], x["amount"]) for x in invoice["lines"]]


def test_manual_invoices_credit_notes_tax_preview_and_cancel(
    people: dict[str, Cli],
    factory: Factory,
) -> None:
    ann, acme = _signed_in(people, factory)
    org = acme.org_slug
    assert "Tax rate now 20%" in ann.ok("billing", "tax", org, "--rate", "0.2")
    assert ann.json("billing", "tax", org)["tax_rate"] == "0.2"

    draft = ann.json(
        "billing", "invoice", "create", org,
        "--line", "Workshop: day one:2:450", "--line", "Discount:1:-100", "--memo", "Thanks",
    )  # fmt: skip
    assert draft["status"] == "draft" and draft["number"] is None and draft["memo"] == "Thanks"
    assert _lines(draft) == [("Workshop: day one", "900.00"), ("Discount", "-100.00")]
    final = ann.json("billing", "invoice", "finalize", draft["id"])
    assert final["status"] == "open" and final["number"]
    assert (final["subtotal"], final["tax"], final["total"]) == ("800.00", "160.00", "960.00")
    shown = ann.ok("billing", "invoice", "show", final["id"])
    assert "Tax (20%)" in shown and "$960.00" in shown and "Thanks" in shown

    note = ann.json(
        "billing", "invoice", "credit", final["id"], "--reason", "Goodwill", "--amount", "100"
    )
    assert note["corrects_id"] == final["id"] and note["total"].startswith("-")
    said = ann.ok("billing", "invoice", "credit", final["id"], "--reason", "The rest")
    assert "Issued credit note" in said

    other = ann.json("billing", "invoice", "create", org, "--line", "Oops:1:5")
    assert "Voided" in ann.ok("billing", "invoice", "void", other["id"])
    assert ann.json("billing", "invoice", "show", other["id"])["status"] == "void"
    finalized = ann.ok("billing", "invoice", "create", org, "--line", "Setup:1:50", "--finalize")
    assert "Created invoice INV-" in finalized
    bad = ann.run("billing", "invoice", "create", org, "--line", "no price")
    assert bad.exit_code == EXIT_USAGE and "DESCRIPTION:QUANTITY:UNIT_PRICE" in one_error_line(bad)

    _subscribed(ann, org)
    preview = ann.json("billing", "upcoming", org)
    assert any(x["kind"] == "base" for x in preview["lines"])
    assert "Total" in ann.ok("billing", "upcoming", org)
    later = ann.ok("billing", "cancel", org)
    assert "Canceled: starter stays until" in later
    assert ann.json("billing", "subscription", org)["subscription"]["cancel_at_period_end"]
    assert "Canceled now: the plan is Free." in ann.ok("billing", "cancel", org, "--now")
    assert ann.json("billing", "subscription", org)["plan"] == "free"


def test_billing_errors_are_one_line(
    people: dict[str, Cli],
    factory: Factory,
) -> None:
    ann, acme = _signed_in(people, factory)
    beta = factory.tenant("Beta")
    bob = people["bob"]
    assert bob.login(beta.owner_email).exit_code == 0
    beta_invoice = _subscribed(bob, beta.org_slug)
    # Another org's invoice does not exist for Ann.
    assert "404" in one_error_line(ann.run("billing", "invoice", "show", beta_invoice))
    assert "404" in one_error_line(ann.run("billing", "pay", beta_invoice))
    assert "no_subscription" in one_error_line(ann.run("billing", "cancel", acme.org_slug))
    assert "invalid_plan" in one_error_line(
        ann.run("billing", "subscribe", acme.org_slug, "--plan", "gold")
    )
    expiry = ann.run(
        "billing", "payment-method", "add", acme.org_slug, "--token", "t", "--exp", "13/2030"
    )
    assert expiry.exit_code == EXIT_USAGE and "--exp" in one_error_line(expiry)
    assert "--rate" in one_error_line(ann.run("billing", "tax", acme.org_slug, "--rate", "x"))
