"""Analytics in seed 001's shape (`usage`, `insights`, `compliance`) for a team (with the teams
under it) or a whole org, over the last N days, from the hourly rollups and the latency
histogram only.

Formulas (docs/spend.md, "Analytics"):

- cost per request: cost / priced requests; cost per 1k tokens: cost / (input + output) x 1000;
  output per input: output tokens / input tokens; success rate: 1 - errors / requests.
- latency p50/p95 per model: from the histogram, linear within the bucket the rank falls in.
- member `efficiency_score` (0-100): round(100 x (0.6 x cost efficiency + 0.4 x success rate)),
  where cost efficiency = min(1, the scope's cost per 1k tokens / the member's).
- member `activity_trend`: the requests of the window's second half against its first:
  x1.2 or more `increasing`, x0.8 or less `decreasing`, else `stable`.
- team `efficiency_score`: round(100 x (0.6 x (1 - potential savings / monthly cost) + 0.4 x
  success rate)): a team that already uses the cheapest fitting models, and whose calls
  succeed, scores 100.
- model ranking: score = round(100 x (0.5 x min(1, median cost per 1k / the model's) + 0.3 x
  success rate + 0.2 x min(1, median p95 / the model's p95))), medians over the scope's models;
  `replace` below 90 % success or where a cheaper model of its class saves 30 % or more,
  `decrease` below 97 % success, at more than twice the median cost per 1k tokens or twice the
  median p95, `increase` at 99 % success or more, no dearer and no slower than the medians,
  else `maintain`.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from statistics import median
from typing import Any

from sqlalchemy.orm import Session

from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import can
from tenantry.identity import repository as identity_repository
from tenantry.kit.errors import Unprocessable
from tenantry.kit.money import plain
from tenantry.spend import forecasts, recommendations, repository
from tenantry.spend.budgets import period_end, period_start, status_of
from tenantry.spend.calls import BUCKETS_MS
from tenantry.spend.models import BudgetPeriod
from tenantry.spend.views import rules_for

SECTIONS = ("usage", "insights", "compliance")
MAX_DAYS = 400
UNATTRIBUTED = "unattributed"
PER_REQUEST = Decimal("0.000001")


def sections(include: str | None) -> tuple[str, ...]:
    """The sections asked for (`usage,insights,compliance`, all by default)."""
    if include is None or not include.strip():
        return SECTIONS
    asked = tuple(dict.fromkeys(part.strip() for part in include.split(",") if part.strip()))
    unknown = [part for part in asked if part not in SECTIONS]
    if unknown or not asked:
        raise Unprocessable(
            f"include takes {', '.join(SECTIONS)}; not {', '.join(unknown)}",
            code="invalid_include",
        )
    return asked


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    days: int


def window(now: datetime, days: int) -> Window:
    """The last `days` days up to the end of the current hour."""
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    until = hour + timedelta(hours=1)
    return Window(until - timedelta(days=days), until, days)


@dataclass
class Sums:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost: Decimal = Decimal(0)
    unpriced: int = 0

    def add(self, row: repository.SeriesRow) -> None:
        self.requests += row.requests
        self.errors += row.errors
        self.input_tokens += row.input_tokens
        self.output_tokens += row.output_tokens
        self.cached_input_tokens += row.cached_input_tokens
        self.cost += row.cost
        self.unpriced += row.unpriced_requests

    @property
    def success_rate(self) -> float:
        return 1.0 if self.requests == 0 else round(1 - self.errors / self.requests, 4)

    @property
    def cost_per_request(self) -> Decimal:
        priced = self.requests - self.unpriced
        if priced <= 0:
            return Decimal(0)
        return (self.cost / priced).quantize(PER_REQUEST, rounding=ROUND_HALF_EVEN)

    @property
    def cost_per_1k_tokens(self) -> Decimal | None:
        tokens = self.input_tokens + self.output_tokens
        if tokens == 0:
            return None
        return (self.cost * 1000 / tokens).quantize(PER_REQUEST, rounding=ROUND_HALF_EVEN)

    def out(self) -> dict[str, Any]:
        per_1k = self.cost_per_1k_tokens
        return {
            "requests": self.requests,
            "errors": self.errors,
            "success_rate": self.success_rate,
            "cost": plain(self.cost),
            "cost_per_request": plain(self.cost_per_request),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "output_per_input": None
            if self.input_tokens == 0
            else round(self.output_tokens / self.input_tokens, 4),
            "cost_per_1k_tokens": None if per_1k is None else plain(per_1k),
        }


def percentile(buckets: dict[int, int], fraction: float) -> int | None:
    """The latency (ms) below which `fraction` of the calls fall, from histogram counts by
    bucket index (bucket b holds latencies in (BUCKETS_MS[b-1], BUCKETS_MS[b]])."""
    total = sum(buckets.values())
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for bucket in sorted(buckets):
        count = buckets[bucket]
        if seen + count >= rank:
            low = 0 if bucket == 0 else BUCKETS_MS[bucket - 1]
            if bucket >= len(BUCKETS_MS):
                return low  # the open bucket: at least this
            high = BUCKETS_MS[bucket]
            return round(low + (high - low) * (rank - seen) / count)
        seen += count
    return BUCKETS_MS[-1]


@dataclass
class Gathered:
    """The window's rollups, summed every way the views need."""

    total: Sums = field(default_factory=Sums)
    by_provider: dict[str, Sums] = field(default_factory=lambda: defaultdict(Sums))
    by_model: dict[tuple[str, str], Sums] = field(default_factory=lambda: defaultdict(Sums))
    by_member: dict[str, Sums] = field(default_factory=lambda: defaultdict(Sums))
    by_team: dict[str, Sums] = field(default_factory=lambda: defaultdict(Sums))
    member_models: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    member_halves: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    daily: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[repository.SeriesRow] = field(default_factory=list)


