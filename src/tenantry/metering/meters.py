"""Meters, as data: what can be measured, in which unit, how events combine, when totals reset.

A usage event names a meter. How its quantity counts depends on the meter's aggregation:

- `sum`: quantities add up (tokens, compute hours, dollars, API calls);
- `count`: each event counts 1, whatever its quantity (generations);
- `max` / `latest`: the largest / most recent quantity (gauges);
- `unique_count`: each distinct value of one dimension counts once per reset period
  (AI sessions, by `session_id`);
- `time_weighted_sum`: quantities are changes of a level (GB stored: +5 when written, -2 when
  deleted) and the total is the level integrated over time, in unit-months (GB-months).

Quantities are decimals with at most `QUANTITY_DECIMALS` places, stored as integers of
millionths so that sums are exact on SQLite as on PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final

from tenantry.plans.catalog import Period

QUANTITY_DECIMALS: Final = 6
QUANTITY_SCALE: Final = 10**QUANTITY_DECIMALS
# |quantity| of one event; keeps every sum of a period far inside a 64-bit integer of millionths.
MAX_EVENT_QUANTITY: Final = Decimal(10) ** 12
# A "month" of a time-weighted meter, as cloud storage bills it (730 hours = 8760 / 12).
SECONDS_PER_UNIT_MONTH: Final = 730 * 3600


class Aggregation(StrEnum):
    SUM = "sum"
    COUNT = "count"
    MAX = "max"
    LATEST = "latest"
    UNIQUE_COUNT = "unique_count"
    TIME_WEIGHTED_SUM = "time_weighted_sum"


# Aggregations whose per-period totals add up event by event, so a quota can count them.
ADDITIVE: Final = frozenset(
    {Aggregation.SUM, Aggregation.COUNT, Aggregation.UNIQUE_COUNT, Aggregation.TIME_WEIGHTED_SUM}
)


@dataclass(frozen=True)
class Meter:
    key: str
    unit: str
    aggregation: Aggregation
    reset: Period
    description: str
    # For `unique_count`: the dimension whose distinct values are counted.
    unique_by: str | None = None

    @property
    def additive(self) -> bool:
        return self.aggregation in ADDITIVE

    @property
    def signed(self) -> bool:
        """Whether events may carry negative quantities (a level going down)."""
        return self.aggregation is Aggregation.TIME_WEIGHTED_SUM


METERS: Final[dict[str, Meter]] = {
    meter.key: meter
    for meter in (
        Meter("api_calls", "calls", Aggregation.SUM, Period.DAY, "Requests to the API"),
        Meter("compute_hours", "hours", Aggregation.SUM, Period.MONTH, "Compute time used"),
        Meter(
            "storage_gb",
            "GB",
            Aggregation.TIME_WEIGHTED_SUM,
            Period.NONE,
            "Storage held: events are changes in GB; totals are GB-months",
        ),
        Meter("generations", "generations", Aggregation.COUNT, Period.MONTH, "AI generations"),
        Meter("llm_input_tokens", "tokens", Aggregation.SUM, Period.MONTH, "LLM prompt tokens"),
        Meter(
            "llm_output_tokens", "tokens", Aggregation.SUM, Period.MONTH, "LLM completion tokens"
        ),
        Meter("llm_cost_usd", "usd", Aggregation.SUM, Period.MONTH, "LLM spend in US dollars"),
        Meter(
            "ai_sessions",
            "sessions",
            Aggregation.UNIQUE_COUNT,
            Period.MONTH,
            "Distinct AI sessions (by the `session_id` dimension)",
            unique_by="session_id",
        ),
    )
}


def meter_of(key: str) -> Meter | None:
    return METERS.get(key)


def to_micros(quantity: Decimal) -> int:
    """A quantity as an integer of millionths; ValueError if it has more decimal places."""
    scaled = quantity * QUANTITY_SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"at most {QUANTITY_DECIMALS} decimal places")
    return int(scaled)


def from_micros(micros: int) -> Decimal:
    return (Decimal(micros) / QUANTITY_SCALE).quantize(Decimal(1).scaleb(-QUANTITY_DECIMALS))
