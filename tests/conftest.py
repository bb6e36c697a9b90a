"""Test fixtures: a migrated throwaway database (SQLite by default, PostgreSQL when
TENANTRY_TEST_DATABASE_URL names a server), the real app over HTTP, a movable clock, factories."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tenantry.app import create_app
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.kit.migrations import upgrade
from tenantry.tables import metadata

PASSWORD = "correct horse battery staple"
# No bucket refills under a FrozenClock, so every request of a test in one org adds up: the suite
# runs with each plan's rate limits times 100 (every Settings reads it from the environment).
# Tests about rate limits set `rate_limit_multiplier` back to 1.
os.environ.setdefault("TENANTRY_RATE_LIMIT_MULTIPLIER", "100")
# Two test processes each running a test with two apps of 50 threads stay within PostgreSQL's
# default 100 connections; the threads beyond the pool wait their turn, as in production.
os.environ.setdefault("TENANTRY_DATABASE_POOL_SIZE", "10")


def _postgres_database(server_url: str, name: str) -> str:
    url = make_url(server_url).set(drivername="postgresql+psycopg")
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _drop_postgres_database(url: str) -> None:
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[str]:
    server = os.environ.get("TENANTRY_TEST_DATABASE_URL")
    if server:
        url = _postgres_database(server, f"tenantry_test_{worker_id}_{secrets.token_hex(4)}")
        upgrade(url)
        yield url
        _drop_postgres_database(url)
    else:
        path: Path = tmp_path_factory.mktemp("db") / "tenantry.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def worker_id() -> str:  # overridden by pytest-xdist when it runs
    return "main"


@pytest.fixture(scope="session")
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture(autouse=True)
def _clean_tables(database: Database) -> Iterator[None]:
    yield
    with database.writer_engine.begin() as conn:
        # Audit events may only go through a purge permit (the append-only trigger).
        conn.execute(
            text(
                "INSERT INTO audit_purge_permits (id, chain_id, through_seq) "
                "SELECT 'cleanup_' || chain_id, chain_id, seq FROM audit_chain_heads"
            )
        )
        conn.execute(text("DELETE FROM audit_events"))
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@dataclass(frozen=True)
class RedisForTests:
    url: str
    prefix: str  # every key this test writes starts with it


@pytest.fixture
def real_redis() -> Iterator[RedisForTests]:
    """The real Redis named by TENANTRY_TEST_REDIS_URL (CI sets it; without it the test is
    skipped), with a key prefix of this test's own. Afterwards this test's keys, and only
    those, are deleted: the Redis may be shared."""
    url = os.environ.get("TENANTRY_TEST_REDIS_URL")
    if not url:
        pytest.skip("TENANTRY_TEST_REDIS_URL is not set")
    import redis

    prefix = f"tenantry-test:{secrets.token_hex(6)}:"
    yield RedisForTests(url, prefix)
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret-" + "x" * 40,
        password_time_cost=1,
        password_memory_cost_kib=1024,
    )


@pytest.fixture
def app(settings: Settings, clock: FrozenClock, database: Database) -> FastAPI:
    return create_app(settings, clock=clock, database=database)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Tenant:
    """An onboarded org with its owner, default team and owner's access token."""

    org_id: str
    org_slug: str
    team_id: str
    owner_id: str
    owner_email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


@dataclass(frozen=True)
class Operator:
    """A user who is one of the deployment's operators."""

    user_id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


_operators: WeakKeyDictionary[TestClient, Operator] = WeakKeyDictionary()


def operator_of(client: TestClient) -> Operator:
    """The deployment's operator for this test's app: a signed-up account flagged as one (as
    `tenantry operator add` does), made on first use."""
    found = _operators.get(client)
    if found is None:
        email = f"operator-{secrets.token_hex(4)}@example.com"
        resp = client.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD})
        assert resp.status_code == 201, resp.text
        make_operator(client, email)
        body = resp.json()
        found = _operators[client] = Operator(body["user"]["id"], email, body["access_token"])
    return found


def operator_headers(client: TestClient) -> dict[str, str]:
    return operator_of(client).headers


def operator_url(org_id: str, what: str = "") -> str:
    """An operator route about one tenant: `operator_url(org, "/plan-overrides")`."""
    return f"/api/v1/operator/tenants/{org_id}{what}"


def make_operator(client: TestClient, email: str) -> None:
    """Flag an existing account as an operator, on the database as the CLI does."""
    from tenantry.operator import service as operators

    app: Any = client.app
    with app.state.db.session(write=True) as session:
        user = operators.user_by_email(session, email)
        assert user is not None
        operators.add_operator(session, user, now=app.state.clock.now())
        session.commit()


