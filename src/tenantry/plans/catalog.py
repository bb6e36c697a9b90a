"""The plan catalog, as data: prices, quotas and rate limits of each plan.

The catalog ships with the four public plans below. An organization's plan is
`Organization.plan` (a key of the catalog); per-org custom plans and overrides are layered on top
by `apply_overrides` (see docs/usage-and-quotas.md). Money is `Decimal`; `None` as a limit means
unlimited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

from tenantry.kit.errors import Unprocessable


class Enforcement(StrEnum):
    HARD = "hard"  # refuse with 402 and an upgrade hint
    SOFT = "soft"  # allow, warn in headers, alert at 80% and 100%, bill the overage


class QuotaKind(StrEnum):
    COUNT = "count"  # things that exist (models, members): checked at creation
    METERED = "metered"  # usage in a period (compute hours per month): checked at admission
    CONCURRENT = "concurrent"  # things running at once (runs): held as leases


class Period(StrEnum):
    NONE = "none"
    DAY = "day"
    MONTH = "month"


@dataclass(frozen=True)
class Quota:
    key: str
    kind: QuotaKind
    limit: Decimal | None  # None: unlimited
    enforcement: Enforcement
    period: Period = Period.NONE
    meter: str | None = None  # the meter a metered quota counts


@dataclass(frozen=True)
class RateLimits:
    """Requests per minute with a burst allowance, per organization and per API key."""

    org_per_minute: int
    org_burst: int
    key_per_minute: int
    key_burst: int


@dataclass(frozen=True)
class Plan:
    key: str
    name: str
    monthly_price: Decimal
    yearly_price: Decimal
    quotas: dict[str, Quota]
    rate_limits: RateLimits
    overage_rates: dict[str, Decimal] = field(default_factory=dict)
    currency: str = "usd"
    # How long the org's audit trail keeps events unless the org sets its own figure.
    audit_retention_days: int = 365
    # A custom plan is a catalog plan (`base`) with an org's overrides applied.
    custom: bool = False
    base: str | None = None

    def quota(self, key: str) -> Quota | None:
        return self.quotas.get(key)


# Usage beyond a soft quota is billed per unit of its meter at these rates.
OVERAGE_RATES: Final[dict[str, Decimal]] = {
    "compute_hours": Decimal("0.50"),  # per hour
    "storage_gb": Decimal("0.10"),  # per GB-month
    "api_calls": Decimal("0.00001"),  # $0.01 per 1,000
}

# quota key -> (kind, period, meter)
QUOTA_SHAPES: Final[dict[str, tuple[QuotaKind, Period, str | None]]] = {
    "models": (QuotaKind.COUNT, Period.NONE, None),
    "experiments": (QuotaKind.COUNT, Period.NONE, None),
    "team_members": (QuotaKind.COUNT, Period.NONE, None),
    # Storage is a level (GB held at once), not a monthly sum; its overage bills by GB-month.
    "storage_gb": (QuotaKind.METERED, Period.NONE, "storage_gb"),
    "compute_hours": (QuotaKind.METERED, Period.MONTH, "compute_hours"),
    "api_calls": (QuotaKind.METERED, Period.DAY, "api_calls"),
    "concurrent_runs": (QuotaKind.CONCURRENT, Period.NONE, None),
}


def _plan(
    key: str,
    name: str,
    monthly: str,
    yearly: str,
    limits: dict[str, int | None],
    rate_limits: RateLimits,
    *,
    metered: Enforcement,
    audit_retention_days: int,
) -> Plan:
    quotas: dict[str, Quota] = {}
    for quota_key, limit in limits.items():
        kind, period, meter = QUOTA_SHAPES[quota_key]
        enforcement = metered if kind is QuotaKind.METERED else Enforcement.HARD
        quotas[quota_key] = Quota(
            key=quota_key,
            kind=kind,
            limit=None if limit is None else Decimal(limit),
            enforcement=enforcement,
            period=period,
            meter=meter,
        )
    overage = dict(OVERAGE_RATES) if metered is Enforcement.SOFT else {}
    return Plan(
        key,
        name,
        Decimal(monthly),
        Decimal(yearly),
        quotas,
        rate_limits,
        overage_rates=overage,
        audit_retention_days=audit_retention_days,
    )


def _limits(
    models: int | None,
    experiments: int | None,
    storage_gb: int | None,
    compute_hours: int | None,
    team_members: int | None,
    api_calls: int | None,
    concurrent_runs: int,
) -> dict[str, int | None]:
    return {
        "models": models,
        "experiments": experiments,
        "storage_gb": storage_gb,
        "compute_hours": compute_hours,
        "team_members": team_members,
        "api_calls": api_calls,
        "concurrent_runs": concurrent_runs,
    }


# Count quotas are hard everywhere; metered quotas are hard on Free and soft on paid plans.
PLANS: Final[dict[str, Plan]] = {
    plan.key: plan
    for plan in (
        _plan(
            "free",
            "Free",
            "0",
            "0",
            _limits(10, 100, 10, 100, 5, 10_000, 5),
            RateLimits(org_per_minute=600, org_burst=60, key_per_minute=300, key_burst=30),
            metered=Enforcement.HARD,
            audit_retention_days=30,
        ),
        _plan(
            "starter",
            "Starter",
            "29",
            "290",
            _limits(50, 500, 100, 1_000, 10, 100_000, 10),
            RateLimits(org_per_minute=1_200, org_burst=120, key_per_minute=600, key_burst=60),
            metered=Enforcement.SOFT,
            audit_retention_days=90,
        ),
        _plan(
            "professional",
            "Professional",
            "99",
            "990",
            _limits(200, 2_000, 500, 5_000, 50, 1_000_000, 25),
            RateLimits(org_per_minute=3_000, org_burst=300, key_per_minute=1_500, key_burst=150),
            metered=Enforcement.SOFT,
            audit_retention_days=90,
        ),
        _plan(
            "enterprise",
            "Enterprise",
            "499",
            "4990",
            _limits(None, None, None, None, None, None, 100),
            RateLimits(org_per_minute=12_000, org_burst=1_200, key_per_minute=6_000, key_burst=600),
            metered=Enforcement.SOFT,
            audit_retention_days=365,
        ),
    )
}

DEFAULT_PLAN: Final = "free"
# The next plan up, for the upgrade hint of a 402.
UPGRADE_PATH: Final[dict[str, str | None]] = {
    "free": "starter",
    "starter": "professional",
    "professional": "enterprise",
    "enterprise": None,
}


def catalog_plan(key: str) -> Plan:
    """A plan of the shipped catalog; KeyError if there is none of that name."""
    return PLANS[key]


def plan_keys() -> list[str]:
    """The catalog's plan keys, cheapest first."""
    return list(PLANS)


