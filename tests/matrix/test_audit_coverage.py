"""Audit coverage, generated from the route table.

Every mutating route is named for the audit action it records and, made validly, writes exactly
one audit event with that action (or the number its entry says: one per change of a bulk change;
none, with the reason, for a high-volume data path whose own rows are the record). A refused
attempt (403) writes exactly one event with result `denied` and nothing else; a rejected body
(422) writes nothing at all. A mutating route of the app without an entry in tests/matrix/routes.py
fails here by name.
"""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import Factory, bearer
from matrix.routes import (
    APP_ROUTES,
    INVITEE,
    OPERATOR,
    PUBLIC,
    ROLES,
    RouteKey,
    World,
    action_of,
    actor,
    assert_problem,
    audit_events,
    call,
    case_for,
    is_mutating,
    keys_where,
    new_events,
    route_id,
    row_counts,
    shared_app,
    success_status,
)
from tenantry.authz.catalog import ORG_MEMBER_PERMISSIONS
from tenantry.kit.context import MUTATING_METHODS
from tenantry.kit.db import Database

app = pytest.fixture(scope="module", name="app")(shared_app)

ACTION = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$")
MUTATING_KEYS = keys_where(lambda case: case.mutating, unknown=is_mutating)
# Routes that are another route's second form, in the shape a seed document asked for, and so
# record the same action: the route and the one it stands for.
TWINS = {
    "POST /api/v1/teams/{team}/billing": "POST /api/v1/budget-alerts/{alert_id}/acknowledge",
    # Seed 001's team route and the org's own: a policy is created either way.
    "POST /api/v1/teams/{team}/governance/policies": "POST /api/v1/orgs/{org}/policies",
    "PUT /api/v1/teams/{team}/governance/config": "PUT /api/v1/orgs/{org}/governance/config",
}


def test_every_mutating_route_is_named_for_its_audit_action() -> None:
    actions: dict[str, str] = {}
    for (method, path), route in sorted(APP_ROUTES.items()):
        if method not in MUTATING_METHODS:
            continue
        where = f"{method} {path}"
        assert ACTION.match(route.name or ""), (
            f"{where} is named {route.name!r}; give it name='<thing>.<happened>', "
            "the audit action it records"
        )
        if where in TWINS:
            method_, path_ = TWINS[where].split(" ", 1)
            assert APP_ROUTES[(method_, path_)].name == route.name, f"{where} is a twin"
            continue
        assert route.name not in actions, f"{where} and {actions[route.name]} share an action"
        actions[route.name] = where
    assert actions, "no mutating route found: is the route table read correctly?"


@pytest.mark.parametrize("key", MUTATING_KEYS, ids=route_id)
def test_a_mutating_route_writes_exactly_one_event(
    app: FastAPI, client: TestClient, factory: Factory, database: Database, key: RouteKey
) -> None:
    case = case_for(key)
    world = World(client, factory, "Alpha Industries")
    params, body, headers = case.path_params(world), case.json(world), world.headers_for(case)
    before = audit_events(database)
    resp = call(client, case, params=params, headers=headers, body=body)
    assert resp.status_code == success_status(app, case), resp.text
    events = new_events(database, before)
    if isinstance(case.audit, str):
        assert events == [], f"{case.id} is listed as not audited ({case.audit}) but wrote events"
        return
    expected = [(action_of(app, case), "success")] * case.audit
    assert [(e.action, e.result) for e in events] == expected
    event = events[0]
    assert event.request_id == resp.headers["x-request-id"]
    if case.rule == OPERATOR:
        # The tenant's chain (for an act on a tenant), then the operator chain: both name the
        # operator.
        operator = factory.operator()
        assert {(e.actor_type, e.actor_id) for e in events} == {("operator", operator.user_id)}
        assert events[-1].chain_id == "operator"
        if "org" in params:
            assert event.org_id == world.org_id
    elif case.rule != PUBLIC:
        who = world.invitee if case.rule == INVITEE else world.owner
        assert (event.actor_type, event.actor_id) == ("user", who.id)
    if case.permission is not None or case.rule == INVITEE:
        assert event.org_id == world.org_id
    if case.scope == "team":
        assert event.team_id == world.team_id


REFUSABLE_KEYS = keys_where(
    lambda case: case.mutating and case.permission is not None, unknown=is_mutating
)


@pytest.mark.parametrize("refused", ["weakest role", "read-only API key"])
@pytest.mark.parametrize("key", REFUSABLE_KEYS, ids=route_id)
def test_a_refused_attempt_writes_one_denied_event(
    app: FastAPI,
    client: TestClient,
    factory: Factory,
    database: Database,
    key: RouteKey,
    refused: str,
) -> None:
    case = case_for(key)
    permission = case.permission
    assert permission is not None
    world = World(client, factory, "Alpha Industries")
    if refused == "weakest role":
        # The weakest built-in role the catalog refuses this permission to.
        role = next(r for r in ROLES.values() if permission not in r.granted(case.scope))
        who = actor(world, role)
        headers, actor_ref = who.headers, ("user", who.id)
    else:
        # A key of the owner limited to what every member holds (org:read, team:read).
        held = sorted(p.value for p in ORG_MEMBER_PERMISSIONS)
        key_ = factory.api_key(world.tenant, permissions=held)
        headers, actor_ref = bearer(key_["secret"]), ("api_key", key_["id"])
    params, body = case.path_params(world), case.json(world)
    before_events, before_rows = audit_events(database), row_counts(database)
    resp = call(client, case, params=params, headers=headers, body=body)
    problem = assert_problem(resp, 403)
    if refused == "weakest role" or "missing_permission" in problem:
        assert problem.get("missing_permission") == permission.value, problem
    events = new_events(database, before_events)
    assert [(e.action, e.result) for e in events] == [(action_of(app, case), "denied")]
    event = events[0]
    assert (event.actor_type, event.actor_id, event.org_id) == (*actor_ref, world.org_id)
    assert event.request_id == resp.headers["x-request-id"]
    assert event.summary.get("missing_permission") == problem.get("missing_permission")
    after = row_counts(database)
    after["audit_events"] -= 1
    assert after == before_rows, "a refused request changed something besides its audit event"


BODY_KEYS = keys_where(lambda case: case.mutating and case.body is not None)


@pytest.mark.parametrize("key", BODY_KEYS, ids=route_id)
def test_a_rejected_body_writes_nothing(
    client: TestClient, factory: Factory, database: Database, key: RouteKey
) -> None:
    case = case_for(key)
    world = World(client, factory, "Alpha Industries")
    params, body, headers = case.path_params(world), case.json(world), world.headers_for(case)
    assert body is not None
    before = row_counts(database)
    resp = call(client, case, params=params, headers=headers, body={**body, "unexpected": 1})
    assert assert_problem(resp, 422)["code"] == "validation_error"
    assert row_counts(database) == before, "a rejected request wrote something"
