"""Private teams, generated from the app's route table: for every route whose path takes a team,
a member of the organization who is outside a private team gets 404 (never 403), as for another
tenant's team, and nothing is written; the org's owner then makes the very same request
successfully, so the 404 was about the team's privacy, not a broken request."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import Factory
from matrix.routes import (
    OPERATOR,
    PUBLIC,
    RouteKey,
    World,
    assert_problem,
    call,
    case_for,
    keys_where,
    route_id,
    row_counts,
    shared_app,
    success_status,
)
from tenantry.kit.db import Database

app = pytest.fixture(scope="module", name="app")(shared_app)

TEAM_KEYS = keys_where(
    lambda case: "team" in case.param_names() and case.rule not in (OPERATOR, PUBLIC),
    unknown=lambda key: "{team}" in key[1],
)


def make_private(world: World, private: bool) -> None:
    resp = world.client.patch(
        f"/api/v1/teams/{world.team_id}", headers=world.owner.headers, json={"private": private}
    )
    assert resp.status_code == 200 and resp.json()["private"] is private, resp.text


@pytest.mark.parametrize("key", TEAM_KEYS, ids=route_id)
def test_a_private_teams_routes_answer_404_to_members_outside_it(
    app: FastAPI, client: TestClient, factory: Factory, database: Database, key: RouteKey
) -> None:
    case = case_for(key)
    world = World(client, factory, "Alpha Industries")
    params, body = case.path_params(world), case.json(world)
    outsider = world.spare  # a member of the org, of no team
    make_private(world, True)
    before = row_counts(database)
    resp = call(client, case, params=params, headers=outsider.headers, body=body)
    assert resp.status_code == 404, f"{resp.status_code} {resp.text}"
    assert assert_problem(resp, 404)["code"] == "not_found"
    assert row_counts(database) == before, "a refused request wrote something"
    resp = call(client, case, params=params, headers=world.headers_for(case), body=case.json(world))
    assert resp.status_code == success_status(app, case), resp.text
