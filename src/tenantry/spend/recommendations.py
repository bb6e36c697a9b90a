"""Savings recommendations in seed 001's shape (`cost_optimization_opportunities:
{potential_savings, recommendations: [...]}`), worked out from the hourly rollups of a window
(30 days by default) and the org's price table. Each recommendation carries the numbers it was
computed from (`basis`).

Four kinds, per (provider, model) seen in the window:

- `model_optimization`: the cheapest other model of the same provider and substitution class,
  priced on the observed token mix (input, cached input, output);
- `provider_switch`: the same model at a cheaper provider, or else the cheapest model of the same
  class at another provider;
- `prompt_caching`: long prompts (1,024 tokens or more on average, which providers cache) sent
  100 times or more with under 10 % of their input tokens cached, on a model with a cached rate:
  half of the uncached input tokens assumed repeated and read at the cached rate;
- `batching`: bursty traffic (the busiest tenth of the active hours carry half the calls or
  more) on a provider with a batch API: those hours' cost at the batch discount (50 %).

Savings are the price table's cost of the mix now less the alternative, scaled from the window
to 30 days. `potential_savings` counts each model's largest recommendation only: the others are
alternatives to it, not additions. Priority by share of the window's cost: 10 % or more `high`,
2 % or more `medium`, else `low`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy.orm import Session

from tenantry.kit.money import plain
from tenantry.spend import pricing, repository

MONTH_DAYS = Decimal(30)
CACHE_MIN_PROMPT = 1024
CACHE_MIN_REQUESTS = 100
CACHE_MAX_SHARE = Decimal("0.1")
CACHE_ASSUMED_HIT = Decimal("0.5")
BATCH_PROVIDERS = frozenset({"openai", "anthropic", "google", "mistral"})
BATCH_DISCOUNT = Decimal("0.5")
BATCH_MIN_REQUESTS = 100
BATCH_BUSY_SHARE = Decimal("0.5")
MIN_SAVING_SHARE = Decimal("0.05")  # an alternative must save 5 % of the model's cost at least
EFFORT = {
    "provider_switch": "easy",
    "model_optimization": "moderate",
    "prompt_caching": "moderate",
    "batching": "hard",
}
CENT = Decimal("0.01")


@dataclass
class ModelUse:
    """What one (provider, model) did in the window."""

    provider: str
    model: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost: Decimal = Decimal(0)
    hourly: list[tuple[int, Decimal]] = field(default_factory=list)  # (requests, cost) per hour


def usage_by_model(rows: Sequence[repository.SeriesRow]) -> dict[tuple[str, str], ModelUse]:
    """Rows of `rollup_series` grouped by (provider, model), summed per model."""
    found: dict[tuple[str, str], ModelUse] = {}
    for row in rows:
        key = (row.keys[0], row.keys[1])
        use = found.setdefault(key, ModelUse(*key))
        use.requests += row.requests
        use.input_tokens += row.input_tokens
        use.output_tokens += row.output_tokens
        use.cached_input_tokens += row.cached_input_tokens
        use.cost += row.cost
        use.hourly.append((row.requests, row.cost))
    return found


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def _mix_cost(entry: pricing.PriceEntry, use: ModelUse) -> Decimal:
    return entry.cost(use.input_tokens, use.output_tokens, use.cached_input_tokens)


def _switch(
    use: ModelUse,
    own: pricing.PriceEntry,
    candidates: Sequence[pricing.PriceEntry],
    *,
    category: str,
    scale: Decimal,
) -> dict[str, Any] | None:
    """The cheapest candidate on the observed mix, if it saves enough."""
    current = _mix_cost(own, use)
    best = min(candidates, key=lambda e: (_mix_cost(e, use), e.provider, e.model), default=None)
    if best is None or current <= 0:
        return None
    alternative = _mix_cost(best, use)
    if current - alternative < current * MIN_SAVING_SHARE:
        return None
    same_model = best.model == own.model
    return {
        "category": category,
        "suggested_provider": best.provider,
        "suggested_model": best.model,
        "title": (
            f"Use {best.model} at {best.provider} instead of {own.provider}"
            if same_model
            else f"Use {best.provider}/{best.model} instead of {own.provider}/{own.model}"
        ),
        "saving": (current - alternative) * scale,
        "basis": {
            "substitution_class": own.substitution_class,
            "current_cost": plain(current),
            "alternative_cost": plain(alternative),
            "current_price": _price(own),
            "alternative_price": _price(best),
        },
    }


def _price(entry: pricing.PriceEntry) -> dict[str, str | None]:
    return {
        "input_per_million": plain(entry.input_per_million),
        "output_per_million": plain(entry.output_per_million),
        "cached_input_per_million": None
        if entry.cached_input_per_million is None
        else plain(entry.cached_input_per_million),
    }


def _caching(use: ModelUse, own: pricing.PriceEntry, scale: Decimal) -> dict[str, Any] | None:
    cached_rate = own.cached_input_per_million
    if cached_rate is None or cached_rate >= own.input_per_million:
        return None
    if use.requests < CACHE_MIN_REQUESTS or use.input_tokens < CACHE_MIN_PROMPT * use.requests:
        return None
    if use.cached_input_tokens > use.input_tokens * CACHE_MAX_SHARE:
        return None
    uncached = use.input_tokens - use.cached_input_tokens
    saving = (
        Decimal(uncached) * CACHE_ASSUMED_HIT * (own.input_per_million - cached_rate) / 1_000_000
    )
    return {
        "category": "prompt_caching",
        "title": f"Cache the repeated prompt prefixes sent to {own.provider}/{own.model}",
        "saving": saving * scale,
        "basis": {
            "average_prompt_tokens": use.input_tokens // use.requests,
            "cached_share": plain(
                (Decimal(use.cached_input_tokens) / use.input_tokens).quantize(Decimal("0.0001"))
            ),
            "assumed_hit_rate": plain(CACHE_ASSUMED_HIT),
            "current_price": _price(own),
        },
    }


def _batching(use: ModelUse, scale: Decimal) -> dict[str, Any] | None:
    if use.provider not in BATCH_PROVIDERS or use.requests < BATCH_MIN_REQUESTS:
        return None
    active = sorted((h for h in use.hourly if h[0] > 0), key=lambda h: (-h[0], -h[1]))
    busiest = active[: max(1, len(active) // 10)]
    calls = sum(h[0] for h in busiest)
    if len(active) < 10 or Decimal(calls) < BATCH_BUSY_SHARE * use.requests:
        return None
    cost = sum((h[1] for h in busiest), Decimal(0))
    return {
        "category": "batching",
        "title": f"Send the bursts to {use.provider}/{use.model} through its batch API",
        "saving": cost * BATCH_DISCOUNT * scale,
        "basis": {
            "active_hours": len(active),
            "busiest_hours": len(busiest),
            "busiest_hours_requests": calls,
            "busiest_hours_cost": plain(cost),
            "batch_discount": plain(BATCH_DISCOUNT),
        },
    }


def _priority(saving: Decimal, total: Decimal) -> str:
    if total <= 0:
        return "low"
    share = saving / total
    return "high" if share >= Decimal("0.1") else "medium" if share >= Decimal("0.02") else "low"


def opportunities(
    uses: dict[tuple[str, str], ModelUse],
    book: pricing.PriceBook,
    entries: Sequence[pricing.PriceEntry],
    *,
    at: datetime,
    window_days: int,
) -> dict[str, Any]:
    """Seed 001's `cost_optimization_opportunities` for the models used in the window."""
    scale = MONTH_DAYS / Decimal(max(1, window_days))
    total = sum((u.cost for u in uses.values()), Decimal(0)) * scale
    found: list[dict[str, Any]] = []
    best_per_model: dict[tuple[str, str], Decimal] = {}
    for key in sorted(uses):
        use = uses[key]
        own = book.price(use.provider, use.model, at)
        candidates: list[dict[str, Any] | None] = []
        if own is not None:
            peers = [e for e in entries if e.substitution_class == own.substitution_class]
            same = [e for e in peers if e.provider == own.provider and e.model != own.model]
            twins = [e for e in entries if e.model == own.model and e.provider != own.provider]
            others = twins or [e for e in peers if e.provider != own.provider]
            candidates += [
                _switch(use, own, same, category="model_optimization", scale=scale),
                _switch(use, own, others, category="provider_switch", scale=scale),
                _caching(use, own, scale),
            ]
        candidates.append(_batching(use, scale))
        for item in candidates:
            if item is None or _cents(item["saving"]) <= 0:
                continue
            saving = _cents(item.pop("saving"))
            best_per_model[key] = max(best_per_model.get(key, Decimal(0)), saving)
            item["basis"] = {
                "window_days": window_days,
                "requests": use.requests,
                "input_tokens": use.input_tokens,
                "output_tokens": use.output_tokens,
                "cached_input_tokens": use.cached_input_tokens,
                "observed_cost": plain(use.cost),
                **item["basis"],
            }
            found.append(
                {
                    "id": f"{item['category']}:{use.provider}/{use.model}",
                    "priority": _priority(saving, total),
                    "category": item["category"],
                    "estimated_monthly_savings": plain(saving),
                    "implementation_effort": EFFORT[item["category"]],
                    "provider": use.provider,
                    "model": use.model,
                    **item,
                }
            )
    found.sort(key=lambda r: (-Decimal(r["estimated_monthly_savings"]), r["id"]))
    potential = sum(best_per_model.values(), Decimal(0))
    return {
        "potential_savings": plain(potential),
        "monthly_cost": plain(_cents(total)),
        "recommendations": found,
    }


def for_scope(
    session: Session,
    *,
    org_id: str,
    team_ids: Sequence[str] | None,
    since: datetime,
    until: datetime,
    now: datetime,
) -> dict[str, Any]:
    """The opportunities of a team's subtree (or the whole org) over [since, until)."""
    rows = repository.rollup_series(
        session,
        org_id=org_id,
        team_ids=team_ids,
        since=since,
        until=until,
        group=("provider", "model"),
        hourly=True,  # bursts show only hour by hour
    )
    uses = usage_by_model(rows)
    book = pricing.PriceBook(session, org_id, uses.keys())
    entries = pricing.current(
        [*pricing.deployment_entries(session), *pricing.org_entries(session, org_id)], now
    )
    days = max(1, round((until - since).total_seconds() / 86_400))
    return opportunities(uses, book, entries, at=now, window_days=days)
