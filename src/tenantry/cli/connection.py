"""How a CLI command gets its SDK client: server and credentials from the environment or the
stored login, and new tokens written back after an automatic refresh.

Test seam: set `http_override` to an `httpx.Client` (a Starlette `TestClient` is one) and every
command sends its requests through it instead of opening a network connection:

    monkeypatch.setattr(tenantry.cli.connection, "http_override", test_client)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tenantry.cli import config
from tenantry.cli.config import StoredLogin
from tenantry.client import Client
from tenantry.client.models import Tokens

SERVER_ENV = "TENANTRY_SERVER"
TOKEN_ENV = "TENANTRY_TOKEN"
DEFAULT_SERVER = "http://127.0.0.1:8000"

http_override: httpx.Client | None = None


class NotSignedIn(Exception):
    """No credentials: neither $TENANTRY_TOKEN nor a stored login."""


def server_url(stored: StoredLogin, explicit: str | None = None) -> str:
    return explicit or os.environ.get(SERVER_ENV) or stored.server or DEFAULT_SERVER


@contextmanager
def anonymous(server: str) -> Iterator[Client]:
    """A client without credentials, for signing in."""
    with Client(server, http=http_override) as api:
        yield api


@contextmanager
def signed_in() -> Iterator[Client]:
    """A client with the caller's credentials: $TENANTRY_TOKEN (an access token or API key)
    if set, else the stored login."""
    stored = config.load()
    env_token = os.environ.get(TOKEN_ENV)
    if env_token:
        with Client(server_url(stored), env_token, http=http_override) as api:
            yield api
    else:
        with stored_session(stored) as api:
            yield api


@contextmanager
def stored_session(stored: StoredLogin) -> Iterator[Client]:
    """A client on the stored login; when its access token has expired, the SDK refreshes it
    once and the new tokens are written back here."""
    if not stored.access_token:
        raise NotSignedIn

    def keep(tokens: Tokens) -> None:
        # Re-read first: another command may have changed the file since this one started.
        config.save(config.load().with_tokens(tokens))

    with Client(
        server_url(stored),
        stored.access_token,
        refresh_token=stored.refresh_token,
        on_tokens=keep,
        http=http_override,
    ) as api:
        yield api
