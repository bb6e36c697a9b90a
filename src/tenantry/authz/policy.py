"""Where the engine's snapshots come from: an org's policy loaded through the registered
`PolicySource`, compiled, cached in this process under the org's version stamp (`kit.stamps`),
and known stale when the stamp moves.
"""

from __future__ import annotations

from typing import Final, Protocol

from sqlalchemy.orm import Session

from tenantry.authz.engine import PolicyData, Snapshot
from tenantry.kit.stamps import (
    CACHE_CAPACITY,
    StampedCache,
    cache_in,
    current_version,
    engine_caches,
    keep_per_transaction,
)

_LOCAL = "tenantry.access.snapshots"  # snapshots this transaction has used, by org
keep_per_transaction(_LOCAL)


class PolicySource(Protocol):
    """Reads an org's policy rows (memberships, the team tree, custom roles, grants) as plain
    data. The domain that owns those rows registers one (`tenantry.access`); authz stays below
    the domains it decides for."""

    def load(self, session: Session, org_id: str) -> PolicyData: ...

    def load_principal(
        self, session: Session, org_id: str, user_id: str, key_id: str | None
    ) -> PolicyData: ...


_sources: list[PolicySource] = []


def register_source(source: PolicySource) -> None:
    _sources[:] = [source]


def _source() -> PolicySource:
    if not _sources:
        raise RuntimeError("no policy source is registered: import tenantry.access first")
    return _sources[0]


# ---- the process-local caches ----


SnapshotCache = StampedCache[Snapshot]
_caches = engine_caches()
# Principal slices (see `principal_snapshot`), keyed "org|user|key", per engine likewise.
_slices = engine_caches()
SLICE_CAPACITY: Final = 65_536


def cache_for(session: Session) -> SnapshotCache:
    return cache_in(_caches, session, CACHE_CAPACITY)


def slice_cache_for(session: Session) -> SnapshotCache:
    return cache_in(_slices, session, SLICE_CAPACITY)


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
        snapshot = Snapshot(_source().load(session, org_id))
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
        snapshot = Snapshot(_source().load_principal(session, org_id, user_id, key_id))
        if version is not None:
            slices.put(slice_key, version, snapshot)
    local[slice_key] = snapshot
    return snapshot