GROUP = ("team_id", "provider", "model", "user_id")


def gather(
    session: Session, *, org_id: str, team_ids: Sequence[str] | None, span: Window
) -> Gathered:
    rows = repository.rollup_series(
        session, org_id=org_id, team_ids=team_ids, since=span.since, until=span.until, group=GROUP
    )
    out = Gathered(rows=rows)
    middle = span.since + (span.until - span.since) / 2
    for row in rows:
        team, provider, model, member = row.keys
        member = member or UNATTRIBUTED
        out.total.add(row)
        out.by_provider[provider].add(row)
        out.by_model[(provider, model)].add(row)
        out.by_member[member].add(row)
        out.by_team[team].add(row)
        out.member_models[member][model] += row.requests
        out.member_halves[member][0 if row.hour < middle else 1] += row.requests
        day = row.hour.date().isoformat()
        entry = out.daily.setdefault(
            day,
            {
                "date": day,
                "requests": 0,
                "cost": Decimal(0),
                "by_provider": defaultdict(int),
                "by_model": defaultdict(int),
                "by_member": defaultdict(int),
            },
        )
        entry["requests"] += row.requests
        entry["cost"] += row.cost
        entry["by_provider"][provider] += row.requests
        entry["by_model"][model] += row.requests
        entry["by_member"][member] += row.requests
    return out


def _key(provider: str, model: str) -> str:
    return f"{provider}/{model}"


def _latencies(
    session: Session, *, org_id: str, team_ids: Sequence[str] | None, span: Window
) -> dict[tuple[str, str], tuple[int | None, int | None]]:
    buckets: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    for provider, model, bucket, count in repository.latency_histogram(
        session, org_id=org_id, team_ids=team_ids, since=span.since, until=span.until
    ):
        buckets[(provider, model)][bucket] = count
    return {k: (percentile(v, 0.5), percentile(v, 0.95)) for k, v in buckets.items()}


def _trend(halves: Sequence[int]) -> str:
    first, second = halves
    if first == 0:
        return "increasing" if second > 0 else "stable"
    ratio = second / first
    return "increasing" if ratio >= 1.2 else "decreasing" if ratio <= 0.8 else "stable"


