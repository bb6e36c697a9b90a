"""Where the engine's snapshots come from: an org's policy loaded, cached, and known stale.

Each org has a version stamp (`access_versions`). Any change to what decides an org's requests
bumps it in the same transaction, whatever code made the change: what decides access (an org or
team membership, a team, its parent and inheritance setting, a custom role, a grant) and what
decides admission (the org's catalog plan, its custom plan, its own rate limits). A session
listener watches flushes of those tables and bulk UPDATE/DELETE statements on them. A request
reads the stamp once (one primary key lookup) and uses what the process cached only if it was
built at that version: the compiled snapshot here, and through `stamped` what other domains
derive (the effective plan, the rates, which org a team is in). A change committed by any
process is seen by every other on its next request; nothing is served stale.

A value built inside a transaction that itself changed the org's decisions is used by that
transaction only and never cached: the transaction may still roll back.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Generic, TypeVar, cast
from weakref import WeakKeyDictionary

import orjson
from sqlalchemy import and_, event, inspect, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from tenantry.access.catalog import OrgRole
from tenantry.access.engine import (
    CustomRoleData,
    GrantData,
    PolicyData,
    Snapshot,
    TeamData,
)
from tenantry.access.models import AccessVersion, CustomRole, Grant
from tenantry.metering.models import PlanOverride
from tenantry.tenancy.models import Organization, OrgMembership, Team, TeamMembership
from tenantry.throttling.models import RateLimitOverride

CACHE_CAPACITY: Final = 4096
# Settings key by which a team stops inheriting roles from its parent team.
INHERIT_SETTING: Final = "inherit_access"
_TRACKED = (
    OrgMembership,
    TeamMembership,
    Team,
    CustomRole,
    Grant,
    Organization,
    PlanOverride,
    RateLimitOverride,
)
# For a changed row: the columns that decide (None: any column). Renaming a team, or recording
# that a grant's expiry was audited, leaves every decision as it was.
_DECIDING: dict[type, frozenset[str] | None] = {
    OrgMembership: frozenset({"role", "user_id"}),
    TeamMembership: frozenset({"role", "user_id", "team_id"}),
    Team: frozenset({"parent_team_id", "settings"}),
    CustomRole: None,
    Grant: frozenset(
        {"subject_type", "subject_id", "resource_type", "resource_id", "team_id"}
        | {"role", "permissions", "expires_at"}
    ),
    Organization: frozenset({"plan"}),
    PlanOverride: None,
    RateLimitOverride: None,
}
# The column naming a tracked row's org, where it is not `org_id`.
_ORG_COLUMN: dict[str, str] = {Organization.__tablename__: "id"}
_TRACKED_TABLES = frozenset(cls.__tablename__ for cls in _TRACKED)
_DIRTY = "tenantry.access.dirty_orgs"  # orgs whose policy this transaction changed
_LOCAL = "tenantry.access.snapshots"  # snapshots this transaction has used, by org
_VERSIONS = "tenantry.access.versions"  # the versions this transaction has read, by org


# ---- loading ----


def _org_roles(session: Session, org_id: str, user_id: str | None) -> dict[str, OrgRole]:
    query = select(OrgMembership.user_id, OrgMembership.role).where(OrgMembership.org_id == org_id)
    if user_id is not None:
        query = query.where(OrgMembership.user_id == user_id)
    return {
        user: OrgRole(role)
        for user, role in session.execute(query)
        if role in OrgRole._value2member_map_
    }


def _teams(session: Session, org_id: str) -> dict[str, TeamData]:
    return {
        team_id: TeamData(team_id, parent, (settings or {}).get(INHERIT_SETTING, True) is not False)
        for team_id, parent, settings in session.execute(
            select(Team.id, Team.parent_team_id, Team.settings).where(Team.org_id == org_id)
        )
    }


def _team_roles(session: Session, org_id: str, user_id: str | None) -> dict[tuple[str, str], str]:
    query = select(TeamMembership.team_id, TeamMembership.user_id, TeamMembership.role).where(
        TeamMembership.org_id == org_id
    )
    if user_id is not None:
        query = query.where(TeamMembership.user_id == user_id)
    return {(team_id, user): role for team_id, user, role in session.execute(query)}


def _roles(session: Session, org_id: str) -> dict[str, CustomRoleData]:
    return {
        role_id: CustomRoleData(role_id, name, frozenset(perms or ()), tuple(inherits or ()))
        for role_id, name, perms, inherits in session.execute(
            select(
                CustomRole.id, CustomRole.name, CustomRole.permissions, CustomRole.inherits
            ).where(CustomRole.org_id == org_id)
        )
    }


def _grants(
    session: Session, org_id: str, subjects: list[tuple[str, str]] | None
) -> list[GrantData]:
    query = select(
        Grant.id,
        Grant.subject_type,
        Grant.subject_id,
        Grant.resource_type,
        Grant.resource_id,
        Grant.team_id,
        Grant.role,
        Grant.permissions,
        Grant.expires_at,
    ).where(Grant.org_id == org_id)
    if subjects is not None:
        # Served by the unique index (org_id, subject_type, subject_id, …).
        query = query.where(
            or_(
                *(
                    and_(Grant.subject_type == kind, Grant.subject_id == ident)
                    for kind, ident in subjects
                )
            )
        )
    return [
        GrantData(
            id=row.id,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            resource_type=row.resource_type,
            resource_id=row.resource_id,
            team_id=row.team_id,
            role=row.role,
            permissions=frozenset(row.permissions) if row.permissions is not None else None,
            expires_at=row.expires_at,
        )
        for row in session.execute(query)
    ]


def load_policy(session: Session, org_id: str) -> PolicyData:
    """The org's policy rows as plain data (columns only, no ORM objects: this is the cold path)."""
    return PolicyData(
        org_id=org_id,
        org_roles=_org_roles(session, org_id, None),
        teams=_teams(session, org_id),
        team_roles=_team_roles(session, org_id, None),
        roles=_roles(session, org_id),
        grants=_grants(session, org_id, None),
    )


