"""The Tenantry Python SDK.

    from tenantry.client import Client, NotFound

    with Client("http://127.0.0.1:8000") as api:
        api.login("ada@example.com", "correct horse battery staple")
        for org in api.iter_orgs():
            print(org.slug, org.plan)

`AsyncClient` has the same methods, awaited. Failed calls raise a `TenantryError` subclass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenantry.client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Gone,
    MfaRequired,
    NotFound,
    PaymentRequired,
    RateLimited,
    ServerError,
    TenantryError,
    Unauthenticated,
    ValidationFailed,
)

if TYPE_CHECKING:
    from tenantry.client.aio import AsyncClient
    from tenantry.client.sync import Client

__all__ = [
    "AsyncClient",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "Gone",
    "MfaRequired",
    "NotFound",
    "PaymentRequired",
    "RateLimited",
    "ServerError",
    "TenantryError",
    "Unauthenticated",
    "ValidationFailed",
]


# The clients are imported on first use (PEP 562), not with the package: they bring httpx,
# pydantic and every model of the API, and a program that only needs the error classes (the
# `tenantry` command before it sends anything) should not wait for them.
_LAZY = {"AsyncClient": "tenantry.client.aio", "Client": "tenantry.client.sync"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found directly from now on
    return value
