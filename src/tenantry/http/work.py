"""A request's unit of work (`CtxDep`): its session opened as a reader or a writer, its
Idempotency-Key claimed, SQLite writers taking turns, and the hot routes' lanes (`in_one_turn`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from tenantry.http.state import app_state
from tenantry.kit import idempotency
from tenantry.kit.context import (
    MUTATING_METHODS,
    Ctx,
    Origin,
    authenticates,
    per_loop,
    reads_only_route,
    write_gate,
    writes_on_get_route,
)
from tenantry.kit.schemas import STORABLE

if TYPE_CHECKING:
    pass


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def request_fingerprint(request: Request) -> str:
    # Async because reading the body needs the event loop; database work is in `unit_of_work`.
    if request.method not in MUTATING_METHODS or "idempotency-key" not in request.headers:
        return ""
    body = await request.body()
    return idempotency.request_fingerprint(request.method, request.url.path, body)


def _writes(request: Request) -> bool:
    route = request.scope.get("route")
    if request.method == "GET" and writes_on_get_route(route):
        return True
    return request.method in MUTATING_METHODS and not reads_only_route(route)


def _lane(request: Request) -> anyio.CapacityLimiter:
    """The worker threads a hot route's requests take turns for (`in_one_turn`): a few per
    route, apart from the shared pool every other route's sync code runs on.

    With the shared pool (40 threads) a burst of admissions ran up to 40 at once, all waiting
    for the one interpreter lock: each thread's wake-ups and hand-overs cost more CPU the longer
    the queue, so a backlog fed itself (PostgreSQL, 50 clients in a closed loop: 1.7 ms of server
    CPU per admission against 1.4 here, 480 admissions/s against 720, p99 394 ms against 87; at
    400/s some runs stalled with p99 above 300 ms). Past a few threads, only the queue gets
    longer; here it waits on the event loop, in arrival order, at no CPU cost. Requests of other
    routes never wait for a lane, and a lane's requests never wait for the shared pool."""
    lanes = per_loop(app_state(request), "hot_lanes", dict[str, anyio.CapacityLimiter])
    route = request.scope.get("route")
    name = getattr(route, "name", None) or request.scope["path"]
    lane = lanes.get(name)
    if lane is None:
        lane = lanes[name] = anyio.CapacityLimiter(app_state(request).settings.hot_route_threads)
    return lane


@asynccontextmanager
async def _taking_turns(request: Request) -> AsyncIterator[None]:
    """On SQLite, one process's writing requests take turns here, on the event loop, before they
    take a worker thread. SQLite lets one writer in at a time; without this, requests blocked on
    its lock could fill the thread pool while the one holding the lock waits for a thread to
    finish in, until the busy timeout fails them all."""
    gate = write_gate(app_state(request)) if _writes(request) else None
    if gate is None:
        yield
        return
    async with gate:
        yield


async def write_turn(request: Request) -> AsyncIterator[None]:
    async with _taking_turns(request):
        yield


def _base_url_of(request: Request) -> Callable[[], str]:
    configured: str | None = app_state(request).settings.base_url
    if configured:
        return lambda: configured
    # Only the parts of the scope the address is made of: a closure over the request itself
    # would make a reference cycle (the request's state holds the Ctx that holds this), and
    # every request's session would then wait for the garbage collector to be freed.
    scope = request.scope
    kept = ("type", "scheme", "server", "root_path", "headers")
    parts = {k: scope[k] for k in kept if k in scope}
    return lambda: str(Request({**parts, "path": "/", "query_string": b""}).base_url)


@contextmanager
def open_unit_of_work(request: Request, fingerprint: str) -> Iterator[Ctx]:
    """The request's session and context; rolled back unless `Ctx.done` committed, and closed."""
    state = app_state(request)
    route = request.scope.get("route")
    write = _writes(request)
    session: Session = state.db.session(write=write)
    origin = Origin(
        ip=_client_ip(request),
        user_agent=(request.headers.get("user-agent") or "")[:512] or None,
        request_id=getattr(request.state, "request_id", None),
        action=getattr(route, "name", None),
        base_url_of=_base_url_of(request),
    )
    ctx = Ctx(
        session=session,
        clock=state.clock,
        settings=state.settings,
        origin=origin,
        write=write,
    )
    request.state.ctx = ctx
    try:
        key = request.headers.get("idempotency-key")
        if write and key is not None and request.method == "POST":
            credential = request.headers.get("authorization")
            try:
                ctx.idempotency_record = idempotency.claim(
                    session,
                    scope=idempotency.scope_of(credential, fingerprint),
                    key=key,
                    fingerprint=fingerprint,
                    now=ctx.clock.now(),
                    ttl=timedelta(seconds=ctx.settings.idempotency_ttl_seconds),
                    secret=ctx.settings.server_secret(),
                )
            except idempotency.Replay as replay:
                if not credential or not authenticates(route):
                    raise  # anonymous: the same body, password included, is the proof
                ctx.replay = replay  # raised once the credential is verified
        yield ctx
    finally:
        if not ctx.committed:
            session.rollback()
        session.close()


