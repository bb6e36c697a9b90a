"""Route-table entries of operators (see tests/matrix/routes.py for what an entry says). Operator
routes are the deployment's, not a tenant's: only operators may call them (rule OPERATOR), and
each act is audited twice, in the tenant's chain and in the operator chain."""

from __future__ import annotations

import secrets

from matrix.routes import OPERATOR, RouteCase, _case

OVERRIDES = {"name": "Alpha custom", "quotas": {"models": {"limit": "20"}}}

CASES: list[RouteCase] = [
    _case("GET", "/operator/tenants", OPERATOR, queries=("q=alpha", "status=active")),
    _case(
        "POST",
        "/operator/tenants",
        OPERATOR,
        body=lambda w: {
            "name": "Contract Co",
            "slug": f"contract-{secrets.token_hex(3)}",
            "plan": "enterprise",
            "owner_email": w.fresh_email(),
        },
        audit=2,
    ),
    _case("GET", "/operator/tenants/{org}", OPERATOR),
    _case("GET", "/operator/tenants/{org}/plan", OPERATOR),
    _case(
        "PUT",
        "/operator/tenants/{org}/plan",
        OPERATOR,
        body=lambda w: {"plan": "professional"},
        audit=2,
    ),
    _case(
        "PUT", "/operator/tenants/{org}/plan-overrides", OPERATOR, body=lambda w: OVERRIDES, audit=2
    ),
    _case(
        "POST",
        "/operator/tenants/{org}/suspend",
        OPERATOR,
        body=lambda w: {"reason": "unpaid contract"},
        audit=2,
    ),
    _case("GET", "/operator/plans", OPERATOR),
    _case(
        "POST",
        "/operator/plans",
        OPERATOR,
        body=lambda w: {
            "key": f"team-{secrets.token_hex(3)}",
            "name": "Team",
            "monthly_price": "49",
            "yearly_price": "490",
            "quotas": {"models": {"limit": "100"}, "compute_hours": {"limit": "2000"}},
            "rate_limits": {
                "org_per_minute": 2000,
                "org_burst": 200,
                "key_per_minute": 1000,
                "key_burst": 100,
            },
            "overage_rates": {"compute_hours": "0.45"},
            "upgrade_to": "professional",
        },
    ),
    _case(
        "PATCH",
        "/operator/plans/{plan_key}",
        OPERATOR,
        params={"plan_key": lambda w: "starter"},
        body=lambda w: {"monthly_price": "35"},
    ),
    _case(
        "POST",
        "/operator/tenants/{org}/resume",
        OPERATOR,
        params={"org": lambda w: w.suspended()},
        audit=2,
    ),
]
