"""Requests described as data, so the sync and async clients share one definition of the API.

Each route of the API is written once, in `tenantry.client.api`, as a method that returns a
`Call`: method, path, query, body and how to read the answer. It does no I/O. The `endpoint` and
`paged` descriptors turn such a method into what the caller sees: on a `Client` it sends the call
and returns the result; on an `AsyncClient` it returns a coroutine; `paged` turns a list call into
an iterator (sync) or async iterator over every item of every page. The descriptors' overloads
keep those types exact for mypy and editors.

Answers read as they arrive are described the same way: a `streaming` method returns a `Stream`
(the call, and how to turn the body's lines into items) and the caller gets an iterator (sync) or
async iterator; a `download` method returns a `Download` (the call, and a binary file to write the
body to) and the caller gets the number of bytes written.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import (
    IO,
    TYPE_CHECKING,
    Any,
    ClassVar,
    Concatenate,
    Generic,
    Literal,
    ParamSpec,
    TypeVar,
    overload,
)
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from tenantry.client.models import Page

if TYPE_CHECKING:
    from tenantry.client.aio import AsyncClient
    from tenantry.client.sync import Client

P = ParamSpec("P")
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

API = "/api/v1"

# What a successful call does to the client's own credentials.
SessionEffect = Literal["adopt", "forget"]


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    auth: bool = True
    idempotency_key: str | None = None
    session: SessionEffect | None = None
    # A body of bytes rather than JSON (a file uploaded), sent as application/octet-stream.
    content: Any = None

    def page_after(self, cursor: str) -> Call[T]:
        return replace(self, params={**self.params, "cursor": cursor})


def model(cls: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        return cls.model_validate(response.json())

    return parse


def models(cls: type[M]) -> Callable[[httpx.Response], list[M]]:
    """A JSON array of `cls`."""
    adapter = TypeAdapter(list[cls])  # type: ignore[valid-type]

    def parse(response: httpx.Response) -> list[M]:
        return list(adapter.validate_python(response.json()))

    return parse


def nothing(response: httpx.Response) -> None:
    return None


def text(response: httpx.Response) -> str:
    return response.text


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer as the JSON object it is, for documents read whole (a data export)."""
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    return body


def segment(value: str) -> str:
    """A path segment; ids are safe already, but emails and slugs typed by people may not be."""
    return quote(value, safe="@")


def fields(**values: Any) -> dict[str, Any]:
    """A body or query of the given values, leaving out those not given (None)."""
    return {key: value for key, value in values.items() if value is not None}


class _Route:
    """What the route decorators share: they keep the method that describes the request, and on
    a client they become a call that hands that description to the client's `sender` method
    (sync or async, whichever client it is). Subclasses only add the typed views of `__get__`."""

    sender: ClassVar[str]

    def __init__(self, build: Callable[..., Any]) -> None:
        self.build = build
        self.__doc__ = build.__doc__
        self.__name__ = build.__name__

    def _bind(self, obj: Any) -> Callable[..., Any]:
        build, send = self.build, getattr(obj, self.sender)

        @functools.wraps(build)
        def bound(*args: Any, **kwargs: Any) -> Any:
            return send(build(obj, *args, **kwargs))

        return bound


class endpoint(_Route, Generic[P, T]):  # lower case: it is used as a decorator
    """Decorates a method returning `Call[T]`; see the module docstring."""

    sender = "_send"

    def __init__(self, build: Callable[Concatenate[Any, P], Call[T]]) -> None:
        super().__init__(build)

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> endpoint[P, T]: ...
    @overload
    def __get__(self, obj: Client, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(
        self, obj: AsyncClient, owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, obj: Any, owner: type[Any]) -> Any:
        return self if obj is None else self._bind(obj)


class paged(Generic[P, T]):  # lower case: used like a decorator
    """Every item of every page of a list endpoint, fetched one page at a time as needed."""

    def __init__(self, listing: endpoint[P, Page[T]]) -> None:
        self.build = listing.build
        self.__doc__ = f"Iterate over every item of `{listing.__name__}`, page after page."

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> paged[P, T]: ...
    @overload
    def __get__(self, obj: Client, owner: type[Any]) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(self, obj: AsyncClient, owner: type[Any]) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, obj: Any, owner: type[Any]) -> Any:
        if obj is None:
            return self
        build = self.build

        def bound(*args: Any, **kwargs: Any) -> Any:
            return obj._iterate(build(obj, *args, **kwargs))

        return bound


# A line decoder is fed the body's lines in order (blank ones too, as "") and returns the items
# each line completes; one is made per request, so it may keep state between lines.
LineDecoder = Callable[[str], Iterable[T]]


@dataclass(frozen=True)
class Stream(Generic[T]):
    """A request whose answer is read line by line as it arrives."""

    call: Call[None]
    decoder: Callable[[], LineDecoder[T]]


@dataclass(frozen=True)
class Download:
    """A request whose answer is written to `sink` as it arrives."""

    call: Call[None]
    sink: IO[bytes]


class streaming(_Route, Generic[P, T]):  # lower case: used as a decorator
    """Decorates a method returning `Stream[T]`: the caller iterates over the items. The request
    is sent when iteration begins; errors are raised from the first step."""

    sender = "_stream"

    def __init__(self, build: Callable[Concatenate[Any, P], Stream[T]]) -> None:
        super().__init__(build)

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> streaming[P, T]: ...
    @overload
    def __get__(self, obj: Client, owner: type[Any]) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(self, obj: AsyncClient, owner: type[Any]) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, obj: Any, owner: type[Any]) -> Any:
        return self if obj is None else self._bind(obj)


class download(_Route, Generic[P]):  # lower case: used as a decorator
    """Decorates a method returning `Download`: the caller gets the number of bytes written."""

    sender = "_download"

    def __init__(self, build: Callable[Concatenate[Any, P], Download]) -> None:
        super().__init__(build)

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> download[P]: ...
    @overload
    def __get__(self, obj: Client, owner: type[Any]) -> Callable[P, int]: ...
    @overload
    def __get__(
        self, obj: AsyncClient, owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, int]]: ...
    def __get__(self, obj: Any, owner: type[Any]) -> Any:
        return self if obj is None else self._bind(obj)


def page_query(limit: int | None, cursor: str | None, **extra: str | None) -> dict[str, str]:
    """The query of a list call: `limit`, `cursor` and the filters that are set."""
    values = fields(limit=str(limit) if limit is not None else None, cursor=cursor, **extra)
    return {key: str(value) for key, value in values.items()}


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
