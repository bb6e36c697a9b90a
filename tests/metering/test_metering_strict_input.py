"""The hot lanes (usage events, admission, settle) parse their own bodies for speed and are held to
the same input rules as every route: JSON only with a JSON content type (415), quantities as JSON
numbers or decimal strings written as one (no `"1_000"`, `" 1 "` or `"-0"`), timestamps as
RFC 3339 strings with a zone (an integer was read as epoch seconds). Each refusal writes nothing.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import Factory, Tenant, assert_problem, count_rows
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database

EVENTS = "/api/v1/usage/events"
ADMIT = "/api/v1/admission"


@pytest.fixture
def acme(factory: Factory) -> Tenant:
    return factory.tenant("Acme")


def _event(acme: Tenant, clock: FrozenClock, **fields: Any) -> dict[str, Any]:
    return {
        "id": "e-1",
        "meter": "llm_input_tokens",
        "quantity": "10",
        "timestamp": clock.now().isoformat(),
        "team": acme.team_id,
        **fields,
    }


def _post_raw(client: TestClient, acme: Tenant, path: str, raw: bytes, content_type: str) -> Any:
    headers = {**acme.headers, "Content-Type": content_type}
    return client.post(path, content=raw, headers=headers)


def test_usage_events_sent_as_text_plain_are_415_and_write_nothing(
    client: TestClient, acme: Tenant, clock: FrozenClock, database: Database
) -> None:
    before = count_rows(database)
    raw = json.dumps(_event(acme, clock)).encode()
    assert_problem(
        _post_raw(client, acme, EVENTS, raw, "text/plain"), 415, "unsupported_media_type"
    )
    assert count_rows(database) == before


def test_usage_events_sent_as_a_form_are_415_and_write_nothing(
    client: TestClient, acme: Tenant, clock: FrozenClock, database: Database
) -> None:
    before = count_rows(database)
    form = f"id=e-1&meter=llm_input_tokens&quantity=10&timestamp={clock.now().isoformat()}"
    resp = _post_raw(client, acme, EVENTS, form.encode(), "application/x-www-form-urlencoded")
    assert_problem(resp, 415, "unsupported_media_type")
    assert count_rows(database) == before


def test_admission_sent_as_text_plain_or_a_form_is_415_and_writes_nothing(
    client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    raw = json.dumps({"team": acme.team_id, "action": "llm.generate"}).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        resp = _post_raw(client, acme, ADMIT, raw, content_type)
        assert_problem(resp, 415, "unsupported_media_type")
    assert count_rows(database) == before


@pytest.mark.parametrize(
    ("quantity", "why"),
    [("1_000", "underscores"), (" 1 ", "spaces"), ("-0", "minus zero"), ("+1", "plus"),
     ("1.", "bare point"), ("0x10", "hexadecimal"), ("\u0661", "other digits"), (True, "boolean")],
    ids=["underscores", "spaces", "minus-zero", "plus", "bare-point", "hex", "arabic", "bool"],
)  # fmt: skip
def test_a_quantity_not_written_as_a_decimal_is_422_and_writes_nothing(
    client: TestClient,
    acme: Tenant,
    clock: FrozenClock,
    database: Database,
    quantity: Any,
    why: str,
) -> None:
    before = count_rows(database)
    one = client.post(EVENTS, headers=acme.headers, json=_event(acme, clock, quantity=quantity))
    body = assert_problem(one, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["body", "event", "quantity"], (why, body)
    batch = {"events": [_event(acme, clock, id="ok"), _event(acme, clock, quantity=quantity)]}
    many = client.post(EVENTS, headers=acme.headers, json=batch)
    body = assert_problem(many, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["body", "batch", "events", 1, "quantity"], (why, body)
    assert count_rows(database) == before


def test_quantities_as_numbers_and_decimal_strings_are_read(
    client: TestClient, acme: Tenant, clock: FrozenClock
) -> None:
    quantities = [10, 2.5, "7", "0.125", "1e2", "1200"]
    events = [_event(acme, clock, id=f"q{n}", quantity=q) for n, q in enumerate(quantities)]
    resp = client.post(EVENTS, headers=acme.headers, json={"events": events})
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == len(quantities)


@pytest.mark.parametrize(
    "timestamp",
    [1_700_000_000, "1700000000", "2026-01-01", "2026-01-01T00:00:00", "2026-01-01 00:00:00Z",
     "2026-01-01T00:00Z", "yesterday"],
    ids=["integer", "integer-string", "date", "no-zone", "space", "no-seconds", "word"],
)  # fmt: skip
def test_a_timestamp_not_in_rfc3339_is_422_and_writes_nothing(
    client: TestClient, acme: Tenant, clock: FrozenClock, database: Database, timestamp: Any
) -> None:
    before = count_rows(database)
    resp = client.post(EVENTS, headers=acme.headers, json=_event(acme, clock, timestamp=timestamp))
    body = assert_problem(resp, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["body", "event", "timestamp"], body
    assert "RFC 3339" in body["detail"], body
    assert count_rows(database) == before


def test_rfc3339_timestamps_in_any_zone_are_read(
    client: TestClient, acme: Tenant, clock: FrozenClock
) -> None:
    now = clock.now()
    stamps = [
        now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        now.isoformat(),
        (now - timedelta(minutes=1)).astimezone().isoformat(),
        now.strftime("%Y-%m-%dt%H:%M:%S.%fz"),
    ]
    events = [_event(acme, clock, id=f"t{n}", timestamp=t) for n, t in enumerate(stamps)]
    resp = client.post(EVENTS, headers=acme.headers, json={"events": events})
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == len(stamps), resp.json()


def test_an_admission_estimate_or_a_settled_quantity_not_written_as_a_decimal_is_422(
    client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    admit = {
        "team": acme.team_id,
        "action": "llm.generate",
        "estimate": {"llm_input_tokens": "1_000"},
    }
    body = assert_problem(client.post(ADMIT, headers=acme.headers, json=admit), 422)
    assert body["errors"][0]["loc"] == ["body", "estimate", "llm_input_tokens"], body
    assert count_rows(database) == before
    allowed = client.post(
        ADMIT, headers=acme.headers, json={**admit, "estimate": {"llm_input_tokens": "1000"}}
    )
    assert allowed.status_code == 200 and allowed.json()["decision"] == "allow", allowed.text
    reservation = allowed.json()["reservation_id"]
    before = count_rows(database)
    settle = client.post(
        f"{ADMIT}/{reservation}/settle",
        headers=acme.headers,
        json={"usage": {"llm_input_tokens": " 900"}},
    )
    body = assert_problem(settle, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["body", "usage", "llm_input_tokens"], body
    assert count_rows(database) == before
