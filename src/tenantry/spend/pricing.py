"""The price table: $ per million input, output and cached input tokens of each provider's
models, from a date on, with a substitution class (models one could use instead of another).

Three layers, each a list of dated entries; the price of a model at a moment is the entry of the
highest layer that has one in force then (the latest `effective_from` at or before it):

1. the org's own rates (negotiated discounts), `llm_org_prices`;
2. what the deployment's operators imported (`tenantry prices import FILE`), `llm_prices`;
3. the list shipped with Tenantry, `spend/prices.json`.

Layers 2 and 3 are one list (on the same date, an imported entry wins). A cost is worked out once
per call and rounded half-even to the millionth of a dollar, the unit every sum of spend is kept
in, so that every view adds up to exactly the calls' costs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from importlib import resources
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tenantry.spend.models import OrgPrice, Price

MILLION = Decimal(1_000_000)
MICRO = Decimal("0.000001")

# How LiteLLM and the providers' SDKs name a provider, as the price table does.
PROVIDER_ALIASES: dict[str, str] = {
    "gemini": "google",
    "vertex_ai": "google",
    "vertex_ai_beta": "google",
    "google_ai_studio": "google",
    "meta_llama": "meta",
    "cohere_chat": "cohere",
    "mistralai": "mistral",
    "text-completion-openai": "openai",
}
_DATED = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")  # gpt-4o-2024-08-06, claude-...-20250514


def provider_name(provider: str) -> str:
    """A provider as the price table names it (`gemini` is google's)."""
    name = provider.strip().lower()
    return PROVIDER_ALIASES.get(name, name)


def model_candidates(provider: str, model: str) -> list[str]:
    """The names a model is looked up by, most exact first: as given; without a `provider/`
    prefix (LiteLLM's `anthropic/claude-...`); without a date suffix (`gpt-4o-2024-08-06`)."""
    names = [model]
    if "/" in model:
        names.append(model.split("/", 1)[1])
    for name in list(names):
        undated = _DATED.sub("", name)
        if undated != name:
            names.append(undated)
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class PriceEntry:
    provider: str
    model: str
    effective_from: datetime
    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal | None
    substitution_class: str
    source: str  # "org" | "imported" | "shipped"
    id: str | None = None  # an org price's id

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int) -> Decimal:
        """The cost of a call in dollars, to the millionth (cached tokens are among the input
        tokens, at the cached rate when the model has one)."""
        cached_rate = self.cached_input_per_million
        if cached_rate is None:
            cached_rate = self.input_per_million
        total = (
            Decimal(input_tokens - cached_input_tokens) * self.input_per_million
            + Decimal(cached_input_tokens) * cached_rate
            + Decimal(output_tokens) * self.output_per_million
        ) / MILLION
        return total.quantize(MICRO, rounding=ROUND_HALF_EVEN)


def entry_from_json(item: Mapping[str, Any], *, source: str) -> PriceEntry:
    """An entry of a price file (the shipped one, or one imported); ValueError if malformed."""
    try:
        at = datetime.fromisoformat(str(item["effective_from"]).replace("Z", "+00:00"))
        cached = item.get("cached_input_per_million")
        entry = PriceEntry(
            provider=provider_name(str(item["provider"])),
            model=str(item["model"]),
            effective_from=at.astimezone(UTC),
            input_per_million=Decimal(str(item["input_per_million"])),
            output_per_million=Decimal(str(item["output_per_million"])),
            cached_input_per_million=None if cached is None else Decimal(str(cached)),
            substitution_class=str(item.get("substitution_class") or "unclassified"),
            source=source,
        )
    except (KeyError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"bad price entry {dict(item)!r}: {exc}") from None
    return entry


@cache
def shipped() -> tuple[PriceEntry, ...]:
    """The list shipped in the package."""
    text = resources.files("tenantry.spend").joinpath("prices.json").read_text()
    return tuple(entry_from_json(item, source="shipped") for item in json.loads(text)["prices"])


def _from_price(row: Price) -> PriceEntry:
    return PriceEntry(
        row.provider, row.model, row.effective_from, row.input_per_million,
        row.output_per_million, row.cached_input_per_million, row.substitution_class, "imported",
    )  # fmt: skip


def _from_org_price(row: OrgPrice) -> PriceEntry:
    return PriceEntry(
        row.provider, row.model, row.effective_from, row.input_per_million,
        row.output_per_million, row.cached_input_per_million, row.substitution_class, "org",
        row.id,
    )  # fmt: skip


def _in_force(entries: Iterable[PriceEntry], at: datetime) -> PriceEntry | None:
    rank = {"shipped": 0, "imported": 1, "org": 2}
    found = [e for e in entries if e.effective_from <= at]
    return max(found, key=lambda e: (e.effective_from, rank[e.source]), default=None)


class PriceBook:
    """The prices an org's requests see, loaded once for the models they name."""

    def __init__(self, session: Session, org_id: str | None, models: Iterable[tuple[str, str]]):
        wanted = {name for p, m in models for name in model_candidates(p, m)}
        self._deployment: dict[tuple[str, str], list[PriceEntry]] = {}
        self._org: dict[tuple[str, str], list[PriceEntry]] = {}
        for entry in shipped():
            if entry.model in wanted:
                self._deployment.setdefault((entry.provider, entry.model), []).append(entry)
        if not wanted:
            return
        for row in session.scalars(select(Price).where(Price.model.in_(sorted(wanted)))):
            self._deployment.setdefault((row.provider, row.model), []).append(_from_price(row))
        if org_id is not None:
            query = select(OrgPrice).where(
                OrgPrice.org_id == org_id, OrgPrice.model.in_(sorted(wanted))
            )
            for org_row in session.scalars(query):
                key = (org_row.provider, org_row.model)
                self._org.setdefault(key, []).append(_from_org_price(org_row))

    def price(self, provider: str, model: str, at: datetime) -> PriceEntry | None:
        """The price in force at `at` (None: the model has none then)."""
        provider = provider_name(provider)
        for name in model_candidates(provider, model):
            own = _in_force(self._org.get((provider, name), ()), at)
            if own is not None:
                return own
            listed = _in_force(self._deployment.get((provider, name), ()), at)
            if listed is not None:
                return listed
        return None


def deployment_entries(session: Session) -> list[PriceEntry]:
    """Every entry of the shipped list and of the imported table."""
    imported = [_from_price(row) for row in session.scalars(select(Price))]
    return [*shipped(), *imported]


def org_entries(session: Session, org_id: str) -> list[PriceEntry]:
    query = select(OrgPrice).where(OrgPrice.org_id == org_id).order_by(OrgPrice.id)
    return [_from_org_price(row) for row in session.scalars(query)]


def current(entries: Iterable[PriceEntry], at: datetime) -> list[PriceEntry]:
    """The entry in force at `at` for each (provider, model), sorted."""
    by_model: dict[tuple[str, str], list[PriceEntry]] = {}
    for entry in entries:
        by_model.setdefault((entry.provider, entry.model), []).append(entry)
    found = [_in_force(group, at) for group in by_model.values()]
    return sorted((e for e in found if e is not None), key=lambda e: (e.provider, e.model))