def _cost_efficiency(scope: Sums, own: Sums) -> float:
    mine, theirs = own.cost_per_1k_tokens, scope.cost_per_1k_tokens
    if not mine or theirs is None:
        return 1.0
    return min(1.0, float(theirs / mine))


def member_productivity(
    data: Gathered, *, days: int, emails: dict[str, str]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for member in sorted(data.by_member, key=lambda m: (-data.by_member[m].cost, m)):
        sums = data.by_member[member]
        models = data.member_models[member]
        preferred = sorted(models, key=lambda m: (-models[m], m))[:3]
        score = 0.6 * _cost_efficiency(data.total, sums) + 0.4 * sums.success_rate
        entry: dict[str, Any] = {
            "requests": sums.requests,
            "cost": plain(sums.cost),
            "requests_per_day": round(sums.requests / days, 2),
            "cost_per_request": plain(sums.cost_per_request),
            "preferred_models": preferred,
            "efficiency_score": round(100 * score),
            "activity_trend": _trend(data.member_halves[member]),
        }
        if member in emails:
            entry["email"] = emails[member]
        out[member] = entry
    return out


def model_ranking(
    data: Gathered,
    latencies: dict[tuple[str, str], tuple[int | None, int | None]],
    savings: dict[str, Decimal],
    monthly_scale: Decimal,
) -> list[dict[str, Any]]:
    """Every model used, best first, with what to do about it (see the module's formulas)."""
    per_1k = {k: s.cost_per_1k_tokens for k, s in data.by_model.items()}
    costs = [float(v) for v in per_1k.values() if v]
    p95s = [float(v[1]) for v in latencies.values() if v[1]]
    median_cost = median(costs) if costs else None
    median_p95 = median(p95s) if p95s else None
    ranked: list[dict[str, Any]] = []
    for key, sums in data.by_model.items():
        own = per_1k[key]
        cost = float(own) if own else None
        p95 = latencies.get(key, (None, None))[1]
        cost_score = 1.0 if not cost or not median_cost else min(1.0, median_cost / cost)
        latency_score = 1.0 if not p95 or not median_p95 else min(1.0, median_p95 / p95)
        score = round(100 * (0.5 * cost_score + 0.3 * sums.success_rate + 0.2 * latency_score))
        monthly = sums.cost * monthly_scale
        saving = savings.get(_key(*key), Decimal(0))
        dear = cost is not None and median_cost is not None and cost > 2 * median_cost
        slow = p95 is not None and median_p95 is not None and p95 > 2 * median_p95
        if sums.success_rate < 0.9:
            action, reason = "replace", "under 90 % of its calls succeed"
        elif monthly > 0 and saving >= monthly * Decimal("0.3"):
            action, reason = "replace", "a model of its class does the same for 30 % less or more"
        elif sums.success_rate < 0.97 or dear or slow:
            action = "decrease"
            reason = (
                "under 97 % of its calls succeed"
                if sums.success_rate < 0.97
                else "over twice the median cost per 1k tokens"
                if dear
                else "over twice the median p95 latency"
            )
        elif (
            sums.success_rate >= 0.99
            and (cost is None or median_cost is None or cost <= median_cost)
            and (p95 is None or median_p95 is None or p95 <= median_p95)
        ):
            action, reason = "increase", "reliable, and no dearer or slower than the median"
        else:
            action, reason = "maintain", "within the usual cost, latency and success"
        ranked.append(
            {
                "provider": key[0],
                "model": key[1],
                "score": score,
                "recommendation": action,
                "reason": reason,
                "requests": sums.requests,
                "cost": plain(sums.cost),
                "cost_per_1k_tokens": None if own is None else plain(own),
                "success_rate": sums.success_rate,
                "latency_p95_ms": p95,
            }
        )
    ranked.sort(key=lambda r: (-r["score"], r["provider"], r["model"]))
    for position, entry in enumerate(ranked, start=1):
        entry["rank"] = position
    return ranked


def _emails(
    session: Session, principal: Principal, org_id: str, team_id: str | None, ids: Iterable[str]
) -> dict[str, str]:
    if not can(session, principal, Permission.MEMBER_READ, org_id=org_id, team_id=team_id):
        return {}
    users = identity_repository.users_by_ids(session, [i for i in ids if i != UNATTRIBUTED])
    return {user_id: user.email for user_id, user in users.items()}


def _usage(data: Gathered, latencies: dict[tuple[str, str], tuple[int | None, int | None]],
           emails: dict[str, str], *, org_view: bool) -> dict[str, Any]:  # fmt: skip
    by_model = {}
    for key in sorted(data.by_model):
        p50, p95 = latencies.get(key, (None, None))
        by_model[_key(*key)] = {
            "provider": key[0],
            "model": key[1],
            **data.by_model[key].out(),
            "latency_p50_ms": p50,
            "latency_p95_ms": p95,
        }
    members = {}
    for member in sorted(data.by_member):
        members[member] = data.by_member[member].out()
        if member in emails:
            members[member]["email"] = emails[member]
    daily = []
    for day in sorted(data.daily):
        entry = data.daily[day]
        daily.append(
            {
                "date": entry["date"],
                "requests": entry["requests"],
                "cost": plain(entry["cost"]),
                "by_provider": dict(sorted(entry["by_provider"].items())),
                "by_model": dict(sorted(entry["by_model"].items())),
                "by_member": dict(sorted(entry["by_member"].items())),
            }
        )
    total = data.total.out()
    usage = {
        **total,
        "total_requests": total["requests"],
        "total_cost": total["cost"],
        "token_efficiency": {
            "input_tokens": total["input_tokens"],
            "output_tokens": total["output_tokens"],
            "cached_input_tokens": total["cached_input_tokens"],
            "output_per_input": total["output_per_input"],
            "cost_per_1k_tokens": total["cost_per_1k_tokens"],
        },
        "requests_over_time": daily,
        "by_provider": {p: data.by_provider[p].out() for p in sorted(data.by_provider)},
        "by_model": by_model,
        "by_member": members,
    }
    if org_view:
        usage["by_team"] = {t: data.by_team[t].out() for t in sorted(data.by_team)}
    return usage


def view(
    session: Session,
    principal: Principal,
    *,
    org_id: str,
    team_id: str | None,
    team_ids: Sequence[str] | None,
    days: int,
    include: Sequence[str],
    now: datetime,
) -> dict[str, Any]:
    """The analytics of a team's subtree (`team_ids`) or the whole org (None)."""
    if not 1 <= days <= MAX_DAYS:
        raise Unprocessable(f"days is 1 to {MAX_DAYS}", code="invalid_days")
    span = window(now, days)
    data = gather(session, org_id=org_id, team_ids=team_ids, span=span)
    latencies = _latencies(session, org_id=org_id, team_ids=team_ids, span=span)
    emails = _emails(session, principal, org_id, team_id, data.by_member)
    out: dict[str, Any] = {
        "org_id": org_id,
        "team_id": team_id,
        "period": {"since": span.since, "until": span.until, "days": days},
        "currency": "usd",
    }
    if "usage" in include:
        out["usage"] = _usage(data, latencies, emails, org_view=team_id is None)
    if "insights" in include:
        out["insights"] = _insights(
            session, data, latencies, emails, org_id=org_id, team_ids=team_ids, span=span,
            now=now, org_view=team_id is None,
        )  # fmt: skip
    if "compliance" in include:
        out["compliance"] = _compliance(
            session, data, org_id=org_id, team_id=team_id, team_ids=team_ids, span=span, now=now
        )
    return out


def _insights(
    session: Session,
    data: Gathered,
    latencies: dict[tuple[str, str], tuple[int | None, int | None]],
    emails: dict[str, str],
    *,
    org_id: str,
    team_ids: Sequence[str] | None,
    span: Window,
    now: datetime,
    org_view: bool,
) -> dict[str, Any]:
    opportunities = recommendations.for_scope(
        session, org_id=org_id, team_ids=team_ids, since=span.since, until=span.until, now=now
    )
    savings: dict[str, Decimal] = {}
    for item in opportunities["recommendations"]:
        if item["category"] in ("model_optimization", "provider_switch"):
            key = _key(item["provider"], item["model"])
            saving = Decimal(item["estimated_monthly_savings"])
            savings[key] = max(savings.get(key, Decimal(0)), saving)
    scale = recommendations.MONTH_DAYS / span.days
    monthly = Decimal(opportunities["monthly_cost"])
    potential = Decimal(opportunities["potential_savings"])
    unspent = 1.0 if monthly <= 0 else 1 - min(1.0, float(potential / monthly))
    month = period_start(BudgetPeriod.MONTH, now)
    spent = sum(
        (
            r.cost
            for r in repository.rollup_series(
                session, org_id=org_id, team_ids=team_ids, since=month, until=span.until
            )
        ),
        Decimal(0),
    )
    out = {
        "efficiency_score": round(100 * (0.6 * unspent + 0.4 * data.total.success_rate)),
        "member_productivity": member_productivity(data, days=span.days, emails=emails),
        "model_ranking": model_ranking(data, latencies, savings, scale),
        "cost_optimization_opportunities": opportunities,
        "forecast": forecasts.forecast(
            session,
            org_id=org_id,
            team_ids=team_ids,
            spent=spent,
            now=now,
            since=month,
            until=period_end(BudgetPeriod.MONTH, month),
        ),
    }
    if org_view:
        out["team_efficiency"] = {
            team: round(100 * (0.6 * _cost_efficiency(data.total, s) + 0.4 * s.success_rate))
            for team, s in sorted(data.by_team.items())
        }
    return out


def _compliance(
    session: Session,
    data: Gathered,
    *,
    org_id: str,
    team_id: str | None,
    team_ids: Sequence[str] | None,
    span: Window,
    now: datetime,
) -> dict[str, Any]:
    """What a finance or governance reviewer checks: spend nobody priced or owns, and budgets."""
    unpriced = repository.unpriced_models(
        session, org_id=org_id, team_ids=team_ids, since=span.since, until=span.until
    )
    parents = repository.team_parents(session, org_id)
    rules = rules_for(session, org_id, team_id, parents)
    states = repository.counters(session, org_id=org_id, keys=[r.key(now) for r in rules])
    budgets = []
    for rule in rules:
        status = status_of(rule, states.get(rule.key(now)), rule.key(now)[1])
        budgets.append(
            {
                "id": rule.id,
                "name": rule.name,
                "scope": rule.scope,
                "amount": status["amount"],
                "spent": status["spent"],
                "percent_used": status["percent_used"],
                "exceeded": Decimal(status["spent"]) >= rule.amount,
            }
        )
    open_alerts = repository.alerts_of(
        session, org_id=org_id, budget_ids=[r.id for r in rules], open_only=True
    )
    return {
        "unpriced_requests": data.total.unpriced,
        "unpriced_models": [{"provider": p, "model": m, "requests": n} for p, m, n in unpriced],
        "unattributed_requests": data.by_member[UNATTRIBUTED].requests
        if UNATTRIBUTED in data.by_member
        else 0,
        "error_rate": round(1 - data.total.success_rate, 4),
        "budgets": budgets,
        "open_budget_alerts": len(open_alerts),
    }


EXPORT_COLUMNS = (
    "date", "team_id", "provider", "model", "member", "requests", "errors", "input_tokens",
    "output_tokens", "cached_input_tokens", "cost",
)  # fmt: skip


def export_csv(data: Gathered) -> str:
    """The window's rollups per day, team, provider, model and member, as CSV."""
    per_day: dict[tuple[str, ...], Sums] = defaultdict(Sums)
    for row in data.rows:
        team, provider, model, member = row.keys
        per_day[(row.hour.date().isoformat(), team, provider, model, member)].add(row)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for key in sorted(per_day):
        s = per_day[key]
        writer.writerow([
            *key[:4], key[4] or UNATTRIBUTED, s.requests, s.errors, s.input_tokens,
            s.output_tokens, s.cached_input_tokens, plain(s.cost),
        ])  # fmt: skip
    return buffer.getvalue()
