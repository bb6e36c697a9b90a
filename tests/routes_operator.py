"""Route-table entries of operators (see tests/routes.py for what an entry says). Operator
routes are the deployment's, not a tenant's: only operators may call them (rule OPERATOR), and
each act is audited twice, in the tenant's chain and in the operator chain."""

from __future__ import annotations

import secrets

from routes import OPERATOR, RouteCase, _case

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
    _case(
        "POST",
        "/operator/tenants/{org}/resume",
        OPERATOR,
        params={"org": lambda w: w.suspended()},
        audit=2,
    ),
]
