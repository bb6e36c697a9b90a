"""LiteLLM through Tenantry: admission before a call (budgets, quotas, rate limits), the call
reported after it (tokens, cost, latency, outcome), charged to a team.

    from tenantry.client import Client
    from tenantry.integrations.litellm import TenantryCallback

    tenantry = TenantryCallback(Client(url, api_key), team="team_...")
    litellm.callbacks = [tenantry]
    reply = tenantry.completion(model="gpt-4o-mini", messages=[...])   # admitted, then reported

Where LiteLLM lets a callback refuse a call, the callback asks admission itself: a `Router`'s
deployments (`async_filter_deployments`) and the proxy (`async_pre_call_hook`). A plain
`litellm.completion` gives callbacks no such say, so `TenantryCallback.completion` (and
`acompletion`) ask first and pass the reservation along; a plain call without them is still
reported and charged, only not admitted beforehand. A refusal raises `AdmissionDenied` (402,
which LiteLLM's router does not retry), naming the budget that decided.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import litellm
from litellm.integrations.custom_logger import CustomLogger

from tenantry.client.sync import Client

RESERVATION = "tenantry_reservation_id"
MICRO = Decimal("0.000001")


class AdmissionDenied(Exception):
    """Tenantry refused the call; `reasons` say why (`budget_exceeded` names its budget)."""

    status_code = 402

    def __init__(self, reasons: list[dict[str, Any]]) -> None:
        self.reasons = reasons
        detail = "; ".join(str(r.get("detail") or r.get("code")) for r in reasons)
        super().__init__(f"Tenantry refused the call: {detail}")


def _provider(model: str, given: str | None) -> str:
    if given:
        return given
    try:
        return str(litellm.get_llm_provider(model)[1])
    except Exception:  # an unknown model: the prefix, if any
        return model.split("/", 1)[0] if "/" in model else "unknown"


def _cost(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return str(Decimal(str(value)).quantize(MICRO, rounding=ROUND_HALF_EVEN))
    except (InvalidOperation, ValueError):
        return None


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError):
        return None


class TenantryCallback(CustomLogger):
    """Admission before LiteLLM calls and a report after each, for one team."""

    def __init__(
        self,
        client: Client,
        team: str,
        *,
        action: str = "llm.generate",
        expected_output_tokens: int = 1024,
        on_reported: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.team = team
        self.action = action
        self.expected_output_tokens = expected_output_tokens
        self.on_reported = on_reported

    # ---- before ----

    def admit(
        self,
        model: str,
        messages: list[Any] | None = None,
        *,
        provider: str | None = None,
        max_tokens: int | None = None,
    ) -> str | None:
        """Ask admission for a call of `model` with `messages`; its reservation id. The estimate
        is the prompt's tokens (LiteLLM's counter) and `max_tokens` (or the expected output)."""
        try:
            prompt = int(litellm.token_counter(model=model, messages=messages or []))
        except Exception:
            prompt = 0
        decided = self.client.admit(
            self.team,
            self.action,
            estimate={
                "llm_input_tokens": prompt,
                "llm_output_tokens": max_tokens or self.expected_output_tokens,
            },
            provider=_provider(model, provider),
            model_name=model,
        )
        if not decided.allowed:
            raise AdmissionDenied(decided.reasons)
        return decided.reservation_id

    def completion(self, **kwargs: Any) -> Any:
        """`litellm.completion`, admitted first."""
        self._admit_into(kwargs)
        return litellm.completion(**kwargs)

    async def acompletion(self, **kwargs: Any) -> Any:
        """`litellm.acompletion`, admitted first."""
        await asyncio.to_thread(self._admit_into, kwargs)
        return await litellm.acompletion(**kwargs)

    def _admit_into(self, kwargs: dict[str, Any]) -> None:
        reservation = self.admit(
            str(kwargs["model"]),
            kwargs.get("messages"),
            provider=kwargs.get("custom_llm_provider"),
            max_tokens=kwargs.get("max_tokens"),
        )
        kwargs["metadata"] = {**(kwargs.get("metadata") or {}), RESERVATION: reservation}

    async def async_filter_deployments(
        self,
        model: str,
        healthy_deployments: list[Any],
        messages: list[Any] | None,
        request_kwargs: dict[str, Any] | None = None,
        parent_otel_span: Any = None,
    ) -> list[Any]:
        """A `Router`'s hook before it calls a deployment: admission, the reservation carried
        in the request's metadata; a refusal stops the call."""
        if request_kwargs is not None and RESERVATION not in (request_kwargs.get("metadata") or {}):
            params = (
                (healthy_deployments[0].get("litellm_params") or {}) if healthy_deployments else {}
            )
            target = str(params.get("model") or model)
            reservation = await asyncio.to_thread(
                self.admit, target, messages, max_tokens=request_kwargs.get("max_tokens")
            )
            metadata = request_kwargs.setdefault("metadata", {})
            metadata[RESERVATION] = reservation
        return healthy_deployments

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: Any
    ) -> dict[str, Any]:
        """The proxy's hook before each request: admission; a refusal is the request's error."""
        reservation = await asyncio.to_thread(
            self.admit, str(data.get("model")), data.get("messages"),
            max_tokens=data.get("max_tokens"),
        )  # fmt: skip
        data.setdefault("metadata", {})[RESERVATION] = reservation
        return data

    # ---- after ----

    def call_of(self, kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
        """The LLM call LiteLLM's logging kwargs describe, as `record_llm_calls` takes it."""
        slo = kwargs.get("standard_logging_object") or {}
        call_id = slo.get("id") or kwargs.get("litellm_call_id")
        if not call_id:
            return None
        metadata = (kwargs.get("litellm_params") or {}).get("metadata") or {}
        usage = (slo.get("metadata") or {}).get("usage_object") or {}
        cached = ((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0
        start, end = _moment(slo.get("startTime")), _moment(slo.get("endTime"))
        failed = slo.get("status") == "failure"
        model = str(slo.get("model") or kwargs.get("model") or "unknown")
        input_tokens = int(slo.get("prompt_tokens") or 0)
        output_tokens = int(slo.get("completion_tokens") or 0)
        cost = _cost(slo.get("response_cost"))
        if cost is not None and Decimal(cost) == 0 and (input_tokens or output_tokens):
            cost = None  # LiteLLM had no price for it: Tenantry's table prices it
        call: dict[str, Any] = {
            "id": str(call_id)[:100],
            "team": self.team,
            "provider": _provider(model, slo.get("custom_llm_provider")),
            "model": model,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cached_input_tokens": min(int(cached), input_tokens),
            "status": "error" if failed else "success",
        }
        if cost is not None:
            call["cost"] = cost
        if start and end and end >= start:
            call["latency_ms"] = int((end - start).total_seconds() * 1000)
        if end:
            call["timestamp"] = end.isoformat()
        if failed:
            kind = (slo.get("error_information") or {}).get("error_class")
            if kind:
                call["error_kind"] = str(kind)[:64]
        if metadata.get(RESERVATION):
            call["reservation_id"] = metadata[RESERVATION]
        return call

    def report(self, kwargs: Mapping[str, Any]) -> None:
        call = self.call_of(kwargs)
        if call is None:
            return
        self.client.record_llm_calls([call])
        if self.on_reported is not None:
            self.on_reported(call)

    def log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.report(kwargs)

    def log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.report(kwargs)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        await asyncio.to_thread(self.report, kwargs)

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        await asyncio.to_thread(self.report, kwargs)
