"""Artifacts: the files of runs, logged models and model versions, each with its size and
sha256, counted against the org's `storage_gb` quota.

A path is relative to the team's artifact root, as MLflow's `mlflow-artifacts:` URIs name it:

    <experiment>/<run>/artifacts/<file>             a run's files
    <experiment>/models/<logged model>/artifacts/<file>
    registry/<registered model>/<version>/<file>    a file uploaded with a model version

An upload is three steps, so that no database transaction is open while bytes flow:
`check_upload` (who may write there, and how many bytes the plan has room for), the bytes
streamed to a staging key through a `Measured` reader (size, sha256, the room enforced as
they arrive), then `record_upload` in one transaction (the quota claimed again under its lock,
the row, the usage, the audit event), after which the staged bytes are moved into place.
Deleting a run, a model version or a model deletes its files once the transaction commits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_UP, Decimal
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission as P
from tenantry.authz.principal import Principal
from tenantry.kit.context import Ctx
from tenantry.kit.errors import InvalidValue, NotFound, PayloadTooLarge, PaymentRequired, Problem
from tenantry.kit.ids import new_id
from tenantry.metering.quotas import claim_level, level_room
from tenantry.metering.recording import record_usage
from tenantry.ml import registry, repository
from tenantry.ml.common import TeamIn, allow, now_ms
from tenantry.ml.models import ACTIVE, Artifact
from tenantry.ml.stores import ArtifactStore, Readable

STORAGE = "storage_gb"
BYTES_PER_GB = Decimal(10**9)
_GB_STEP = Decimal("0.000001")


def gigabytes(size: int) -> Decimal:
    """A size in GB as the storage meter counts it (to the kilobyte, rounded up): the same
    function of the same size on writing and on deleting, so the level returns to zero."""
    return (Decimal(size) / BYTES_PER_GB).quantize(_GB_STEP, rounding=ROUND_UP)


def storage_key(team: TeamIn, path: str) -> str:
    return f"{team.org_id}/{team.id}/{path}"


def check_path(path: str) -> str:
    path = path.strip("/")
    parts = path.split("/")
    if not path or any(p in ("", ".", "..") for p in parts) or "\x00" in path or "\\" in path:
        raise InvalidValue(f"Invalid artifact path {path[:200]!r}")
    if len(path) > 1024:
        raise InvalidValue("An artifact path is at most 1024 characters")
    return path


@dataclass(frozen=True)
class Owner:
    """What a path belongs to."""

    kind: str  # experiment | run | logged_model | model_version
    id: str
    model: str | None = None  # the registered model's id, for a model version's files


def owner_of(
    session: Session, principal: Principal, team: TeamIn, path: str, *, write: bool
) -> Owner:
    """Who owns `path` in the team, with the principal's permission to read (or write) it
    checked; 404 for a path that names nothing of the team's."""
    parts = check_path(path).split("/")
    if parts[0] == registry.REGISTRY_ROOT:
        if len(parts) < 3 or (write and len(parts) < 4):
            raise NotFound(f"No artifact at {path!r}")
        model = repository.registered_model_by_id(session, team_id=team.id, model_id=parts[1])
        if model is None:
            raise NotFound(f"No artifact at {path!r}")
        registry._allow_model(session, principal, P.MODEL_UPDATE if write else P.MODEL_READ, model)
        number = int(parts[2]) if parts[2].isdigit() else 0
        if repository.model_version(session, model.id, number) is None:
            raise NotFound(f"No artifact at {path!r}")
        return Owner("model_version", f"{model.id}/{number}", model=model.id)
    allow(session, principal, P.EXPERIMENT_UPDATE if write else P.EXPERIMENT_READ, team)
    experiment = repository.experiment(session, team_id=team.id, experiment_id=parts[0])
    if experiment is None:
        raise NotFound(f"No artifact at {path!r}")
    if len(parts) >= 3 and parts[1] == "models":
        logged = repository.logged_model(session, team_id=team.id, model_id=parts[2])
        if logged is None or logged.experiment_id != experiment.id:
            raise NotFound(f"No artifact at {path!r}")
        if write and (len(parts) < 5 or parts[3] != "artifacts"):
            raise InvalidValue(
                "A logged model's files go under <experiment>/models/<id>/artifacts/"
            )
        return Owner("logged_model", logged.id)
    if len(parts) >= 2:
        found = repository.run(session, team_id=team.id, run_id=parts[1])
        if found is None or found.experiment_id != experiment.id:
            raise NotFound(f"No artifact at {path!r}")
        if write:
            if len(parts) < 4 or parts[2] != "artifacts":
                raise InvalidValue("A run's files go under <experiment>/<run>/artifacts/")
            if found.lifecycle_stage != ACTIVE:
                raise InvalidValue(f"Run {found.id!r} is deleted; restore it to add files")
        return Owner("run", found.id)
    if write:
        raise InvalidValue("Files go in a run's or a model's folder")
    return Owner("experiment", experiment.id)


