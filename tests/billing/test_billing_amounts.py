"""Manual invoice lines have documented bounds, refused (422, naming the field, nothing written)
before any amount reaches a column: a unit price has at most six decimal places, and a line's
amount (quantity times unit price) is 0.01 to 1,000,000,000 either way. A line of ~4e8 x ~4.5e8
overflowed the amount column (a 500), and `unit_price: 1e-30` was accepted as a line of 0.00."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import Factory, Tenant, assert_problem, count_rows
from tenantry.billing.schemas import MAX_LINE_AMOUNT, MAX_MANUAL_LINES
from tenantry.kit.db import Database


@pytest.fixture
def acme(factory: Factory) -> Tenant:
    return factory.tenant("Acme")


def _raise(client: TestClient, acme: Tenant, *lines: dict[str, Any]) -> Any:
    return client.post(
        f"/api/v1/orgs/{acme.org_id}/invoices",
        headers=acme.headers,
        json={"lines": list(lines), "finalize": True},
    )


def _refused(resp: Any, field: str) -> dict[str, Any]:
    body = assert_problem(resp, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["body", "lines", 0, field], body
    return body


def test_an_invoice_line_whose_amount_would_overflow_is_422_not_500(
    client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    line = {"description": "Huge", "quantity": "400000000", "unit_price": "450000000"}
    body = _refused(_raise(client, acme, line), "unit_price")
    assert "1,000,000,000" in body["detail"], body
    assert count_rows(database) == before


def test_a_unit_price_finer_than_six_places_is_422(
    client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    for price in (1e-30, "1e-30", "0.0000001"):
        _refused(_raise(client, acme, {"description": "Dust", "unit_price": price}), "unit_price")
    assert count_rows(database) == before


def test_a_line_that_rounds_to_nothing_is_422(
    client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    for line in ({"unit_price": "0"}, {"unit_price": "0.004"},
                 {"quantity": "0.000001", "unit_price": "1000"}):  # fmt: skip
        body = _refused(_raise(client, acme, {"description": "Nothing", **line}), "unit_price")
        assert "0.01" in body["detail"], body
    assert count_rows(database) == before


def test_money_is_a_number_or_a_decimal_string_written_as_one(
    client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    for price in ("1_000", " 10 ", "1,000.00", "$10", "+10", "ten", "NaN", True):
        resp = _raise(client, acme, {"description": "Odd", "unit_price": price})
        _refused(resp, "unit_price")
    for quantity in ("-0", "1_0", " 2"):
        line = {"description": "Odd", "quantity": quantity, "unit_price": "1"}
        _refused(_raise(client, acme, line), "quantity")
    assert count_rows(database) == before


def test_the_largest_invoice_fits_and_adds_up(client: TestClient, acme: Tenant) -> None:
    most = {"description": "Most", "quantity": "1", "unit_price": str(MAX_LINE_AMOUNT)}
    resp = _raise(client, acme, *[most] * MAX_MANUAL_LINES)
    assert resp.status_code == 201, resp.text
    assert resp.json()["subtotal"] == str(MAX_LINE_AMOUNT * MAX_MANUAL_LINES) + ".00"
    discount = {"description": "Discount", "quantity": "2", "unit_price": "-0.005"}
    ok = _raise(client, acme, {"description": "Seat", "unit_price": 12.5}, discount)
    assert ok.status_code == 201, ok.text
    assert ok.json()["subtotal"] == "12.49"
