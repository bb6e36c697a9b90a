"""The OpenAPI document says what each operation can answer, and who may call it.

The route walk (`test_every_refusal_a_route_makes_is_documented`) goes over the app's route table
and, for each route, provokes the refusals its parts can make: no credential, things that do not
exist, a weaker role, a body that is not JSON, not an object, too large or of another media type,
a used-up rate limit, a database that does not answer. Each answer's status must be documented
for that operation, as problem+json.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.exc import OperationalError

from conftest import Factory
from matrix.routes import (
    ALL_KEYS,
    INVITEE,
    OPERATOR,
    PUBLIC,
    RouteCase,
    RouteKey,
    World,
    call,
    case_for,
    route_id,
    shared_app,
)
from tenantry.http.openapi import ACCESS_TOKEN, API_KEY, EXAMPLES, PASSWORD_LOGIN
from tenantry.kit.db import Database
from tenantry.kit.errors import PROBLEM_CONTENT_TYPE
from tenantry.kit.ratelimit import BucketState, Decision, MemoryStore, Rate, WindowCount

app = pytest.fixture(scope="module", name="app")(shared_app)


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def _operation(document: dict[str, Any], key: RouteKey) -> dict[str, Any]:
    path = re.sub(r"\{(\w+):\w+\}", r"{\1}", key[1])  # `{path:path}` is `{path}` there
    return dict(document["paths"][path][key[0].lower()])


def _answers(document: dict[str, Any], key: RouteKey) -> dict[str, Any]:
    """The operation's responses by status, shared ones resolved."""
    shared = document["components"]["responses"]
    out = {}
    for status, answer in _operation(document, key)["responses"].items():
        ref = answer.get("$ref")
        out[status] = shared[ref.rsplit("/", 1)[1]] if ref else answer
    return out


def assert_documented(document: dict[str, Any], key: RouteKey, resp: Response, why: str) -> None:
    if resp.status_code < 400:
        return
    answers = _answers(document, key)
    status = str(resp.status_code)
    assert status in answers, (
        f"{route_id(key)} answered {status} ({why}), which its operation does not list "
        f"({sorted(answers)}): {resp.text[:300]}"
    )
    media = resp.headers["content-type"].split(";")[0]
    assert media in answers[status].get("content", {}), (route_id(key), status, media)


# ---- the document as a whole ----


def test_every_refusal_is_documented_as_problem_json(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, _ in operations.items():
            for status, answer in _answers(document, (method.upper(), path)).items():
                if int(status) < 400 or (path, status) == ("/readyz", "503"):
                    continue
                assert list(answer["content"]) == [PROBLEM_CONTENT_TYPE], (method, path, status)
                schema = answer["content"][PROBLEM_CONTENT_TYPE]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}


def test_every_operation_says_who_may_call_it(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes[ACCESS_TOKEN]["scheme"] == schemes[API_KEY]["scheme"] == "bearer"
    assert schemes[PASSWORD_LOGIN]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/login"
    for key in ALL_KEYS:
        case = case_for(key)
        security = _operation(document, key)["security"]
        if case.rule == PUBLIC:
            assert security == [], route_id(key)
        else:
            assert {name for option in security for name in option} == set(schemes), key


def test_the_examples_are_valid_requests(document: dict[str, Any]) -> None:
    assert len(EXAMPLES) >= 7
    for key, example in EXAMPLES.items():
        content = _operation(document, key)["requestBody"]["content"]["application/json"]
        assert content["example"] == example
        schema = {**content["schema"], "components": document["components"]}
        errors = [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(example)]
        assert not errors, (route_id(key), errors)


# ---- the route walk ----


class RefusingStore(MemoryStore):
    """A rate-limit store whose every bucket is empty."""

    def throttle(self, buckets: Any, *, now: float) -> Decision:
        rate = Rate(per_period=1, period=60.0, burst=1)
        refused = BucketState(
            key=buckets[0].key,
            rate=rate,
            allowed=False,
            remaining=0,
            reset_after=60,
            retry_after=60,
        )
        return Decision(allowed=False, buckets=(refused,))

    def add_to_window(self, key: str, **kw: Any) -> WindowCount:
        return WindowCount(allowed=True, count=0)


class BrokenDatabase:
    """Stands in for the database's sessions: every one fails to connect."""

    def __init__(self, real: Database) -> None:
        self.real = real

    def session(self, **kw: Any) -> Any:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
def world(client_: TestClient) -> World:
    return World(client_, Factory(client_), "Walked Org")


@pytest.fixture
def client_(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _request(
    client: TestClient,
    case: RouteCase,
    *,
    headers: dict[str, str],
    params: dict[str, str],
    body: dict[str, Any] | None,
    content: bytes | None = None,
) -> Response:
    if content is not None:
        return client.request(
            case.method, case.path.format(**params), headers=headers, content=content
        )
    return call(client, case, params=params, headers=headers, body=body)


@pytest.mark.parametrize("key", ALL_KEYS, ids=route_id)
def test_every_refusal_a_route_makes_is_documented(
    key: RouteKey, app: FastAPI, client_: TestClient, world: World, document: dict[str, Any]
) -> None:
    case = case_for(key)
    operation = _operation(document, key)
    # Everything the requests point at is made first, while nothing is refused.
    headers = world.headers_for(case)
    weaker = world.spare.headers
    real = case.path_params(world)
    body = case.json(world)
    tried: list[tuple[str, Response]] = []

    def attempt(
        why: str, *, headers: dict[str, str], params: dict[str, str] = real, **kw: Any
    ) -> None:
        tried.append(
            (why, _request(client_, case, headers=headers, params=params, body=body, **kw))
        )

    if case.rule != PUBLIC:
        attempt("no credential", headers={})
        attempt("a credential that is not valid", headers={"Authorization": "Bearer nonsense"})
    if case.rule not in (PUBLIC, OPERATOR, INVITEE):
        attempt("an org member with no team", headers=weaker)
    if case.param_names():
        unknown = dict.fromkeys(case.param_names(), "nothing-by-this-name")
        attempt("things that do not exist", headers=headers, params=unknown)
    if "requestBody" in operation or case.mutating:
        json_headers = {**headers, "Content-Type": "application/json"}
        attempt("malformed JSON", headers=json_headers, content=b'{"name": ')
        attempt("JSON that is not an object", headers=json_headers, content=b"[1, 2]")
        attempt(
            "a body of another media type",
            headers=headers | {"Content-Type": "text/plain"},
            content=b"name=x",
        )
        too_large = b" " * (app.state.settings.max_request_body_bytes + 1)
        attempt("a body over the limit", headers=json_headers, content=too_large)
    store = app.state.throttle.store
    app.state.throttle.store = RefusingStore()
    try:
        attempt("a used-up rate limit", headers=headers)
    finally:
        app.state.throttle.store = store
    database = app.state.db
    app.state.db = BrokenDatabase(database)
    try:
        attempt("a database that does not answer", headers=headers)
    finally:
        app.state.db = database

    for why, resp in tried:
        assert resp.status_code < 500 or resp.status_code == 503, (why, resp.text)
        assert_documented(document, key, resp, why)
