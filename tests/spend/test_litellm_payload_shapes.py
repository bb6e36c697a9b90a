"""LiteLLM's payload is read field by field from untyped JSON (`LiteLLMPayloadIn` takes `Any`):
a field of an unexpected shape is ignored, never a server error (found by the API fuzz test:
`request_tags: true` answered 500)."""

from __future__ import annotations

from typing import Any

import pytest

from tenantry.spend.litellm_payload import call_of

ODD_VALUES: list[Any] = [True, 1, 1e308 * 10, "text", {"a": 1}, [None, 3], None]


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
@pytest.mark.parametrize(
    "field", ["request_tags", "prompt_tokens", "completion_tokens", "metadata", "error_information"]
)
def test_a_field_of_another_shape_is_ignored(field: str, value: Any) -> None:
    call = call_of({"id": "call-1", "model": "gpt-4o", field: value}, team=None)
    assert call.id == "call-1"
    assert call.input_tokens >= 0 and call.output_tokens >= 0


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_names_in_the_metadata_are_read_only_as_text(value: Any) -> None:
    names = {"tenantry_team": value, "tenantry_user": value, "tenantry_reservation_id": value}
    call = call_of({"id": "call-1", "metadata": {"requester_metadata": names}}, team=None)
    expected = value if isinstance(value, str) else None
    assert (call.team, call.user, call.reservation_id) == (expected, expected, expected)


def test_tags_are_read_from_a_list() -> None:
    call = call_of({"id": "c", "request_tags": ["env:prod", "tier:gold"]}, team=None)
    assert call.tags == {"env": "prod", "tier": "gold"}
