"""Streaming response bodies made by blocking code (database reads) without blocking the loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator

import anyio
import anyio.to_thread


async def in_threads(chunks: Generator[bytes, None, None]) -> AsyncIterator[bytes]:
    """Run each step of a blocking generator in a worker thread.

    Starlette does that for a plain iterator too, but leaves the generator to the garbage
    collector when the client goes away; here it is closed at once, in a thread, so whatever it
    holds (a database session and its snapshot) is released promptly and off the event loop.
    """
    try:
        while True:
            chunk = await anyio.to_thread.run_sync(next, chunks, None)
            if chunk is None:
                return
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(chunks.close)
