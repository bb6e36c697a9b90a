"""Tenant isolation, generated from the app's route table.

For every route whose path takes an org, team or object id, a caller of org B — its owner, or an
API key of B whose creator even owns org A too — using org A's ids gets 404 (never 403), for every
method, and nothing is written; A's own owner then makes the very same request successfully, so
the 404 was about the tenant, not a broken request. No read shows B any of A's ids. A route of the
app without an entry in tests/matrix/routes.py fails here by name.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from pypdf import PdfReader

from conftest import Factory
from matrix.routes import (
    APP_ROUTES,
    OPERATOR,
    PARAMS,
    PUBLIC,
    ROUTES,
    RouteCase,
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

CREDENTIALS = ("owner of B", "API key of B")
# Operator routes are the deployment's, across tenants by design: tests/operators/test_operators.py
# holds them to answering operators only, and operators to being members of no org.
# A public route's ids are public by design (a SAML connection's SP metadata and ACS, which its
# identity provider reaches without credentials): no tenant's credentials are involved.
TENANT_KEYS = keys_where(
    lambda case: bool(case.param_names()) and case.rule not in (OPERATOR, PUBLIC),
    unknown=lambda key: "{" in key[1],
)
READ_KEYS = keys_where(
    lambda case: case.method == "GET" and case.read and case.rule != OPERATOR,
    unknown=lambda key: key[0] == "GET",
)


def test_route_table_matches_the_app() -> None:
    missing = sorted(set(APP_ROUTES) - set(ROUTES))
    stale = sorted(set(ROUTES) - set(APP_ROUTES))
    assert not missing, f"routes of the app without an entry in tests/matrix/routes.py: {missing}"
    assert not stale, f"entries of tests/matrix/routes.py that are no route of the app: {stale}"
    for key, case in ROUTES.items():
        route = APP_ROUTES[key]
        # A hot endpoint reads its own body (kit.http.parse_json_body) and declares it for OpenAPI.
        has_body = route.body_field is not None or "requestBody" in (route.openapi_extra or {})
        assert (case.body is not None) == has_body, f"{case.id}: body given = {not has_body}"
        if case.permission is not None:
            assert case.scope in ("org", "team"), f"{case.id}: say where the permission applies"
        for name in case.param_names():
            assert name in case.params or name in PARAMS, f"{case.id}: no value for {{{name}}}"


def make_dual_owner(a: World, b: World) -> None:
    """B's owner also becomes an owner of A (an API key of B it created must still see nothing
    of A)."""
    invitation = a.invite(b.owner.email, "owner")
    resp = a.client.post(f"/api/v1/invitations/{invitation.secret}/accept", headers=b.owner.headers)
    assert resp.status_code == 200, resp.text


def cross_tenant_variants(
    case: RouteCase, a: World, b: World
) -> list[tuple[str, dict[str, str], dict[str, Any] | None]]:
    """(label, path params, body): all of A's ids; and, where a path takes several ids, each one
    of A's in turn among B's own. `{org}` is tried by id and by slug, `{user}` by id and email."""
    theirs, mine = case.path_params(a), case.path_params(b)
    names = case.param_names()

    def values(name: str) -> list[tuple[str, str]]:
        found = [(f"A's {{{name}}}", theirs[name])]
        if name == "org":
            found.append(("A's org slug", a.org_slug))
        if name == "user":
            found.append(("A's member's email", a.member.email))
        return found

    variants = []
    for label, value in values(names[0]):
        params = {**theirs, names[0]: value}
        variants.append((f"{label}, all of A's ids", params, case.json(a)))
    if len(names) > 1:
        for name in names:
            if name in case.positions:
                continue
            for label, value in values(name):
                variants.append((f"{label} among B's own", {**mine, name: value}, case.json(b)))
    return variants


@pytest.mark.parametrize("key", TENANT_KEYS, ids=route_id)
def test_another_tenants_ids_answer_404(
    app: FastAPI, client: TestClient, factory: Factory, database: Database, key: RouteKey
) -> None:
    case = case_for(key)
    a = World(client, factory, "Alpha Industries")
    b = World(client, factory, "Bravo Labs")
    variants = cross_tenant_variants(case, a, b)
    b.api_key  # noqa: B018 - made before the snapshot
    before = row_counts(database)
    for credential in CREDENTIALS:
        if credential == "API key of B":
            make_dual_owner(a, b)
            before = row_counts(database)
        headers = b.owner.headers if credential == "owner of B" else b.api_key.headers
        for label, params, body in variants:
            resp = call(client, case, params=params, headers=headers, body=body)
            where = f"{credential}, {label}"
            assert resp.status_code == 404, f"{where}: {resp.status_code} {resp.text}"
            assert assert_problem(resp, 404)["code"] == "not_found", where
        assert row_counts(database) == before, f"{credential}: a refused request wrote something"
    # The requests were valid ones: each org's own owner (or invitee) gets through.
    for world in (a, b):
        resp = call(
            client,
            case,
            params=case.path_params(world),
            headers=world.headers_for(case),
            body=case.json(world),
        )
        assert resp.status_code == success_status(app, case), resp.text


def readable(resp: Response) -> str:
    """What a person would read in a response: a PDF's text, or the body as it is."""
    if resp.headers.get("content-type", "").startswith("application/pdf"):
        return "\n".join(page.extract_text() for page in PdfReader(BytesIO(resp.content)).pages)
    return resp.text


