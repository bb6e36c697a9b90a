"""Units of work for routes that are not FastAPI's: the MLflow face, and the streaming of
artifacts on both faces.

`in_turn` is `http.work.in_one_turn` with the reader-or-writer choice made by the route rather
than by the HTTP method (an MLflow search is a POST that only reads; a download is a GET that
also counts) and without Idempotency-Key handling, which MLflow's client does not send.
`BodyReader` lets sync code in a worker thread read a request's body a chunk at a time, so an
upload of any size passes through bounded memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from fastapi import Request

from tenantry.http.state import app_state
from tenantry.http.work import _base_url_of, _client_ip
from tenantry.kit.context import Ctx, Origin, per_loop, write_gate

_T = TypeVar("_T")


def _lane(request: Request, name: str) -> anyio.CapacityLimiter:
    state = app_state(request)
    lanes = per_loop(state, "face_lanes", dict[str, anyio.CapacityLimiter])
    lane = lanes.get(name)
    if lane is None:
        lane = lanes[name] = anyio.CapacityLimiter(state.settings.hot_route_threads)
    return lane


def turn_gate(request: Request, *, write: bool) -> AbstractAsyncContextManager[object]:
    """SQLite's writers of this process take turns (`kit.context.write_gate`)."""
    gate = write_gate(app_state(request)) if write else None
    return gate if gate is not None else nullcontext()


async def in_turn(
    request: Request, work: Callable[[Ctx], _T], *, write: bool, lane: str, action: str | None
) -> _T:
    """Run `work` in a unit of work of its own (a reader's or a writer's session) in one
    worker thread of the route's lane; rolled back unless `work` committed (`Ctx.done` or
    `commit`)."""
    async with turn_gate(request, write=write):
        return await anyio.to_thread.run_sync(
            run_unit, request, work, write, action, limiter=_lane(request, lane)
        )


def run_unit(request: Request, work: Callable[[Ctx], _T], write: bool, action: str | None) -> _T:
    """`work` in a unit of work, on the calling thread."""
    state = app_state(request)
    session = state.db.session(write=write)
    ctx = Ctx(
        session=session,
        clock=state.clock,
        settings=state.settings,
        origin=Origin(
            ip=_client_ip(request),
            user_agent=(request.headers.get("user-agent") or "")[:512] or None,
            request_id=getattr(request.state, "request_id", None),
            action=action,
            base_url_of=_base_url_of(request),
        ),
        write=write,
    )
    request.state.ctx = ctx
    try:
        return work(ctx)
    finally:
        if not ctx.committed:
            session.rollback()
        session.close()


def commit(ctx: Ctx) -> None:
    ctx.session.commit()
    ctx.committed = True


class BodyReader:
    """The request's body as a file object for a worker thread (`read(n)`), pulled from the
    event loop a message at a time."""

    def __init__(self, request: Request) -> None:
        self._stream: AsyncIterator[bytes] = request.stream()
        self._buffer = b""
        self._done = False
        # Made on the event loop; read from any thread, the upload's own or those a transfer
        # library starts (boto3 reads a multipart upload's parts in threads of its own).
        self._token = anyio.lowlevel.current_token()

    async def _next(self) -> bytes | None:
        try:
            return await self._stream.__anext__()
        except StopAsyncIteration:
            return None

    def read(self, size: int = -1, /) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            chunk = anyio.from_thread.run(self._next, token=self._token)
            if chunk is None:
                self._done = True
            else:
                self._buffer += chunk
        if size < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out
