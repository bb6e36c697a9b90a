"""LiteLLM's standard logging payload (`StandardLoggingPayload`, what its generic logging
callback sends, one object or a list) as LLM calls.

What is read: `id`, `model`, `custom_llm_provider`, `prompt_tokens`, `completion_tokens`, the
cached tokens of `metadata.usage_object.prompt_tokens_details`, `response_cost`, `startTime` and
`endTime` (seconds since the epoch), `status` and `error_information.error_class`,
`request_tags` (`name:value` each), and from the request's metadata (`metadata.requester_metadata`
or `metadata.spend_logs_metadata`) `tenantry_team`, `tenantry_user`, `tenantry_reservation_id` and
`tenantry_data_classification`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from tenantry.spend.calls import IncomingCall
from tenantry.spend.pricing import MICRO


def _metadata(payload: Mapping[str, Any]) -> dict[str, Any]:
    meta = payload.get("metadata") or {}
    found: dict[str, Any] = {}
    for part in ("spend_logs_metadata", "requester_metadata"):
        value = meta.get(part) if isinstance(meta, Mapping) else None
        if isinstance(value, Mapping):
            found.update(value)
    return found


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float
        return 0


def _cached(payload: Mapping[str, Any]) -> int:
    meta = payload.get("metadata") or {}
    usage = meta.get("usage_object") if isinstance(meta, Mapping) else None
    details = usage.get("prompt_tokens_details") if isinstance(usage, Mapping) else None
    return _int(details.get("cached_tokens")) if isinstance(details, Mapping) else 0


def _cost(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        cost = Decimal(str(value)).quantize(MICRO, rounding=ROUND_HALF_EVEN)
    except (InvalidOperation, ValueError):
        return None
    return cost if cost.is_finite() and cost >= 0 else None


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _text(value: Any) -> str | None:
    # The payload's fields are untyped (`Any`): a name is read only where a string is sent.
    return value if isinstance(value, str) else None


def _level(value: Any) -> str | None:
    """A classification level as the API reads one (lower case); anything else is left out."""
    if not isinstance(value, str):
        return None
    level = value.strip().lower()
    return level if re.fullmatch(r"[a-z][a-z0-9_.-]{0,63}", level) else None


def _tags(payload: Mapping[str, Any]) -> dict[str, str]:
    tags: dict[str, str] = {}
    listed = payload.get("request_tags")
    for tag in listed if isinstance(listed, list) else []:
        name, _, value = str(tag).partition(":")
        if name and len(tags) < 16:
            tags[name[:64]] = value[:256]
    return tags


def call_of(payload: Mapping[str, Any], *, team: str | None) -> IncomingCall:
    """The call a payload reports; `team` (the route's query) wins over the metadata's."""
    meta = _metadata(payload)
    start, end = _moment(payload.get("startTime")), _moment(payload.get("endTime"))
    latency = None
    if start is not None and end is not None and end >= start:
        latency = int((end - start).total_seconds() * 1000)
    failed = payload.get("status") == "failure"
    error = payload.get("error_information") or {}
    input_tokens = _int(payload.get("prompt_tokens"))
    output_tokens = _int(payload.get("completion_tokens"))
    cost = _cost(payload.get("response_cost"))
    if cost == 0 and (input_tokens or output_tokens) and not failed:
        cost = None  # LiteLLM knew no price: priced from the table, or flagged unpriced
    return IncomingCall(
        id=str(payload.get("id") or "")[:100],
        team=team or _text(meta.get("tenantry_team")),
        user=_text(meta.get("tenantry_user")),
        api_key=None,
        provider=str(payload.get("custom_llm_provider") or "unknown")[:64],
        model=str(payload.get("model") or "unknown")[:128],
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=min(_cached(payload), input_tokens),
        cost=cost,
        latency_ms=latency,
        status="error" if failed else "success",
        error_kind=(
            str(error.get("error_class"))[:64]
            if isinstance(error, Mapping) and error.get("error_class")
            else None
        ),
        timestamp=end,
        tags=_tags(payload),
        reservation_id=_text(meta.get("tenantry_reservation_id")),
        data_classification=_level(meta.get("tenantry_data_classification")),
    )
