"""A cap on request body size, enforced before any handler reads the body."""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantry.kit.errors import PROBLEM_CONTENT_TYPE, PayloadTooLarge


class BodyLimit:
    """`streams`: paths whose routes read their bodies as streams and bound them themselves
    (artifact uploads), which the cap leaves alone."""

    def __init__(self, app: ASGIApp, max_bytes: int, streams: str | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streams = re.compile(streams) if streams else None

    async def _refuse(self, scope: Scope, send: Send) -> None:
        problem = PayloadTooLarge(f"Request bodies are limited to {self.max_bytes} bytes")
        body = json.dumps(problem.body(instance=scope.get("path"))).encode()
        await send(
            {
                "type": "http.response.start",
                "status": problem.status,
                "headers": [
                    (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.streams and self.streams.match(scope["path"])):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        seen = 0
        too_large = False
        refused = False

        async def counting_receive() -> Message:
            # Chunked bodies declare no length: count as they arrive, and once over the cap hand
            # the app an ended body; whatever it answers is then replaced by the 413.
            nonlocal seen, too_large
            if too_large:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal refused
            if too_large:
                if not refused:
                    refused = True
                    await self._refuse(scope, send)
                return
            await send(message)

        await self.app(scope, counting_receive, guarded_send)