@pytest.mark.parametrize("credential", CREDENTIALS)
def test_reads_never_show_another_tenants_ids(
    client: TestClient, factory: Factory, credential: str
) -> None:
    a = World(client, factory, "Alpha Industries")
    b = World(client, factory, "Bravo Labs")
    a.seed_all()
    b.seed_all()
    headers = b.owner.headers
    if credential == "API key of B":
        make_dual_owner(a, b)
        headers = b.api_key.headers
    leaks, blind = [], []
    for key in READ_KEYS:
        case = case_for(key)
        for query in ("", *case.queries):
            resp = call(client, case, params=case.path_params(b), headers=headers, query=query)
            where = case.id + (f"?{query}" if query else "")
            assert resp.status_code == 200, f"{where}: {resp.text}"
            text = readable(resp)
            leaked = sorted(i for i in a.ids() if i in text)
            if leaked:
                leaks.append(f"{where} shows B these ids of A: {leaked}")
            if case.rule != PUBLIC and not case.idless and not any(i in text for i in b.ids()):
                blind.append(f"{where} shows none of B's own things either: {text}")
    assert not leaks, "\n".join(leaks)
    # The scan looked at real data: every tenant read showed B its own things.
    assert not blind, "\n".join(blind)


# Request bodies that name another object by id: pointing them at A's objects must answer exactly
# as an id that exists nowhere does, and change nothing.
BODY_REFERENCES: dict[str, tuple[RouteKey, Callable[[World, str], dict[str, Any]], str]] = {
    "transfer to A's member": (
        ("POST", "/api/v1/orgs/{org}/transfer-ownership"),
        lambda w, ref: {"new_owner": ref},
        "member",
    ),
    "add A's member to B's team": (
        ("POST", "/api/v1/teams/{team}/members"),
        lambda w, ref: {"user": ref, "role": "viewer"},
        "spare",
    ),
    "invite into A's team": (
        ("POST", "/api/v1/orgs/{org}/invitations"),
        lambda w, ref: {"email": w.fresh_email(), "role": "viewer", "team_id": ref},
        "team",
    ),
    "API key bound to A's team": (
        ("POST", "/api/v1/orgs/{org}/api-keys"),
        lambda w, ref: {"name": "k", "team_id": ref},
        "team",
    ),
    "team under A's team": (
        ("POST", "/api/v1/orgs/{org}/teams"),
        lambda w, ref: {"name": "Sub", "parent_team_id": ref},
        "team",
    ),
    "move B's team under A's team": (
        ("PATCH", "/api/v1/teams/{team}"),
        lambda w, ref: {"parent_team_id": ref},
        "another team",
    ),
}


def _ref(world: World, kind: str) -> str:
    if kind == "team":
        return world.team_id
    if kind == "another team":
        resp = world.client.post(
            f"/api/v1/orgs/{world.org_id}/teams",
            headers=world.owner.headers,
            json={"name": "Other"},
        )
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])
    return str(getattr(world, kind).id)


@pytest.mark.parametrize("name", sorted(BODY_REFERENCES))
def test_body_references_to_another_tenant_look_like_unknown_ids(
    client: TestClient, factory: Factory, database: Database, name: str
) -> None:
    key, body, kind = BODY_REFERENCES[name]
    case = case_for(key)
    a = World(client, factory, "Alpha Industries")
    b = World(client, factory, "Bravo Labs")
    theirs, mine = _ref(a, kind), _ref(b, kind)
    unknown = theirs[:-6] + "000000"
    params = case.path_params(b)
    before = row_counts(database)
    answers = []
    for ref in (theirs, unknown):
        resp = call(client, case, params=params, headers=b.owner.headers, body=body(b, ref))
        assert resp.status_code in (404, 409, 422), resp.text
        answers.append((resp.status_code, resp.json()["code"]))
    assert answers[0] == answers[1], f"A's id answers {answers[0]}, an unknown id {answers[1]}"
    assert row_counts(database) == before
    # B's own id in the same place works, so the refusal was about the tenant.
    resp = call(client, case, params=params, headers=b.owner.headers, body=body(b, mine))
    assert resp.status_code < 300, resp.text
