"""What the app holds for every request, typed: `app_state(request).db` instead of an untyped
`request.app.state.db`."""

from __future__ import annotations

from typing import cast

from starlette.datastructures import State
from starlette.requests import Request

from tenantry.audit.service import Notary
from tenantry.billing.providers import PaymentProvider
from tenantry.config import Settings
from tenantry.kit.clock import Clock
from tenantry.kit.db import Database
from tenantry.kit.observability import Metrics
from tenantry.kit.security import AccessTokens, Passwords
from tenantry.ml.stores import ArtifactStore
from tenantry.throttling.limiter import RequestLimiter


class AppState(State):
    """The app's `state`, set once by `create_app`. Starlette's `State` keeps any attribute;
    these are the ones Tenantry sets, with their types. (Per-event-loop registries such as the
    hot lanes and the SQLite write gate are added on first use, see `kit.context.per_loop`.)"""

    settings: Settings
    clock: Clock
    db: Database
    tokens: AccessTokens
    passwords: Passwords
    notary: Notary
    throttle: RequestLimiter
    payments: PaymentProvider
    metrics: Metrics
    artifacts: ArtifactStore


def app_state(request: Request) -> AppState:
    return cast(AppState, request.app.state)
