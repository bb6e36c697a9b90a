"""A domain's events for the domains that react to them (webhooks, notifications), without
either importing the other's services: the raising domain owns a `Channel`, a reacting one
subscribes at import. Subscribers are called in the transaction that raises the event, so what
they record (an outbox row) commits or rolls back with the change; nothing is sent from it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy.orm import Session

E = TypeVar("E")


class Channel(Generic[E]):
    def __init__(self) -> None:
        self._subscribers: list[Callable[[Session, E], None]] = []

    def subscribe(self, subscriber: Callable[[Session, E], None]) -> None:
        if subscriber not in self._subscribers:
            self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Callable[[Session, E], None]) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def emit(self, session: Session, event: E) -> None:
        for subscriber in list(self._subscribers):
            subscriber(session, event)