# The slice of one principal, in one statement of indexed reads: the cold path of a request,
# where SQLAlchemy's per-statement work would cost more than the reads (each branch is served by
# an index; an OR across subject types would scan the org's grants). Rows are tagged by kind;
# every value is read as text (PostgreSQL's UNION needs one type per column) and typed below.
_SLICE_SQL = """
SELECT 'org_role', role, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM org_memberships WHERE org_id = :org AND user_id = :user
UNION ALL
SELECT 'team_role', team_id, role, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM team_memberships WHERE org_id = :org AND user_id = :user
UNION ALL
SELECT 'team', id, parent_team_id, TXT(settings), NULL, NULL, NULL, NULL, NULL, NULL
  FROM teams WHERE org_id = :org
UNION ALL
SELECT 'role', id, name, TXT(permissions), TXT(inherits), NULL, NULL, NULL, NULL, NULL
  FROM access_roles WHERE org_id = :org
UNION ALL
SELECT 'grant', id, subject_type, subject_id, resource_type, resource_id, team_id, role,
       TXT(permissions), TXT(expires_at)
  FROM access_grants WHERE org_id = :org AND subject_type = 'user' AND subject_id = :user
UNION ALL
SELECT 'grant', id, subject_type, subject_id, resource_type, resource_id, team_id, role,
       TXT(permissions), TXT(expires_at)
  FROM access_grants WHERE org_id = :org AND subject_type = 'api_key' AND subject_id = :key
UNION ALL
SELECT 'grant', id, subject_type, subject_id, resource_type, resource_id, team_id, role,
       TXT(permissions), TXT(expires_at)
  FROM access_grants WHERE org_id = :org AND subject_type = 'team' AND subject_id IN (
       SELECT team_id FROM team_memberships WHERE org_id = :org AND user_id = :user)
"""
_SLICE_QUERIES = {
    "sqlite": text(re.sub(r"TXT\((\w+)\)", r"\1", _SLICE_SQL)),
    "postgresql": text(re.sub(r"TXT\((\w+)\)", r"CAST(\1 AS TEXT)", _SLICE_SQL)),
}


def _json(value: str | None) -> Any:
    return orjson.loads(value) if value is not None else None


