"""How a CLI command gets its SDK client: server and credentials from the environment or the
stored login, and new tokens written back after an automatic refresh.

Test seam: set `http_override` to an `httpx.Client` (a Starlette `TestClient` is one) and every
command sends its requests through it instead of opening a network connection:

    monkeypatch.setattr(tenantry.cli.connection, "http_override", test_client)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from tenantry.cli import config
from tenantry.cli.config import StoredLogin

if TYPE_CHECKING:
    import httpx

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


def _client_class() -> type[Client]:
    """The SDK's client, imported when a command first asks for one rather than with this
    module: `tenantry --help` and the commands that need no server never load httpx, pydantic
    or the SDK's models."""
    if "httpx" not in sys.modules:
        # httpx imports its own command line (`httpx.main`, with click, pygments and Rich's
        # progress bars and syntax highlighting) whenever those are installed, as they are beside
        # Typer: some 40 ms that this process never uses. A None entry makes just that import
        # fail, which httpx expects and answers with a stub; the entry goes straight after, so a
        # later `import httpx._main` works as usual.
        sys.modules["httpx._main"] = None  # type: ignore[assignment]
        try:
            import httpx  # noqa: F401
        except ImportError:
            pass  # a future httpx that does not expect it: imported below, as usual
        finally:
            if sys.modules.get("httpx._main", "") is None:
                del sys.modules["httpx._main"]
    from tenantry.client import Client

    return Client


@contextmanager
def anonymous(server: str) -> Iterator[Client]:
    """A client without credentials, for signing in."""
    with _client_class()(server, http=http_override) as api:
        yield api


@contextmanager
def signed_in() -> Iterator[Client]:
    """A client with the caller's credentials: $TENANTRY_TOKEN (an access token or API key)
    if set, else the stored login."""
    stored = config.load()
    env_token = os.environ.get(TOKEN_ENV)
    if env_token:
        with _client_class()(server_url(stored), env_token, http=http_override) as api:
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

    with _client_class()(
        server_url(stored),
        stored.access_token,
        refresh_token=stored.refresh_token,
        on_tokens=keep,
        http=http_override,
    ) as api:
        yield api