# ---- uploading ----


@dataclass(frozen=True)
class UploadPlan:
    path: str
    owner: Owner
    # How many bytes this file may hold: the plan's room (plus what it replaces) and the
    # deployment's cap on one file.
    cap: int
    replaces: int


def check_upload(
    session: Session, principal: Principal, team: TeamIn, path: str, *, max_bytes: int, now: Any
) -> UploadPlan:
    path = check_path(path)
    owner = owner_of(session, principal, team, path, write=True)
    held = repository.artifact(session, team_id=team.id, path=path)
    replaces = held.size if held is not None else 0
    room = level_room(session, team.org_id, STORAGE, now=now)
    cap = max_bytes
    if room is not None:
        cap = min(cap, int(room * BYTES_PER_GB) + replaces)
    return UploadPlan(path, owner, max(cap, 0), replaces)


class TooLarge(Exception):
    def __init__(self, cap: int) -> None:
        super().__init__(cap)
        self.cap = cap


class Measured:
    """A reader that counts and hashes what passes through it, and stops past `cap` bytes."""

    def __init__(self, source: Readable, cap: int) -> None:
        self.source = source
        self.cap = cap
        self.size = 0
        self.digest = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        chunk = self.source.read(size)
        self.size += len(chunk)
        if self.size > self.cap:
            raise TooLarge(self.cap)
        self.digest.update(chunk)
        return chunk

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


def too_large(plan: UploadPlan, max_bytes: int) -> Problem:
    """402 when the file does not fit in the plan's storage, 413 past the per-file cap."""
    if plan.cap < max_bytes:
        return PaymentRequired(
            f"The file does not fit in the organization's storage quota ({plan.cap} bytes "
            "left); upgrade the plan or delete files",
            code="quota_exceeded",
            extra={"quota": STORAGE, "remaining_bytes": plan.cap},
        )
    return PayloadTooLarge(f"A file is at most {max_bytes} bytes")


def record_upload(
    ctx: Ctx,
    principal: Principal,
    team: TeamIn,
    plan: UploadPlan,
    *,
    size: int,
    sha256: str,
    action: str = "artifact.uploaded",
) -> Artifact:
    """The upload's row, in the caller's transaction: the storage it adds claimed under the
    quota's lock (402 if another upload took the room meanwhile), recorded as usage, audited."""
    session = ctx.session
    held = repository.artifact(session, team_id=team.id, path=plan.path)
    before = held.size if held is not None else 0
    added = gigabytes(size) - gigabytes(before)
    now = ctx.clock.now()
    claim_level(session, team.org_id, STORAGE, adding=added, now=now)
    when = now_ms(ctx)
    if held is None:
        values = {
            "org_id": team.org_id,
            "team_id": team.id,
            "path": plan.path,
            "size": size,
            "sha256": sha256,
            "created_by": principal.user_id,
            "created_ms": when,
        }
        repository.add_artifact(session, values)
        row = Artifact(**values)
    else:
        repository.update_artifact(
            session, held.id, {"size": size, "sha256": sha256, "created_ms": when}
        )
        held.size, held.sha256 = size, sha256
        row = held
    _record_storage(ctx, principal, team, added)
    audit.record(
        ctx,
        principal,
        org_id=team.org_id,
        team_id=team.id,
        target_type=plan.owner.kind,
        target_id=plan.owner.id,
        summary={"path": plan.path, "size": size, "sha256": sha256},
        action=action,
    )
    return row