def _moment(value: str | None) -> datetime | None:
    """A timestamp read as text: SQLite's naive UTC text, or PostgreSQL's with an offset."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def load_principal_policy(
    session: Session, org_id: str, user_id: str, key_id: str | None
) -> PolicyData:
    """The part of the org's policy that can decide anything for one user (or their API key):
    their org role, the team tree, their team memberships, the custom roles, and the grants to
    them, to their teams and to the key — one statement, whatever the org's size."""
    org_roles: dict[str, OrgRole] = {}
    teams: dict[str, TeamData] = {}
    team_roles: dict[tuple[str, str], str] = {}
    roles: dict[str, CustomRoleData] = {}
    grants: list[GrantData] = []
    query = _SLICE_QUERIES[session.get_bind().dialect.name]
    rows = session.execute(query, {"org": org_id, "user": user_id, "key": key_id or ""})
    for kind, a, b, c, d, e, f, g, h, i in rows:
        if kind == "org_role":
            if a in OrgRole._value2member_map_:
                org_roles[user_id] = OrgRole(a)
        elif kind == "team_role":
            team_roles[(a, user_id)] = b
        elif kind == "team":
            inherits = (_json(c) or {}).get(INHERIT_SETTING, True) is not False
            teams[a] = TeamData(a, b, inherits)
        elif kind == "role":
            roles[a] = CustomRoleData(a, b, frozenset(_json(c) or ()), tuple(_json(d) or ()))
        else:
            permissions = _json(h)
            grants.append(
                GrantData(
                    id=a,
                    subject_type=b,
                    subject_id=c,
                    resource_type=d,
                    resource_id=e,
                    team_id=f,
                    role=g,
                    permissions=frozenset(permissions) if permissions is not None else None,
                    expires_at=_moment(i),
                )
            )
    return PolicyData(
        org_id=org_id,
        org_roles=org_roles,
        teams=teams,
        team_roles=team_roles,
        roles=roles,
        grants=grants,
    )


# ---- the process-local cache ----


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


SnapshotCache = StampedCache[Snapshot]

# One cache per database engine: two `Database` objects on one database behave like two
# processes (each has its own cache and sees the other's changes through the version stamp).
_caches: WeakKeyDictionary[Engine, StampedCache[Any]] = WeakKeyDictionary()
# Principal slices (see `principal_snapshot`), keyed "org|user|key", per engine likewise.
_slices: WeakKeyDictionary[Engine, StampedCache[Any]] = WeakKeyDictionary()
SLICE_CAPACITY: Final = 65_536
# What other domains derive from an org's deciding rows (see `stamped`), keyed "what|org".
_derived: WeakKeyDictionary[Engine, StampedCache[Any]] = WeakKeyDictionary()
DERIVED_CAPACITY: Final = 65_536
_caches_lock = threading.Lock()


def _cache_in(
    registry: WeakKeyDictionary[Engine, StampedCache[Any]], session: Session, capacity: int
) -> StampedCache[Any]:
    bind: Any = session.get_bind()
    engine: Engine = getattr(bind, "engine", bind)
    with _caches_lock:
        cache = registry.get(engine)
        if cache is None:
            cache = registry[engine] = StampedCache(capacity)
        return cache


def cache_for(session: Session) -> SnapshotCache:
    return _cache_in(_caches, session, CACHE_CAPACITY)


def slice_cache_for(session: Session) -> SnapshotCache:
    return _cache_in(_slices, session, SLICE_CAPACITY)


def clear_caches() -> None:
    """Forget everything cached under version stamps in this process (benchmarks: the cold
    path)."""
    with _caches_lock:
        for cache in (*_caches.values(), *_slices.values(), *_derived.values()):
            cache.clear()


# ---- versions ----


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
    cache = _cache_in(_derived, session, DERIVED_CAPACITY)
    key = f"{what}|{org_id}"
    found = cache.get(key, version)
    if found is None:
        found = (load(),)  # boxed: None is a value too (an org with no limits of its own)
        cache.put(key, version, found)
    return cast(_V, found[0])


