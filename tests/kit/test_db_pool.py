"""Pooled PostgreSQL connections: pinged before use only after sitting idle, and a connection the
server dropped meanwhile is replaced without failing the request that checks it out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tenantry.kit import db as kit_db
from tenantry.kit.db import make_engine


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite connections are files in this process: nothing to ping")
    made = make_engine(database_url)
    yield made
    made.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _pings(engine: Engine) -> list[int]:
    pings: list[int] = []
    original = engine.dialect.do_ping

    def counting(dbapi_conn: object) -> bool:
        pings.append(1)
        return original(dbapi_conn)

    engine.dialect.do_ping = counting  # type: ignore[method-assign]
    return pings


def test_a_connection_used_moments_ago_is_not_pinged(engine: Engine) -> None:
    pings = _pings(engine)
    first = _backend_pid(engine)
    assert _backend_pid(engine) == first  # the same pooled connection, taken again at once
    assert pings == []


def test_an_idle_connection_the_server_dropped_is_replaced(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = _pings(engine)
    dropped = _backend_pid(engine)
    with make_engine(str(engine.url.render_as_string(hide_password=False))).connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped})
        admin.commit()
    # Every pooled connection now counts as idle long enough to be pinged.
    monkeypatch.setattr(kit_db, "PING_AFTER_IDLE_S", 0.0)
    replaced = _backend_pid(engine)
    assert replaced != dropped
    assert pings  # the dead connection was found by the ping, not by the request's query
