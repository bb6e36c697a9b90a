"""Statements PostgreSQL's driver runs itself (`kit.db.DriverStatement`): in the session's own
transaction, with SQLAlchemy's errors, and a lost connection replaced. PostgreSQL only: SQLite
takes the same statements through SQLAlchemy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from tenantry.kit.db import Database, DriverStatement


@pytest.fixture
def postgres(database: Database) -> Iterator[Database]:
    if database.dialect != "postgresql":
        pytest.skip("only PostgreSQL's hot statements are sent by the driver itself")
    yield database


def test_parameters_are_named_like_text_and_casts_and_percent_signs_stay(
    postgres: Database,
) -> None:
    statement = DriverStatement("SELECT '50%' || CAST(:a AS text), :b::int + 1")
    with postgres.session(write=False) as session:
        assert statement.first(session, {"a": "x", "b": 41}) == ("50%x", 42)
        assert DriverStatement("SELECT 1 WHERE false").first(session, {}) is None


def test_a_statement_runs_in_the_sessions_transaction(postgres: Database) -> None:
    setting = DriverStatement("SELECT current_setting('application_name')")
    with postgres.session(write=True) as session:
        session.execute(text("SET LOCAL application_name = 'in-this-transaction'"))
        assert setting.first(session, {}) == ("in-this-transaction",)
        session.rollback()
        assert setting.first(session, {}) != ("in-this-transaction",)


def test_driver_errors_are_sqlalchemys_and_the_transaction_is_rolled_back(
    postgres: Database,
) -> None:
    with postgres.session(write=True) as session:
        with pytest.raises(DataError):
            DriverStatement("SELECT CAST(:x AS integer)").first(session, {"x": "not a number"})
        session.rollback()
        with pytest.raises(IntegrityError):
            DriverStatement("INSERT INTO organizations (id) VALUES (NULL)").first(session, {})
        session.rollback()
        assert DriverStatement("SELECT 1").first(session, {}) == (1,)


def test_a_lost_connection_is_replaced(postgres: Database) -> None:
    with postgres.session(write=True) as session:
        pid = DriverStatement("SELECT pg_backend_pid()").first(session, {})
        assert pid is not None
        with postgres.writer_engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid[0]})
        with pytest.raises(OperationalError) as lost:
            DriverStatement("SELECT 1").first(session, {})
        assert lost.value.connection_invalidated
        session.rollback()
        again = DriverStatement("SELECT pg_backend_pid()").first(session, {})
        assert again is not None and again != pid