class Factory:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self._n = 0

    def _next(self) -> int:
        self._n += 1
        return self._n

    def operator(self) -> Operator:
        """The deployment's operator (see `operator_of`)."""
        return operator_of(self.client)

    def set_plan(self, org: str, plan: str) -> None:
        """Put an org on `plan` as an operator does (outside billing)."""
        resp = self.client.put(
            f"/api/v1/operator/tenants/{org}/plan",
            headers=self.operator().headers,
            json={"plan": plan},
        )
        assert resp.status_code == 200, resp.text

    def tenant(self, name: str | None = None, plan: str = "free") -> Tenant:
        """An onboarded org on `plan`: onboarded on Free, then given the plan by an operator
        (no subscription, no trial; tests of trials onboard with a paid plan themselves)."""
        n = self._next()
        email = f"owner{n}-{secrets.token_hex(3)}@example.com"
        resp = self.client.post(
            "/api/v1/onboard",
            json={
                "company_name": name or f"Company {n}",
                "admin_email": email,
                "admin_password": PASSWORD,
            },
        )
        assert resp.status_code == 201, resp.text
        body = resp.json()
        if plan != "free":
            self.set_plan(body["organization"]["id"], plan)
        return Tenant(
            org_id=body["organization"]["id"],
            org_slug=body["organization"]["slug"],
            team_id=body["team"]["id"],
            owner_id=body["user_id"],
            owner_email=email,
            token=body["access_token"],
        )

    def user(self, email: str | None = None) -> tuple[str, str, str]:
        """A signed-up account: (user id, email, access token)."""
        email = email or f"user{self._next()}-{secrets.token_hex(3)}@example.com"
        resp = self.client.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD})
        assert resp.status_code == 201, resp.text
        body = resp.json()
        return body["user"]["id"], email, body["access_token"]

    def member(
        self, tenant: Tenant, *, org_role: str = "member", team_role: str | None = None
    ) -> tuple[str, str]:
        """A user who joined `tenant` through an accepted invitation: (user id, access token)."""
        user_id, email, token = self.user()
        resp = self.client.post(
            f"/api/v1/orgs/{tenant.org_id}/invitations",
            headers=tenant.headers,
            json={"email": email, "role": org_role},
        )
        assert resp.status_code == 201, resp.text
        accepted = self.client.post(
            f"/api/v1/invitations/{resp.json()['token']}/accept", headers=bearer(token)
        )
        assert accepted.status_code == 200, accepted.text
        if team_role is not None:
            added = self.client.post(
                f"/api/v1/teams/{tenant.team_id}/members",
                headers=tenant.headers,
                json={"user": user_id, "role": team_role},
            )
            assert added.status_code == 201, added.text
        return user_id, token

    def api_key(self, tenant: Tenant, **body: Any) -> dict[str, Any]:
        resp = self.client.post(
            f"/api/v1/orgs/{tenant.org_id}/api-keys",
            headers=tenant.headers,
            json={"name": "test key", **body},
        )
        assert resp.status_code == 201, resp.text
        return dict(resp.json())


@pytest.fixture
def factory(client: TestClient) -> Factory:
    return Factory(client)


def assert_problem(resp: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """`resp` is an RFC 9457 problem with `status` (and `code`); returns its body."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body = dict(resp.json())
    for member in ("type", "title", "status", "detail", "code"):
        assert member in body, body
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    return body


# Rows the audit trail keeps beside each event (personal details, chain heads, subject keys):
# they follow `audit_events`, so counting that table says whether anything was recorded.
AUDIT_BOOKKEEPING = frozenset(
    {
        "audit_event_personal",
        "audit_subject_keys",
        "audit_chain_heads",
        "audit_checkpoints",
        "audit_purge_permits",
    }
)


def count_rows(database: Database) -> dict[str, int]:
    """Rows per table of the whole schema, read straight from the database."""
    from sqlalchemy import func, select

    with database.writer_engine.connect() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in metadata.sorted_tables
            if table.name not in AUDIT_BOOKKEEPING
        }


def database_contains(database: Database, needle: str) -> list[str]:
    """Tables in which any column of any row contains `needle` (as text or as bytes)."""
    from sqlalchemy import select

    found: list[str] = []
    with database.writer_engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    text_value = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                    if needle in text_value:
                        found.append(table.name)
    return found
