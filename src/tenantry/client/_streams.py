"""Line decoders for streamed answers (see `tenantry.client._calls.Stream`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


def each_line(line: str) -> list[str]:
    """Every line as it is."""
    return [line]


class ServerSentEvents(Generic[T]):
    """The frames of a `text/event-stream` body (the WHATWG format) whose event type is `event`,
    each frame's data given to `parse`. Comment lines (heartbeats) are skipped; `last_id` is the
    id of the last frame dispatched, for resuming."""

    def __init__(self, parse: Callable[[str], T], *, event: str) -> None:
        self.parse = parse
        self.event = event
        self.last_id: str | None = None
        self._data: list[str] = []
        self._type: str | None = None
        self._id: str | None = None

    def __call__(self, line: str) -> list[T]:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return []
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._type = value
        elif name == "id":
            self._id = value
        return []

    def _dispatch(self) -> list[T]:
        data, kind, frame_id = self._data, self._type or "message", self._id
        self._data, self._type = [], None
        if frame_id is not None:
            self.last_id = frame_id
        if not data or kind != self.event:
            return []
        return [self.parse("\n".join(data))]
