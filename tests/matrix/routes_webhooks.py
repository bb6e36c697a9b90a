"""Route-table entries of outbound webhooks (see tests/matrix/routes.py for what an entry says).

The matrix app keeps the SSRF guard on, so endpoints point at a public address literal (no DNS
is asked, nothing is sent: the routes only write the outbox)."""

from __future__ import annotations

from typing import Any

from matrix.routes import PARAMS, SELF, WORLD_EXTRAS, P, RouteCase, World, WorldExtra
from matrix.routes import _case as case

EVENTS = ["budget.exceeded", "budget.threshold_reached"]


def _post(world: World, path: str, body: dict[str, Any] | None, status: int) -> dict[str, Any]:
    resp = world.client.post(f"/api/v1{path}", headers=world.owner.headers, json=body)
    assert resp.status_code == status, resp.text
    return dict(resp.json())


def _seed(world: World) -> dict[str, str]:
    """An endpoint of the org and one delivery of it (a queued test event)."""
    endpoint = _post(
        world,
        f"/orgs/{world.org_id}/webhooks",
        {"url": "https://8.8.8.8/hooks", "event_types": EVENTS},
        201,
    )
    delivery = _post(world, f"/orgs/{world.org_id}/webhooks/{endpoint['id']}/test", None, 202)
    return {
        "webhook": str(endpoint["id"]),
        "delivery": str(delivery["id"]),
        "message": str(delivery["message_id"]),
    }


def seeded(world: World) -> dict[str, str]:
    found: dict[str, str] = world.once("webhooks", _seed)
    return found


PARAMS["webhook_id"] = lambda w: seeded(w)["webhook"]
PARAMS["delivery_id"] = lambda w: seeded(w)["delivery"]
WORLD_EXTRAS.append(WorldExtra(seed=seeded, ids=lambda w: set(seeded(w).values())))

ENDPOINT = "/orgs/{org}/webhooks/{webhook_id}"
DELIVERY = ENDPOINT + "/deliveries/{delivery_id}"

CASES: list[RouteCase] = [
    case(
        "GET", "/webhook-event-types", SELF, idless="the list of event types, the same for everyone"
    ),
    case("GET", "/orgs/{org}/webhooks", P.WEBHOOK_READ, scope="org"),
    case(
        "POST",
        "/orgs/{org}/webhooks",
        P.WEBHOOK_MANAGE,
        scope="org",
        body=lambda w: {"url": "https://1.1.1.1/in", "event_types": ["invoice.paid"]},
    ),
    case("GET", ENDPOINT, P.WEBHOOK_READ, scope="org"),
    case(
        "PATCH",
        ENDPOINT,
        P.WEBHOOK_MANAGE,
        scope="org",
        body=lambda w: {"description": "renamed", "event_types": ["budget.exceeded"]},
    ),
    case("POST", ENDPOINT + "/rotate-secret", P.WEBHOOK_MANAGE, scope="org"),
    case("DELETE", ENDPOINT, P.WEBHOOK_MANAGE, scope="org"),
    case("POST", ENDPOINT + "/test", P.WEBHOOK_MANAGE, scope="org"),
    case(
        "GET",
        ENDPOINT + "/deliveries",
        P.WEBHOOK_READ,
        scope="org",
        queries=("status=pending", "limit=1"),
    ),
    case("GET", DELIVERY, P.WEBHOOK_READ, scope="org"),
    case("POST", DELIVERY + "/redeliver", P.WEBHOOK_MANAGE, scope="org"),
]
