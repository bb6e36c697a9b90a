"""The synchronous client: `Client(base_url, token).list_orgs()`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from tenantry.client._calls import Call, Download, Stream
from tenantry.client._transport import tls_verify
from tenantry.client.api import Api, TokensCallback
from tenantry.client.errors import TenantryError, connection_failed, error_from_response
from tenantry.client.models import Page

T = TypeVar("T")


class Client(Api):
    """A Tenantry API client over `httpx.Client`.

    `token` is an access token or an API key. With a `refresh_token`, an expired access token is
    refreshed once, automatically, and the request retried; `on_tokens` hears of the new tokens.
    Pass `http` to reuse a configured `httpx.Client` (it is then not closed by `close()`).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        refresh_token: str | None = None,
        on_tokens: TokensCallback | None = None,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(base_url, token, refresh_token=refresh_token, on_tokens=on_tokens)
        self._owns_http = http is None
        if http is None:
            http = httpx.Client(timeout=timeout, verify=tls_verify(base_url))
        self._http = http
        self._refresh_guard = threading.Lock()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _transmit(self, call: Call[Any]) -> httpx.Response:
        try:
            return self._http.request(**self._request_args(call))
        except httpx.TransportError as exc:
            raise connection_failed(self.base_url, exc) from exc

    def _send(self, call: Call[T]) -> T:
        response = self._transmit(call)
        if self._may_refresh(call, response) and self._refreshed(response):
            response = self._transmit(call)
        return self._finish(call, response)

    def _refreshed(self, failed: httpx.Response) -> bool:
        with self._refresh_guard:
            if self._token_was_replaced(failed):
                return True
            try:
                self._send(self._refresh_call())
            except TenantryError:
                # The session is over; the caller gets the original 401, which says so.
                return False
            return True

    def _transmit_streamed(self, call: Call[Any]) -> httpx.Response:
        try:
            request = self._http.build_request(**self._request_args(call))
            return self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise connection_failed(self.base_url, exc) from exc

    def _open(self, call: Call[Any]) -> httpx.Response:
        """A response whose body is still to be read; raises on an error status (the problem
        body is small and read whole)."""
        response = self._transmit_streamed(call)
        if self._may_refresh(call, response):
            response.read()
            response.close()
            if self._refreshed(response):
                response = self._transmit_streamed(call)
        if response.is_error:
            response.read()
            response.close()
            raise error_from_response(response)
        return response

    def _stream(self, stream: Stream[T]) -> Iterator[T]:
        response = self._open(stream.call)
        decode = stream.decoder()
        try:
            for line in response.iter_lines():
                yield from decode(line)
        except httpx.TransportError as exc:
            raise connection_failed(self.base_url, exc) from exc
        finally:
            response.close()

    def _download(self, download: Download) -> int:
        response = self._open(download.call)
        written = 0
        try:
            for chunk in response.iter_bytes():
                download.sink.write(chunk)
                written += len(chunk)
        except httpx.TransportError as exc:
            raise connection_failed(self.base_url, exc) from exc
        finally:
            response.close()
        return written

    def _iterate(self, call: Call[Page[T]]) -> Iterator[T]:
        while True:
            page = self._send(call)
            yield from page.items
            if not page.next_cursor:
                return
            call = call.page_after(page.next_cursor)
