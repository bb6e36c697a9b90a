"""The Tenantry Python SDK.

    from tenantry.client import Client, NotFound

    with Client("http://127.0.0.1:8000") as api:
        api.login("ada@example.com", "correct horse battery staple")
        for org in api.iter_orgs():
            print(org.slug, org.plan)

`AsyncClient` has the same methods, awaited. Failed calls raise a `TenantryError` subclass.
"""

from tenantry.client.aio import AsyncClient
from tenantry.client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Gone,
    NotFound,
    PaymentRequired,
    RateLimited,
    ServerError,
    TenantryError,
    Unauthenticated,
    ValidationFailed,
)
from tenantry.client.sync import Client

__all__ = [
    "AsyncClient",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "Gone",
    "NotFound",
    "PaymentRequired",
    "RateLimited",
    "ServerError",
    "TenantryError",
    "Unauthenticated",
    "ValidationFailed",
]
