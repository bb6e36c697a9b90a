"""Engines, sessions and column types shared by every domain, alike on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime, MetaData, String, TypeDecorator, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool

from tenantry.config import Settings
from tenantry.kit.files import create_sqlite_file, sqlite_path

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLITE_BUSY_TIMEOUT_MS = 30_000


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which stores naive text) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DecimalText(TypeDecorator[Decimal]):
    """An exact decimal of any scale, kept as its text (unit prices like 0.00001, unrounded
    amounts): the same digits come back on SQLite and PostgreSQL."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        return None if value is None else format(value, "f")

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def id_column_type() -> String:
    return String(40)


def _prepare_sqlite_file(url: str) -> None:
    path = sqlite_path(url)
    if path is not None:
        create_sqlite_file(path)  # 0600 before SQLite makes it with the umask's mode


def _configure_sqlite(engine: Engine, *, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see "begin" below).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the lock up front so two read-then-write transactions cannot deadlock
        # into SQLITE_BUSY halfway; readers stay deferred so they run beside a writer (WAL).
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(
    url: str, *, for_writes: bool = True, pool: bool = True, pool_size: int = 20
) -> Engine:
    if url.startswith("sqlite"):
        _prepare_sqlite_file(url)
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        options: dict[str, Any] = {"connect_args": connect_args, "json_serializer": json_text}
        if pool:
            engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, **options)
        else:
            engine = create_engine(url, poolclass=NullPool, **options)
        _configure_sqlite(engine, immediate=for_writes)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if not pool:
        return create_engine(url, poolclass=NullPool)
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size)
    _ping_when_idle(engine)
    return engine


# A pooled PostgreSQL connection is pinged before use only when it sat idle this long: one that
# was in use moments ago is very likely alive, and SQLAlchemy's `pool_pre_ping` cost a round trip
# on every request. One that died meanwhile (the server restarted) still fails that request, and
# the pool then replaces it and every connection older than it.
PING_AFTER_IDLE_S = 2.0
_IDLE_SINCE = "tenantry.idle_since"


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError from exc  # the pool connects afresh and tries again
        if not alive:
            raise DisconnectionError


def json_text(value: Any) -> str:
    """JSON as SQLite stores it: compact, keys sorted, non-ASCII characters as themselves. That is
    the audit chain's canonical form, so SQLite can write an event's hashed record for the
    verifier's fast pass (audit/fastverify.py)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError):
        # Integers beyond 64 bits, which orjson refuses; the standard library writes them.
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class DriverStatement:
    """A hot statement that PostgreSQL's driver runs itself, on the session's own connection and
    in its transaction: SQLAlchemy's execution around one statement (the compiled cache, bind
    and result processors, the result object) cost about 110 µs here, more than the database's
    own work on an admission's statements. For the few statements every admission runs; the
    rest go through SQLAlchemy.

    Written with `:name` parameters like `text()`. Parameters go to the driver as they are, so
    the caller passes what psycopg takes (aware datetimes, `Jsonb`, integers) and reads back
    what it returns (aware datetimes in the server's zone, JSON already decoded). Errors come out
    as SQLAlchemy's (IntegrityError, OperationalError, …), as from `session.execute`, and a lost
    connection is invalidated, so the app's error handling is the same either way."""

    def __init__(self, sql: str) -> None:
        self.sql = sql
        # psycopg's `%(name)s`; `::` casts are left alone, a literal `%` is doubled.
        self.driver_sql = re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql.replace("%", "%%"))

    def first(self, session: Session, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        connection = session.connection()
        fairy = connection.connection
        cursor = fairy.cursor()
        try:
            cursor.execute(self.driver_sql, params)
            row = cursor.fetchone()
        except connection.dialect.loaded_dbapi.Error as error:
            lost = connection.dialect.is_disconnect(error, fairy.dbapi_connection, cursor)
            if lost:
                connection.invalidate(error)
            raise DBAPIError.instance(
                self.sql,
                dict(params),
                error,
                connection.dialect.loaded_dbapi.Error,
                connection_invalidated=lost,
                dialect=connection.dialect,
            ) from error
        finally:
            cursor.close()
        return None if row is None else tuple(row)


class Database:
    """The writer and reader session factories; on PostgreSQL both use one engine."""

    def __init__(self, url: str, *, pool_size: int | None = None) -> None:
        if pool_size is None:
            pool_size = Settings().database_pool_size
        self.url = url
        self.writer_engine = make_engine(url, for_writes=True, pool_size=pool_size)
        if url.startswith("sqlite"):
            self.reader_engine = make_engine(url, for_writes=False, pool_size=pool_size)
        else:
            self.reader_engine = self.writer_engine
        self.write_session = sessionmaker(self.writer_engine, expire_on_commit=False)
        self.read_session = sessionmaker(self.reader_engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.writer_engine.dialect.name

    def session(self, *, write: bool) -> Session:
        return self.write_session() if write else self.read_session()

    def dispose(self) -> None:
        self.writer_engine.dispose()
        if self.reader_engine is not self.writer_engine:
            self.reader_engine.dispose()
