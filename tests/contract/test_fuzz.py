"""Every operation of the API, fuzzed from its own OpenAPI document (schemathesis): whatever a
client sends, the answer is never a server error, its status is one the document lists for the
operation, and its content type one the document gives for that status. On a few write routes,
a refused request has written nothing.

The fuzzer signs in as the owner of a seeded org, and half the time names that org's real
things in the path (an org, a team, a member, a key…) so that requests reach past the 404.
A few examples per operation by default; TENANTRY_FUZZ_EXAMPLES raises it (e.g. 100), and
TENANTRY_FUZZ_RANDOM=1 draws new cases on each run rather than the same ones.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from conftest import Factory, count_rows
from matrix.routes import PARAMS, World
from support.stripe_fake import WEBHOOK_SECRET
from tenantry.app import create_app
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database


def _document() -> dict[str, Any]:
    # Only the document is read: the database is never connected to.
    folder = Path(tempfile.gettempdir()) / "tenantry-fuzz-document"
    app = create_app(
        Settings(
            data_dir=folder,
            database_url=f"sqlite:///{folder / 'unused.db'}",
            secret_key="fuzz-document-only-" + "x" * 32,
        )
    )
    app.state.db.dispose()
    return app.openapi()


SCHEMA = schemathesis.openapi.from_dict(_document())
EXAMPLES = int(os.environ.get("TENANTRY_FUZZ_EXAMPLES", "4"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]

# Write routes where each refused request is checked to have written nothing (row counts of
# every table before and after).
WATCHED = {
    ("POST", "/api/v1/auth/signup"),
    ("POST", "/api/v1/onboard"),
    ("POST", "/api/v1/orgs"),
    ("PATCH", "/api/v1/orgs/{org}"),
    ("POST", "/api/v1/orgs/{org}/teams"),
    ("PATCH", "/api/v1/teams/{team}"),
    ("POST", "/api/v1/orgs/{org}/invitations"),
    ("POST", "/api/v1/orgs/{org}/api-keys"),
    ("POST", "/api/v1/usage/events"),
    ("POST", "/api/v1/admission"),
    ("PUT", "/api/v1/orgs/{org}/subscription"),
    ("POST", "/api/v1/orgs/{org}/invoices"),
}


@pytest.fixture(scope="module")
def fuzzed_app(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, database: Database
) -> FastAPI:
    """One app for the module (the tables are emptied after each test, so each operation still
    starts from a fresh org)."""
    config = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        database_url=database_url,
        secret_key="test-secret-" + "x" * 40,
        password_time_cost=1,
        password_memory_cost_kib=1024,
        # Webhooks configured (unconfigured, they answer 503 by design), and the API-call
        # ledger's buffer not written while a refusal's rows are being counted.
        stripe_webhook_secret=WEBHOOK_SECRET,
        api_calls_flush_seconds=3600,
    )
    return create_app(config, clock=FrozenClock(), database=database)


@pytest.fixture
def fuzzed_client(fuzzed_app: FastAPI) -> Any:
    with TestClient(fuzzed_app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def world(fuzzed_client: TestClient) -> World:
    """One seeded org per operation, kept across its examples."""
    return World(fuzzed_client, Factory(fuzzed_client), "Fuzzed Org")


def _real_things(case: Any, world: World) -> None:
    """Half the time (by the generated value itself, so a case replays the same), a path
    parameter names the seeded org's real thing of that name."""
    for name, value in list((case.path_parameters or {}).items()):
        source = PARAMS.get(name)
        if source is not None and len(str(value)) % 2 == 0:
            case.path_parameters[name] = source(world)


def _request(case: Any, token: str) -> dict[str, Any]:
    if case.path.endswith("/stream"):
        # An event stream that follows the trail answers until the client leaves: here it ends.
        case.query = {**(case.query or {}), "follow": "false"}
    sent = case.as_transport_kwargs(base_url="http://testserver")
    headers = dict(sent.get("headers") or {})
    headers["Authorization"] = f"Bearer {token}"
    request: dict[str, Any] = {
        "method": sent["method"],
        "url": sent["url"],
        "headers": headers,
        "params": sent.get("params"),
    }
    if "json" in sent:
        request["json"] = sent["json"]
    elif "data" in sent:
        data = sent["data"]
        request["content" if isinstance(data, bytes | str) else "data"] = data
    if sent.get("files"):
        request["files"] = sent["files"]
    return request


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=os.environ.get("TENANTRY_FUZZ_RANDOM") != "1",
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_keeps_the_documented_contract(
    case: Any, fuzzed_client: TestClient, world: World, database: Database
) -> None:
    _real_things(case, world)
    watched = (case.method.upper(), case.path) in WATCHED
    before = count_rows(database) if watched else None
    response = fuzzed_client.request(**_request(case, world.owner.token))
    case.validate_response(response, checks=CHECKS)
    if before is not None and response.status_code >= 400:
        after = count_rows(database)
        assert after == before, (
            f"{case.method} {case.path} answered {response.status_code} and wrote "
            f"{ {t: after[t] - before[t] for t in after if after[t] != before[t]} }"
        )