def _record_storage(ctx: Ctx, principal: Principal, team: TeamIn, change: Decimal) -> None:
    if change == 0:
        return
    record_usage(
        ctx.session,
        org_id=team.org_id,
        meter=STORAGE,
        quantity=change,
        timestamp=ctx.clock.now(),
        event_id=new_id("use"),
        team_id=team.id,
        user_id=principal.user_id,
        api_key_id=principal.api_key_id,
    )


# ---- reading ----


def artifact(session: Session, principal: Principal, team: TeamIn, path: str) -> Artifact:
    path = check_path(path)
    owner_of(session, principal, team, path, write=False)
    found = repository.artifact(session, team_id=team.id, path=path)
    if found is None:
        raise NotFound(f"No artifact at {path!r}")
    return found


@dataclass(frozen=True)
class Listed:
    path: str  # relative to the listed folder
    is_dir: bool
    size: int | None
    sha256: str | None


def listing(session: Session, principal: Principal, team: TeamIn, folder: str) -> list[Listed]:
    """The files and folders directly in `folder` (empty for a file or nothing there)."""
    folder = check_path(folder)
    owner_of(session, principal, team, folder, write=False)
    entries: dict[str, Listed] = {}
    for found in repository.artifacts_under(session, team_id=team.id, prefix=folder):
        rest = found.path[len(folder) + 1 :]
        head, _, tail = rest.partition("/")
        if tail:
            entries.setdefault(head, Listed(head, True, None, None))
        else:
            entries[head] = Listed(head, False, found.size, found.sha256)
    return [entries[k] for k in sorted(entries)]


def files_under(session: Session, team: TeamIn, folder: str) -> list[Artifact]:
    return repository.artifacts_under(session, team_id=team.id, prefix=check_path(folder))


# ---- deleting ----


def forget(
    ctx: Ctx, principal: Principal, team: TeamIn, folders: list[str], store: ArtifactStore
) -> None:
    """Drop the rows of every file under `folders` with the caller's transaction, give their
    storage back, and delete the bytes once the transaction commits."""
    freed = Decimal(0)
    for folder in folders:
        found = repository.artifacts_under(ctx.session, team_id=team.id, prefix=folder)
        exact = repository.artifact(ctx.session, team_id=team.id, path=folder)
        if exact is not None:
            found.append(exact)
        freed += sum((gigabytes(a.size) for a in found), Decimal(0))
        repository.delete_artifacts(ctx.session, [a.id for a in found])
    _record_storage(ctx, principal, team, -freed)
    keys = [storage_key(team, folder) for folder in folders]

    def delete_bytes() -> None:
        for key in keys:
            store.delete_prefix(key)

    after_commit(ctx.session, delete_bytes)


def delete_path(
    ctx: Ctx, principal: Principal, team: TeamIn, path: str, store: ArtifactStore
) -> None:
    """Delete a file, or a folder of a run's or model's files, with one audit event."""
    path = check_path(path)
    owner = owner_of(ctx.session, principal, team, path, write=True)
    if not repository.artifacts_under(ctx.session, team_id=team.id, prefix=path) and (
        repository.artifact(ctx.session, team_id=team.id, path=path) is None
    ):
        raise NotFound(f"No artifact at {path!r}")
    forget(ctx, principal, team, [path], store)
    audit.record(
        ctx,
        principal,
        org_id=team.org_id,
        team_id=team.id,
        target_type=owner.kind,
        target_id=owner.id,
        summary={"path": path},
        action="artifact.deleted",
    )


_AFTER_COMMIT = "tenantry.ml.after_commit"


def after_commit(session: Session, work: Callable[[], object]) -> None:
    """Run `work` once the session's transaction commits (never if it rolls back)."""
    pending: list[Callable[[], object]] | None = session.info.get(_AFTER_COMMIT)
    if pending is None:
        pending = session.info[_AFTER_COMMIT] = []

        def run(_session: Session) -> None:
            for item in session.info.pop(_AFTER_COMMIT, []):
                item()

        def drop(_session: Session) -> None:
            session.info.pop(_AFTER_COMMIT, None)

        event.listen(session, "after_commit", run, once=True)
        event.listen(session, "after_soft_rollback", drop, once=True)
    pending.append(work)