def unit_of_work(
    request: Request,
    fingerprint: Annotated[str, Depends(request_fingerprint)],
    _turn: Annotated[None, Depends(write_turn)],
) -> Iterator[Ctx]:
    with open_unit_of_work(request, fingerprint) as ctx:
        yield ctx


CtxDep = Annotated[Ctx, Depends(unit_of_work)]
_T = TypeVar("_T")


def parse_json_body(body: TypeAdapter[_T], raw: bytes, *, loc: tuple[str, ...] = ()) -> _T:
    """The body as `model`, for an endpoint that reads its own body (`in_one_turn`): parsed and
    validated in one pass by pydantic's JSON parser, refused exactly as FastAPI would (422, or
    400 when it is not JSON). `loc` goes between `body` and the place of each error.

    Only for models whose numbers are `Decimal` or `int`, which refuse NaN and infinities by type:
    then the one value JSON can carry that the database cannot is a NUL character, which JSON can
    only write as the escape `\\u0000`. A body without that escape skips `Input`'s walk over
    every value (most of the cost of a batch of 1,000 usage events); one with it is walked."""
    if not raw.strip():
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    context = None if b"\\u0000" in raw else STORABLE
    try:
        return body.validate_json(raw, context=context)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *loc, *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def json_body_schema(body: TypeAdapter[Any]) -> dict[str, Any]:
    """The OpenAPI `requestBody` of an endpoint that reads its own body (`parse_json_body`),
    with the model's schema written out in full (nested models inlined)."""
    schema = body.json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    content = {"application/json": {"schema": inline(schema)}}
    return {"requestBody": {"required": True, "content": content}}


async def in_one_turn(request: Request, work: Callable[[Ctx], _T]) -> _T:
    """The whole unit of work of a request — its session, and `work` — in one worker thread.

    For the hot endpoints (admission, usage events): the dependencies of `CtxDep` and
    `PrincipalDep` are sync, so each takes a thread of its own (four thread hops per request, each
    a wake-up and a hand-over of the GIL); here the request takes one. Everything else is as
    with `CtxDep`: the same write turn on SQLite, the same Idempotency-Key handling, and nothing
    acknowledged before `Ctx.done` commits."""
    fingerprint = await request_fingerprint(request)
    async with _taking_turns(request):
        return await anyio.to_thread.run_sync(
            _run_unit_of_work, request, fingerprint, work, limiter=_lane(request)
        )


def _run_unit_of_work(request: Request, fingerprint: str, work: Callable[[Ctx], _T]) -> _T:
    with open_unit_of_work(request, fingerprint) as ctx:
        return work(ctx)


@asynccontextmanager
async def unit_of_work_entered(
    request: Request, fingerprint: str, enter: Callable[[Ctx], _T]
) -> AsyncIterator[_T]:
    """The request's unit of work opened, and `enter` run in it (authenticate, resolve the
    scope, authorize), in one worker thread; the unit of work closed in another when the
    request is done.

    For the scope dependencies of every other route (`OrgScope`, `TeamScope`): as sync
    dependencies, the unit of work's opening, the principal and the scope each took a worker
    thread of their own, and the closing a fourth; each hop is a wake-up and a hand-over of
    the interpreter lock, together more CPU than the work they carried."""
    stack = ExitStack()

    def open_and_enter() -> _T:
        ctx = stack.enter_context(open_unit_of_work(request, fingerprint))
        try:
            return enter(ctx)
        except BaseException:
            stack.close()
            raise

    entered = await anyio.to_thread.run_sync(open_and_enter)
    try:
        yield entered
    finally:
        await anyio.to_thread.run_sync(stack.close)
