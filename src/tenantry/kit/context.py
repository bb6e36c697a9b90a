"""The unit of work a service runs in (`Ctx`: one session, one transaction, one commit, at most
one audit event), where a request came from (`Origin`), and the marks a route carries.

Endpoints that change something end with `return ctx.done(body, status=...)`, which stores the
response for `Idempotency-Key` replays and commits. Nothing is acknowledged before its commit.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from tenantry.kit import idempotency
from tenantry.kit.clock import Clock

if TYPE_CHECKING:
    from tenantry.config import Settings

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_AUTHENTICATES = "_tenantry_authenticates"
_F = TypeVar("_F", bound=Callable[..., Any])
_L = TypeVar("_L")


def authenticating(dependency: _F) -> _F:
    """Marks the dependency that verifies the caller's credential: an idempotent replay waits
    for it, so a revoked key or an ended session gets 401 rather than a stored answer."""
    setattr(dependency, _AUTHENTICATES, True)
    return dependency


_READS_ONLY = "_tenantry_reads_only"


def reads_only(endpoint: _F) -> _F:
    """Marks a POST that only answers a question (an access check): it runs on a read session,
    so on SQLite it does not queue for the single write lock behind real changes."""
    setattr(endpoint, _READS_ONLY, True)
    return endpoint


_WRITES_ON_GET = "_tenantry_writes_on_get"


def writes_on_get(endpoint: _F) -> _F:
    """Marks a GET that changes something: where an identity provider sends a person back
    (OIDC's redirect carries its answer in the query). It runs on a write session and takes its
    turn among the writers, as a POST does."""
    setattr(endpoint, _WRITES_ON_GET, True)
    return endpoint


def writes_on_get_route(route: Any) -> bool:
    return bool(getattr(getattr(route, "endpoint", None), _WRITES_ON_GET, False))


_QUOTA_EXEMPT = "_tenantry_quota_exempt"


def quota_exempt(endpoint: _F) -> _F:
    """Marks an endpoint that a hard daily API-calls quota never refuses: changing the plan and
    reading the quotas, limits and plan, which an org needs to get out of a used-up quota. Its
    requests still count as API calls and still pass the rate limits (docs/rate-limits.md)."""
    setattr(endpoint, _QUOTA_EXEMPT, True)
    return endpoint


def is_quota_exempt(request: Request) -> bool:
    route = request.scope.get("route")
    return bool(getattr(getattr(route, "endpoint", None), _QUOTA_EXEMPT, False))


def authenticates(route: Any) -> bool:
    pending = [getattr(route, "dependant", None)]
    while pending:
        dependant = pending.pop()
        if dependant is None:
            continue
        if getattr(dependant.call, _AUTHENTICATES, False):
            return True
        pending.extend(dependant.dependencies)
    return False


def reads_only_route(route: Any) -> bool:
    return bool(getattr(getattr(route, "endpoint", None), _READS_ONLY, False))


@dataclass
class Origin:
    """Where a request came from, as the audit trail records it."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    action: str | None = None
    # The server's address as the request reached it (invitation links), worked out only when
    # asked: building it costs more than the rest of an admission's request handling.
    base_url_of: Callable[[], str] = field(default=lambda: "http://127.0.0.1:8000")

    @property
    def base_url(self) -> str:
        return self.base_url_of()


_AS_BEFORE = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


@dataclass
class Ctx:
    session: Session
    clock: Clock
    settings: Settings
    origin: Origin
    write: bool
    idempotency_record: idempotency.IdempotencyRecord | None = None
    # A stored answer for this request's Idempotency-Key, given only once the credential that
    # sent it is verified (a revoked key or ended session gets 401, not a replay).
    replay: idempotency.Replay | None = None
    committed: bool = False
    state: dict[str, Any] = field(default_factory=dict)

    def done(self, body: BaseModel | dict[str, Any] | None, *, status: int = 200) -> Response:
        """Commit the unit of work and answer with `body` (replayable under its Idempotency-Key)."""
        if body is None:
            raw = b""
        elif isinstance(body, BaseModel):
            raw = body.model_dump_json().encode()
        else:
            # orjson: several times faster on large answers (1,000 results of a usage batch);
            # datetimes still go through str(), as the standard library wrote them.
            try:
                raw = orjson.dumps(body, default=str, option=_AS_BEFORE)
            except orjson.JSONEncodeError:  # an integer beyond 64 bits, which orjson refuses
                raw = json.dumps(body, default=str).encode()
        if self.idempotency_record is not None:
            idempotency.store_response(
                self.idempotency_record, status, raw, secret=self.settings.server_secret()
            )
        self.session.commit()
        self.committed = True
        if status == 204:
            return Response(status_code=204)
        return Response(raw, status_code=status, media_type="application/json")

    def keep(self) -> None:
        """Commit what a refused request must still leave behind (a failed-login count, a revoked
        token family) while the caller answers with an error; no idempotent replay is stored."""
        if self.idempotency_record is not None:
            if self.idempotency_record in self.session:
                self.session.delete(self.idempotency_record)
            self.idempotency_record = None
        self.session.commit()
        self.committed = True


def per_loop(app_state: Any, name: str, make: Callable[[], _L]) -> _L:
    """The app's one `name` object for the running event loop: asyncio and anyio primitives
    belong to the loop they were first used on, and a test client runs a loop of its own."""
    registry: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _L] | None = getattr(
        app_state, name, None
    )
    if registry is None:
        registry = weakref.WeakKeyDictionary()
        setattr(app_state, name, registry)
    loop = asyncio.get_running_loop()
    found = registry.get(loop)
    if found is None:
        found = registry[loop] = make()
    return found


def write_gate(app_state: Any) -> asyncio.Lock | None:
    """The lock by which this process's SQLite writers take turns on the event loop (None on
    PostgreSQL, whose writers lock rows, not the database). Anything else that writes from the
    event loop's side, such as the API-calls ledger, takes its turn here too: a writer that met
    SQLite's lock instead would wait in its busy handler, which sleeps up to 100 ms per retry."""
    if app_state.db.dialect != "sqlite":
        return None
    return per_loop(app_state, "write_gates", asyncio.Lock)