def _bump_statement(dialect: str, org_id: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(AccessVersion).values(org_id=org_id, version=1)
    return statement.on_conflict_do_update(
        index_elements=[AccessVersion.org_id], set_={"version": AccessVersion.version + 1}
    )


def bump(session: Session, org_ids: set[str]) -> None:
    """Mark the orgs' policies changed, in the session's transaction."""
    if not org_ids:
        return
    connection = session.connection()
    for org_id in sorted(org_ids):  # a fixed order: two transactions cannot deadlock on them
        connection.execute(_bump_statement(connection.dialect.name, org_id))
    session.info.setdefault(_DIRTY, set()).update(org_ids)
    versions: dict[str, int] = session.info.get(_VERSIONS, {})
    for org_id in org_ids:
        versions.pop(org_id, None)
    local: dict[str, Snapshot] = session.info.get(_LOCAL, {})
    for key in [k for k in local if k.split("|", 1)[0] in org_ids]:
        del local[key]


def _changed_orgs(session: Session) -> set[str]:
    found: set[str] = set()
    for obj in (*session.new, *session.deleted):
        # A new org has nothing cached yet; a deleted one has nothing left to decide.
        if isinstance(obj, _TRACKED) and not isinstance(obj, Organization):
            found.add(_org_of(obj))
    for obj in session.dirty:
        if isinstance(obj, _TRACKED) and _decides_access(obj):
            found.add(_org_of(obj))
    return found


def _org_of(obj: Any) -> str:
    return str(obj.id if isinstance(obj, Organization) else obj.org_id)


def _decides_access(obj: Any) -> bool:
    deciding = _DECIDING[type(obj)]
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
        session.info.setdefault("tenantry.access.pending", set()).update(orgs)


@event.listens_for(Session, "after_flush")
def _bump_changed(session: Session, flush_context: UOWTransaction) -> None:
    pending: set[str] = session.info.pop("tenantry.access.pending", set())
    bump(session, {org for org in pending if org})


@event.listens_for(Session, "do_orm_execute")
def _bump_bulk_changes(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    if table is None or getattr(table, "name", None) not in _TRACKED_TABLES:
        return
    # Which orgs the statement touches: the same WHERE, asked before it runs.
    query = select(table.c[_ORG_COLUMN.get(table.name, "org_id")]).distinct()
    where = state.statement.whereclause  # type: ignore[attr-defined]
    if where is not None:
        query = query.where(where)
    orgs = set(state.session.scalars(query))
    bump(state.session, orgs)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_transaction(session: Session) -> None:
    session.info.pop(_DIRTY, None)
    session.info.pop(_LOCAL, None)
    session.info.pop(_VERSIONS, None)
    session.info.pop("tenantry.access.pending", None)


# ---- the snapshot of a request ----


def snapshot_for(session: Session, org_id: str) -> Snapshot:
    """The org's compiled policy as of this transaction: the process's cached snapshot if its
    version is current, else a fresh one (cached unless this transaction changed the policy)."""
    if session.new or session.deleted or session.dirty:
        session.flush()  # pending policy changes bump the version before it is read
    local: dict[str, Snapshot] = session.info.setdefault(_LOCAL, {})
    found = local.get(org_id)
    if found is not None:
        return found
    version = current_version(session, org_id)
    cache = cache_for(session)
    snapshot = None if version is None else cache.get(org_id, version)
    if snapshot is None:
        snapshot = Snapshot(load_policy(session, org_id))
        if version is not None:
            cache.put(org_id, version, snapshot)
    local[org_id] = snapshot
    return snapshot


def principal_snapshot(
    session: Session, org_id: str, user_id: str, key_id: str | None = None
) -> Snapshot:
    """A snapshot good for every decision about one user (or their API key) in the org: the
    org's whole snapshot when it is cached and current, else a slice of the policy for that
    principal alone (cached the same way). The request path uses this: a cold miss costs a few
    indexed reads instead of compiling the whole org."""
    if session.new or session.deleted or session.dirty:
        session.flush()
    local: dict[str, Snapshot] = session.info.setdefault(_LOCAL, {})
    found = local.get(org_id)
    if found is not None:
        return found
    slice_key = f"{org_id}|{user_id}|{key_id or ''}"
    found = local.get(slice_key)
    if found is not None:
        return found
    version = current_version(session, org_id)
    whole = None if version is None else cache_for(session).get(org_id, version)
    if whole is not None:
        local[org_id] = whole
        return whole
    slices = slice_cache_for(session)
    snapshot = None if version is None else slices.get(slice_key, version)
    if snapshot is None:
        snapshot = Snapshot(load_principal_policy(session, org_id, user_id, key_id))
        if version is not None:
            slices.put(slice_key, version, snapshot)
    local[slice_key] = snapshot
    return snapshot
