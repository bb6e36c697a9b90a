"""Version stamps: one counter per org that says when what decides its requests last changed.

Each org has a version (`access_versions`). Any change to a row that decides an org's requests
bumps it in the same transaction, whatever code made the change: the domains name those tables
and columns with `track` (memberships, teams, custom roles and grants decide access; the org's
plan, its custom plan and its own rate limits decide admission). A session listener watches
flushes of tracked tables and bulk UPDATE/DELETE statements on them. A request reads the stamp
once (one primary key lookup) and uses what the process cached only if it was built at that
version: the compiled access snapshots of `authz.policy`, and through `stamped` what other
domains derive (the effective plan, the rates, which org a team is in). A change committed by
any process is seen by every other on its next request; nothing is served stale.

A value built inside a transaction that itself changed the org's decisions is used by that
transaction only and never cached: the transaction may still roll back.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar, cast
from weakref import WeakKeyDictionary

from sqlalchemy import BigInteger, ForeignKey, event, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, UOWTransaction, mapped_column

from tenantry.kit.db import Base

CACHE_CAPACITY: Final = 4096
DERIVED_CAPACITY: Final = 65_536
_DIRTY = "tenantry.stamps.dirty_orgs"  # orgs whose decisions this transaction changed
_VERSIONS = "tenantry.stamps.versions"  # the versions this transaction has read, by org
_PENDING = "tenantry.stamps.pending"  # orgs changed by the flush under way
# Keys of `session.info` that other modules keep per transaction and that go stale with a bump
# (`authz.policy` keeps the snapshots a transaction used): cleared at the transaction's end,
# and their entries for a bumped org at the bump.
_PER_TRANSACTION: list[str] = []


class OrgVersion(Base):
    """One row per org, bumped in the same transaction as any change to what decides its
    requests. Every process compares it with the version of what it cached on each request:
    one indexed read, and another process's change is seen."""

    __tablename__ = "access_versions"

    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(BigInteger, default=0)


@dataclass(frozen=True)
class _Tracked:
    deciding: frozenset[str] | None  # the columns that decide (None: any column)
    org_column: str  # the column naming the row's org
    added_or_removed: bool  # whether a new or deleted row changes a decision


_tracked: dict[type, _Tracked] = {}
_tracked_tables: dict[str, _Tracked] = {}


def track(
    model: type,
    *,
    deciding: frozenset[str] | None = None,
    org_column: str = "org_id",
    added_or_removed: bool = True,
) -> None:
    """Declare a table whose rows decide an org's requests: a change to one of its `deciding`
    columns (any column when None) bumps the org's version. Renaming a team, or recording that a
    grant's expiry was audited, leaves every decision as it was. A new org has nothing cached
    yet and a deleted one nothing left to decide: their rows are `added_or_removed=False`."""
    entry = _Tracked(deciding, org_column, added_or_removed)
    _tracked[model] = entry
    _tracked_tables[model.__tablename__] = entry  # type: ignore[attr-defined]


def keep_per_transaction(key: str) -> None:
    """Name a `session.info` entry (a dict keyed "org|…") that holds values valid for this
    transaction only: forgotten at its end, and its entries for an org dropped when it bumps."""
    if key not in _PER_TRANSACTION:
        _PER_TRANSACTION.append(key)


_V = TypeVar("_V")


