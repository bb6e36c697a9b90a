"""The asynchronous client: `await AsyncClient(base_url, token).list_orgs()`.

Same methods as `Client` (both come from `tenantry.client.api`); calls are awaited and `iter_*`
are async iterators.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from tenantry.client._calls import Call, Download, Stream
from tenantry.client._transport import tls_verify
from tenantry.client.api import Api, TokensCallback
from tenantry.client.errors import TenantryError, connection_failed, error_from_response
from tenantry.client.models import Page

T = TypeVar("T")


class AsyncClient(Api):
    """A Tenantry API client over `httpx.AsyncClient`; see `Client` for the arguments."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        refresh_token: str | None = None,
        on_tokens: TokensCallback | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(base_url, token, refresh_token=refresh_token, on_tokens=on_tokens)
        self._owns_http = http is None
        if http is None:
            http = httpx.AsyncClient(timeout=timeout, verify=tls_verify(base_url))
        self._http = http
        self._refresh_guard = asyncio.Lock()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _transmit(self, call: Call[Any]) -> httpx.Response:
        try:
            return await self._http.request(**self._request_args(call))
        except httpx.TransportError as exc:
            raise connection_failed(self.base_url, exc) from exc

    async def _send(self, call: Call[T]) -> T:
        response = await self._transmit(call)
        if self._may_refresh(call, response) and await self._refreshed(response):
            response = await self._transmit(call)
        return self._finish(call, response)

    async def _refreshed(self, failed: httpx.Response) -> bool:
        async with self._refresh_guard:
            if self._token_was_replaced(failed):
                return True
            try:
                await self._send(self._refresh_call())
            except TenantryError:
                return False
            return True

    async def _transmit_streamed(self, call: Call[Any]) -> httpx.Response:
        try:
            request = self._http.build_request(**self._request_args(call))
            return await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise connection_failed(self.base_url, exc) from exc

    async def _open(self, call: Call[Any]) -> httpx.Response:
        """A response whose body is still to be read; raises on an error status."""
        response = await self._transmit_streamed(call)
        if self._may_refresh(call, response):
            await response.aread()
            await response.aclose()
            if await self._refreshed(response):
                response = await self._transmit_streamed(call)
        if response.is_error:
            await response.aread()
            await response.aclose()
            raise error_from_response(response)
        return response

    async def _stream(self, stream: Stream[T]) -> AsyncIterator[T]:
        response = await self._open(stream.call)
        decode = stream.decoder()
        try:
            async for line in response.aiter_lines():
                for item in decode(line):
                    yield item
        except httpx.TransportError as exc:
            raise connection_failed(self.base_url, exc) from exc
        finally:
            await response.aclose()

    async def _download(self, download: Download) -> int:
        response = await self._open(download.call)
        written = 0
        try:
            async for chunk in response.aiter_bytes():
                download.sink.write(chunk)
                written += len(chunk)
        except httpx.TransportError as exc:
            raise connection_failed(self.base_url, exc) from exc
        finally:
            await response.aclose()
        return written

    async def _iterate(self, call: Call[Page[T]]) -> AsyncIterator[T]:
        while True:
            page = await self._send(call)
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            call = call.page_after(page.next_cursor)
