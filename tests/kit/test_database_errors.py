"""A write the database refuses is answered by what it broke (kit/dberrors.py), alike on SQLite and
PostgreSQL: a taken unique value is 409 `already_exists`, a NOT NULL, CHECK or foreign key
violation is 422 naming the field, and only transactions that met are 409 `concurrent_conflict`
with Retry-After. Every IntegrityError used to be `concurrent_conflict` "…Retry.", which looped
clients on bad input. Nothing is written either way."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from conftest import Factory, Tenant, assert_problem, count_rows
from tenantry.kit.db import Database
from tenantry.kit.dberrors import Kind, integrity_problem, is_concurrent_conflict, violation_of


@pytest.fixture
def acme(factory: Factory) -> Tenant:
    return factory.tenant("Acme")


def _answer(app: FastAPI, client: TestClient, write: Callable[[Session], None]) -> Any:
    """What the app answers to a request whose write is `write`."""

    def route() -> None:
        with app.state.db.session(write=True) as session:
            write(session)
            session.commit()

    app.add_api_route("/test-only/write", route, methods=["POST"])
    return client.post("/test-only/write")


def _team_row(acme: Tenant, **values: Any) -> dict[str, Any]:
    row = {"id": "team_test_only", "org_id": acme.org_id, "name": "T", "slug": "default",
           "description": "", "settings": "{}", "private": False,
           "created_at": "2026-01-01 00:00:00", "updated_at": "2026-01-01 00:00:00"}  # fmt: skip
    row.update(values)
    return row


def _insert_team(row: dict[str, Any]) -> Callable[[Session], None]:
    columns = ", ".join(row)
    values = ", ".join(f":{name}" for name in row)
    return lambda s: s.execute(text(f"INSERT INTO teams ({columns}) VALUES ({values})"), row)


def test_a_taken_unique_value_is_409_already_exists_naming_the_field(
    app: FastAPI, client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    default_slug = client.get(f"/api/v1/teams/{acme.team_id}", headers=acme.headers).json()["slug"]
    resp = _answer(app, client, _insert_team(_team_row(acme, slug=default_slug)))
    body = assert_problem(resp, 409, "already_exists")
    assert body["field"] == "slug", body  # the org that scopes the slug is not what went wrong
    assert "Retry" not in body["detail"] and "Retry-After" not in resp.headers
    assert count_rows(database) == before


def test_a_not_null_violation_is_422_naming_the_field_not_a_retry(
    app: FastAPI, client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    resp = _answer(
        app,
        client,
        lambda s: s.execute(
            text("UPDATE teams SET name = NULL WHERE id = :id"), {"id": acme.team_id}
        ),
    )
    body = assert_problem(resp, 422, "value_required")
    assert body["field"] == "name", body
    assert "Retry" not in body["detail"]
    assert count_rows(database) == before


def test_a_reference_to_nothing_is_422_unknown_reference(
    app: FastAPI, client: TestClient, acme: Tenant, database: Database
) -> None:
    before = count_rows(database)
    row = _team_row(acme, slug="orphan", org_id="org_doesnotexist")
    body = assert_problem(_answer(app, client, _insert_team(row)), 422, "unknown_reference")
    assert body.get("field") in (None, "org_id"), body  # SQLite does not say which
    assert count_rows(database) == before


# ---- every kind, read from the database's own error, on tables of this test's own ----


@pytest.fixture
def scratch(database: Database) -> Iterator[Connection]:
    """A connection with two temporary tables: a parent, and a child that refers to it, with a
    NOT NULL column, a CHECK and a UNIQUE of two columns."""
    with database.writer_engine.connect() as conn:
        _drop_scratch(conn)  # pooled connections keep their temporary tables
        conn.execute(text("CREATE TEMPORARY TABLE scratch_parents (id VARCHAR(8) PRIMARY KEY)"))
        conn.execute(
            text(
                "CREATE TEMPORARY TABLE scratch_children (id VARCHAR(8) PRIMARY KEY, "
                "org_id VARCHAR(8) NOT NULL, label VARCHAR(8) NOT NULL, "
                "size INTEGER CONSTRAINT ck_scratch_children_size_positive CHECK (size > 0), "
                "parent_id VARCHAR(8) REFERENCES scratch_parents (id), "
                "CONSTRAINT uq_scratch_children_org_id_label UNIQUE (org_id, label))"
            )
        )
        conn.execute(text("INSERT INTO scratch_parents VALUES ('p1')"))
        conn.execute(text("INSERT INTO scratch_children VALUES ('c1', 'o1', 'a', 1, 'p1')"))
        conn.commit()
        yield conn
        conn.rollback()
        _drop_scratch(conn)


def _drop_scratch(conn: Connection) -> None:
    conn.execute(text("DROP TABLE IF EXISTS scratch_children"))
    conn.execute(text("DROP TABLE IF EXISTS scratch_parents"))
    conn.commit()


def _refused(conn: Connection, statement: str) -> IntegrityError:
    with pytest.raises(IntegrityError) as caught:
        conn.execute(text(statement))
    conn.rollback()
    return caught.value


@pytest.mark.parametrize(
    ("statement", "kind", "status", "code", "field"),
    [
        ("INSERT INTO scratch_children VALUES ('c2', 'o1', 'a', 1, NULL)", Kind.UNIQUE, 409,
         "already_exists", "label"),
        ("INSERT INTO scratch_children VALUES ('c1', 'o2', 'b', 1, NULL)", Kind.UNIQUE, 409,
         "already_exists", "id"),
        ("INSERT INTO scratch_children VALUES ('c3', 'o1', NULL, 1, NULL)", Kind.NOT_NULL, 422,
         "value_required", "label"),
        ("INSERT INTO scratch_children VALUES ('c4', 'o1', 'd', 0, NULL)", Kind.CHECK, 422,
         "value_not_allowed", "ck_scratch_children_size_positive"),
        ("INSERT INTO scratch_children VALUES ('c5', 'o1', 'e', 1, 'nope')", Kind.FOREIGN_KEY,
         422, "unknown_reference", None),
        ("DELETE FROM scratch_parents", Kind.STILL_REFERENCED, 409, "still_referenced", None),
    ],
    ids=["unique", "primary-key", "not-null", "check", "foreign-key", "still-referenced"],
)  # fmt: skip
def test_each_kind_of_violation_is_read_from_the_database(
    scratch: Connection,
    statement: str,
    kind: Kind,
    status: int,
    code: str,
    field: str | None,
) -> None:
    error = _refused(scratch, statement)
    assert violation_of(error).kind is kind, error
    problem = integrity_problem(error)
    assert (problem.status, problem.code) == (status, code)
    if field is not None:
        assert problem.extra["field"] == field, error
    assert not is_concurrent_conflict(error)


# ---- transactions that met: the one 409 worth retrying ----


def test_a_lock_held_by_another_transaction_is_409_concurrent_conflict(
    app: FastAPI, client: TestClient, acme: Tenant, database: Database, database_url: str
) -> None:
    holder = database.writer_engine.connect()
    sqlite = database.dialect == "sqlite"
    # SQLite: the whole database is locked by a writer; PostgreSQL: the team's row.
    # (The app's writer engine begins SQLite's transactions IMMEDIATE: the lock is taken.)
    holder.execute(text("SELECT 1") if sqlite else text("SELECT id FROM teams FOR UPDATE"))
    impatient = create_engine(
        database_url.replace("postgresql://", "postgresql+psycopg://", 1),
        connect_args={"timeout": 0} if sqlite else {},
    )

    def route() -> None:
        with impatient.connect() as conn:
            if sqlite:
                conn.execute(
                    text("UPDATE teams SET name = 'x' WHERE id = :id"), {"id": acme.team_id}
                )
            else:
                conn.execute(text("SELECT id FROM teams FOR UPDATE NOWAIT"))
            conn.commit()

    try:
        before = client.get(f"/api/v1/teams/{acme.team_id}", headers=acme.headers).json()
        app.add_api_route("/test-only/locked", route, methods=["POST"])
        resp = client.post("/test-only/locked")
        body = assert_problem(resp, 409, "concurrent_conflict")
        assert "Retry" in body["detail"] and resp.headers["Retry-After"] == "1"
    finally:
        holder.rollback()
        holder.close()
        impatient.dispose()
    after = client.get(f"/api/v1/teams/{acme.team_id}", headers=acme.headers).json()
    assert after["name"] == before["name"]


def test_an_unreachable_database_stays_503(app: FastAPI, client: TestClient) -> None:
    def route() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    app.add_api_route("/test-only/down", route, methods=["POST"])
    resp = client.post("/test-only/down")
    assert_problem(resp, 503, "database_unavailable")
    assert resp.headers["Retry-After"] == "1"
