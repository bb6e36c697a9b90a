"""Route-table entries of metering (see tests/matrix/routes.py for what an entry says)."""

from __future__ import annotations

import secrets
from typing import Any

from matrix.routes import OPERATOR, PARAMS, WORLD_EXTRAS, P, RouteCase, World, WorldExtra, _case
from tenantry.kit.clock import FrozenClock

# The shared app's clock stands still here: events must be within 35 days of it.
NOW = FrozenClock().now().isoformat()
HIGH_VOLUME = "a high-volume data path: the usage events and reservations are the record"


def usage_batch(world: World) -> dict[str, Any]:
    return {
        "events": [
            {
                "id": f"evt-{secrets.token_hex(6)}",
                "meter": "llm_input_tokens",
                "quantity": "120",
                "timestamp": NOW,
                "team": world.team_id,
                "dimensions": {"provider": "openai", "model": "gpt-4o"},
            }
        ]
    }


def admission_body(world: World) -> dict[str, Any]:
    return {"team": world.team_id, "action": "llm.generate", "estimate": {"compute_hours": "1"}}


def _make_reservation(world: World) -> str:
    resp = world.client.post(
        "/api/v1/admission", headers=world.owner.headers, json=admission_body(world)
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["decision"] == "allow", resp.text
    return str(resp.json()["reservation_id"])


def reservation(world: World) -> str:
    return str(world.once("reservation", _make_reservation))


def _record_usage(world: World) -> None:
    resp = world.client.post(
        "/api/v1/usage/events", headers=world.owner.headers, json=usage_batch(world)
    )
    assert resp.status_code == 200, resp.text


def _seed(world: World) -> None:
    reservation(world)
    world.once("usage", _record_usage)


PARAMS["reservation_id"] = reservation
WORLD_EXTRAS.append(WorldExtra(seed=_seed, ids=lambda w: {reservation(w)}))

SUMMARY_QUERIES = (
    "group_by=member",
    "group_by=provider&granularity=day",
    "group_by=model&granularity=hour",
)

CASES: list[RouteCase] = [
    _case(
        "POST", "/usage/events", P.USAGE_WRITE, scope="team", body=usage_batch, audit=HIGH_VOLUME
    ),
    _case(
        "POST", "/admission", P.USAGE_WRITE, scope="team", body=admission_body, audit=HIGH_VOLUME
    ),
    _case(
        "POST",
        "/admission/{reservation_id}/settle",
        P.USAGE_WRITE,
        scope="team",
        body=lambda w: {"usage": {"compute_hours": "0.5"}},
        audit=HIGH_VOLUME,
    ),
    _case("GET", "/teams/{team}/usage", P.USAGE_READ, scope="team", queries=SUMMARY_QUERIES),
    _case("GET", "/orgs/{org}/usage", P.USAGE_READ, scope="org", queries=SUMMARY_QUERIES),
    _case("GET", "/teams/{team}/quotas", P.USAGE_READ, scope="team"),
    _case("GET", "/orgs/{org}/quotas", P.USAGE_READ, scope="org"),
    _case("GET", "/orgs/{org}/quota-alerts", P.USAGE_READ, scope="org"),
    _case("GET", "/orgs/{org}/plan", P.USAGE_READ, scope="org"),
    # Custom plans are the operator's: members (owners too) get 403 operator_only.
    _case(
        "PUT",
        "/orgs/{org}/plan-overrides",
        OPERATOR,
        body=lambda w: {"name": "Alpha custom", "quotas": {"models": {"limit": "20"}}},
        audit=2,
    ),
]