def is_paid(key: str) -> bool:
    """Whether `key` is a plan of the catalog other than the default (free) one."""
    return key in PLANS and key != DEFAULT_PLAN


def check_plan_key(key: str) -> str:
    """`key` if the catalog has such a plan; else 422 `invalid_plan` naming the plans."""
    if key not in PLANS:
        raise Unprocessable(f"Plan must be one of {', '.join(PLANS)}", code="invalid_plan")
    return key


# A plan the catalog does not know keeps audit events longer rather than shorter: a purge cannot
# be undone, a late one can.
UNKNOWN_PLAN_RETENTION_DAYS: Final = 365


def audit_retention_days(plan_key: str) -> int:
    """Days the audit trail of an org on `plan_key` keeps its events by default."""
    plan = PLANS.get(plan_key)
    return plan.audit_retention_days if plan is not None else UNKNOWN_PLAN_RETENTION_DAYS


def upgrade_hint(plan_key: str) -> str | None:
    """The next plan up from `plan_key` (a custom or unknown plan suggests none)."""
    return UPGRADE_PATH.get(plan_key)


# ---- per-org overrides: a custom plan is the org's catalog plan with these applied ----


def _override_quota(base: Quota | None, key: str, change: Mapping[str, Any]) -> Quota:
    if key not in QUOTA_SHAPES:
        raise ValueError(f"unknown quota {key!r}")
    kind, period, meter = QUOTA_SHAPES[key]
    if base is None:
        base = Quota(
            key=key, kind=kind, limit=None, enforcement=Enforcement.HARD, period=period, meter=meter
        )
    out = base
    if "limit" in change:
        raw = change["limit"]
        out = replace(out, limit=None if raw is None else Decimal(str(raw)))
    if change.get("enforcement") is not None:
        out = replace(out, enforcement=Enforcement(change["enforcement"]))
    return out


def apply_overrides(plan: Plan, overrides: Mapping[str, Any]) -> Plan:
    """`plan` with an org's overrides (as stored: `name`, `quotas`, `rate_limits`,
    `overage_rates`) applied; keys not mentioned keep the plan's values."""
    quotas = dict(plan.quotas)
    for key, change in (overrides.get("quotas") or {}).items():
        quotas[key] = _override_quota(quotas.get(key), key, change)
    rate_limits = plan.rate_limits
    if overrides.get("rate_limits"):
        rate_limits = replace(
            rate_limits, **{k: int(v) for k, v in overrides["rate_limits"].items()}
        )
    overage = dict(plan.overage_rates)
    for meter, rate in (overrides.get("overage_rates") or {}).items():
        if rate is None:
            overage.pop(meter, None)
        else:
            overage[meter] = Decimal(str(rate))
    return replace(
        plan,
        name=overrides.get("name") or plan.name,
        quotas=quotas,
        rate_limits=rate_limits,
        overage_rates=overage,
        custom=True,
        base=plan.key,
    )