class StampedCache(Generic[_V]):
    """Values by key, each with the org version it was built at; least recently used evicted."""

    def __init__(self, capacity: int = CACHE_CAPACITY) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[int, _V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, version: int) -> _V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != version:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: str, version: int, value: _V) -> None:
        with self._lock:
            self._entries[key] = (version, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_registries: list[WeakKeyDictionary[Engine, StampedCache[Any]]] = []
_caches_lock = threading.Lock()


def engine_caches() -> WeakKeyDictionary[Engine, StampedCache[Any]]:
    """A new family of caches, one per database engine: two `Database` objects on one database
    behave like two processes (each has its own cache and sees the other's changes through the
    version stamp). `clear_caches` empties every family."""
    registry: WeakKeyDictionary[Engine, StampedCache[Any]] = WeakKeyDictionary()
    _registries.append(registry)
    return registry


def cache_in(
    registry: WeakKeyDictionary[Engine, StampedCache[Any]], session: Session, capacity: int
) -> StampedCache[Any]:
    bind: Any = session.get_bind()
    engine: Engine = getattr(bind, "engine", bind)
    with _caches_lock:
        cache = registry.get(engine)
        if cache is None:
            cache = registry[engine] = StampedCache(capacity)
        return cache


def clear_caches() -> None:
    """Forget everything cached under version stamps in this process (benchmarks: the cold
    path)."""
    with _caches_lock:
        for registry in _registries:
            for cache in registry.values():
                cache.clear()


# What other domains derive from an org's deciding rows (see `stamped`), keyed "what|org".
_derived = engine_caches()


_VERSION_QUERY = text("SELECT version FROM access_versions WHERE org_id = :org")


def version_of(session: Session, org_id: str) -> int:
    """The org's version as the database has it now; read on every request, so as plain SQL
    (see `_SLICE_SQL`)."""
    version = session.execute(_VERSION_QUERY, {"org": org_id}).scalar()
    return int(version or 0)


def current_version(session: Session, org_id: str) -> int | None:
    """The org's version for this transaction: read once, then remembered until it ends (the
    limiter, the team lookup, the plan and the permission check of one request share one
    read). None when this transaction changed the org's decisions: nothing it reads may be
    cached. Pending changes are flushed first, so that they bump the version."""
    if session.new or session.deleted or session.dirty:
        session.flush()
    if org_id in session.info.get(_DIRTY, ()):
        return None
    versions: dict[str, int] = session.info.setdefault(_VERSIONS, {})
    version = versions.get(org_id)
    if version is None:
        version = versions[org_id] = version_of(session, org_id)
    return version


def note_version(session: Session, org_id: str, version: int) -> None:
    """The org's version as another read of this transaction found it (an API key's lookup
    brings its org's): `current_version` need not read it again."""
    if org_id not in session.info.get(_DIRTY, ()):
        session.info.setdefault(_VERSIONS, {}).setdefault(org_id, version)


def stamped(session: Session, org_id: str, what: str, load: Callable[[], _V]) -> _V:
    """`load()`, a value derived only from rows that bump the org's version (its plan, its
    rate limits, its teams, ...), cached in this process under that version. `what` names the
    value within the org, and must be unique across callers."""
    version = current_version(session, org_id)
    if version is None:
        return load()
    cache = cache_in(_derived, session, DERIVED_CAPACITY)
    key = f"{what}|{org_id}"
    found = cache.get(key, version)
    if found is None:
        found = (load(),)  # boxed: None is a value too (an org with no limits of its own)
        cache.put(key, version, found)
    return cast(_V, found[0])


def _bump_statement(dialect: str, org_id: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(OrgVersion).values(org_id=org_id, version=1)
    return statement.on_conflict_do_update(
        index_elements=[OrgVersion.org_id], set_={"version": OrgVersion.version + 1}
    )


def bump(session: Session, org_ids: set[str]) -> None:
    """Mark the orgs' decisions changed, in the session's transaction."""
    if not org_ids:
        return
    connection = session.connection()
    for org_id in sorted(org_ids):  # a fixed order: two transactions cannot deadlock on them
        connection.execute(_bump_statement(connection.dialect.name, org_id))
    session.info.setdefault(_DIRTY, set()).update(org_ids)
    versions: dict[str, int] = session.info.get(_VERSIONS, {})
    for org_id in org_ids:
        versions.pop(org_id, None)
    for name in _PER_TRANSACTION:
        local: dict[str, Any] = session.info.get(name, {})
        for key in [k for k in local if k.split("|", 1)[0] in org_ids]:
            del local[key]


def _changed_orgs(session: Session) -> set[str]:
    found: set[str] = set()
    for obj in (*session.new, *session.deleted):
        entry = _tracked.get(type(obj))
        if entry is not None and entry.added_or_removed:
            found.add(str(getattr(obj, entry.org_column)))
    for obj in session.dirty:
        entry = _tracked.get(type(obj))
        if entry is not None and _decides(obj, entry.deciding):
            found.add(str(getattr(obj, entry.org_column)))
    return found


def _decides(obj: Any, deciding: frozenset[str] | None) -> bool:
    state = inspect(obj)
    return any(
        attr.history.has_changes()
        for attr in state.attrs
        if deciding is None or attr.key in deciding
    )


@event.listens_for(Session, "before_flush")
def _remember_changes(session: Session, flush_context: UOWTransaction, instances: Any) -> None:
    # Read before the flush (afterwards `dirty` is empty); bumped after it, once rows exist.
    orgs = _changed_orgs(session)
    if orgs:
        session.info.setdefault(_PENDING, set()).update(orgs)


@event.listens_for(Session, "after_flush")
def _bump_changed(session: Session, flush_context: UOWTransaction) -> None:
    pending: set[str] = session.info.pop(_PENDING, set())
    bump(session, {org for org in pending if org})


@event.listens_for(Session, "do_orm_execute")
def _bump_bulk_changes(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    entry = _tracked_tables.get(getattr(table, "name", None) or "") if table is not None else None
    if entry is None:
        return
    # Which orgs the statement touches: the same WHERE, asked before it runs.
    query = select(table.c[entry.org_column]).distinct()  # type: ignore[union-attr]
    where = state.statement.whereclause  # type: ignore[attr-defined]
    if where is not None:
        query = query.where(where)
    orgs = set(state.session.scalars(query))
    bump(state.session, orgs)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_transaction(session: Session) -> None:
    session.info.pop(_DIRTY, None)
    session.info.pop(_VERSIONS, None)
    session.info.pop(_PENDING, None)
    for name in _PER_TRANSACTION:
        session.info.pop(name, None)
