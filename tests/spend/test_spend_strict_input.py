"""LLM calls (another high-volume body) and prices follow the API's input rules: money as a JSON
number or a decimal string written as one, times as RFC 3339 strings with a zone, JSON only with a
JSON content type. Each refusal is a 422 (or 415) naming the field, and writes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import Factory, Tenant, assert_problem, count_rows
from tenantry.kit.db import Database

CALLS = "/api/v1/llm-calls"


@pytest.fixture
def acme(factory: Factory) -> Tenant:
    return factory.tenant("Acme")


def _call(acme: Tenant, **fields: Any) -> dict[str, Any]:
    return {"id": "c1", "team": acme.team_id, "provider": "openai", "model": "gpt-4o-mini",
            "input_tokens": 10, **fields}  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [("cost", "1_000"), ("cost", " 0.5"), ("cost", "-0"), ("cost", "0.0000001"),
     ("timestamp", 1_700_000_000), ("timestamp", "2026-01-01T00:00:00")],
    ids=["underscores", "space", "minus-zero", "too-precise", "epoch", "no-zone"],
)  # fmt: skip
def test_an_llm_call_with_money_or_time_not_written_as_documented_is_422(
    client: TestClient, acme: Tenant, database: Database, field: str, value: Any
) -> None:
    before = count_rows(database)
    resp = client.post(CALLS, headers=acme.headers, json=_call(acme, **{field: value}))
    body = assert_problem(resp, 422, "validation_error")
    assert any(e["loc"][-1] == field for e in body["errors"]), body
    assert count_rows(database) == before


def test_llm_calls_sent_as_text_are_415(
    client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    resp = client.post(
        CALLS,
        headers={**acme.headers, "Content-Type": "text/plain"},
        content=json.dumps(_call(acme)),
    )
    assert_problem(resp, 415, "unsupported_media_type")
    assert count_rows(database) == before
