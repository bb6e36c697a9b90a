"""The per-request limiter: rate limits per org and per API key, the daily `api_calls` quota, and
the record of each request as `api_calls` usage.

`throttle_request` runs once per request, as soon as the org is known: for an API key when it is
authenticated (`access.dependencies.current_principal`), for a signed-in user when the route
resolves its org or team (`org_scope` / `team_scope`). Requests that name no org (sign-in,
`/me`, health) are not limited here. In order:

1. the rate limits: the org's bucket, and the key's bucket for an API key, charged together or
   not at all → 429 `rate_limited` with `Retry-After`;
2. the daily `api_calls` quota (UTC days): hard → 402 `quota_exceeded` with the next plan;
   soft → allowed, with a `Tenantry-Quota-Warning` header from 80 % on. Endpoints marked
   `kit.http.quota_exempt` (changing the plan, reading quotas, limits and the plan) are counted
   but never refused, so an org can get out of a used-up hard quota;
3. the request is counted as one `api_calls` usage event (buffered, see `ledger`).

`RateLimitHeaders` (middleware) adds `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
and `RateLimit-Policy` to every answer of a limited request, success or error, and flushes the
usage buffer when it is due, before a request starts.

When the store cannot be reached (Redis down), requests pass unlimited and a warning is logged:
a cache outage must not take the API down with it. See docs/rate-limits.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio
from fastapi import Request
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantry.authz.principal import Principal
from tenantry.config import Settings
from tenantry.kit.clock import Clock
from tenantry.kit.context import Ctx, is_quota_exempt, write_gate
from tenantry.kit.db import Database
from tenantry.kit.errors import PaymentRequired, TooManyRequests
from tenantry.kit.ratelimit import (
    Bucket,
    BucketState,
    Decision,
    MemoryStore,
    RateLimitStore,
    RedisStore,
    StoreUnavailable,
    WindowCount,
)
from tenantry.plans.catalog import Enforcement, Plan
from tenantry.throttling import service
from tenantry.throttling.ledger import API_CALLS, FLUSH_CHUNK, ApiCall, ApiCallLedger

log = logging.getLogger("tenantry.throttling")
QUOTA_WARNING_HEADER = "Tenantry-Quota-Warning"
WARN_FROM = 0.8  # share of a quota from which answers carry a warning


@dataclass(frozen=True)
class RateLimitStatus:
    """What the limiter decided for this request, as `request.state.rate_limit` (admission and
    the headers read it): the binding bucket's size, what is left of it, seconds until it is
    full again, and every bucket's policy."""

    limit: int
    remaining: int
    reset_seconds: int
    scope: str  # "org" or "api_key": the bucket that binds
    policies: tuple[str, ...]

    @property
    def reset(self) -> int:
        return self.reset_seconds

    @classmethod
    def of(cls, decision: Decision) -> RateLimitStatus:
        binding = decision.binding
        return cls(
            limit=binding.rate.burst,
            remaining=binding.remaining,
            reset_seconds=math.ceil(binding.reset_after),
            scope=_scope_of(binding),
            policies=tuple(_policy(b) for b in decision.buckets),
        )

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_seconds).encode()),
            (b"ratelimit-policy", ", ".join(self.policies).encode()),
        ]


def _scope_of(bucket: BucketState) -> str:
    return "api_key" if bucket.key.startswith("rl:key:") else "org"


def _policy(bucket: BucketState) -> str:
    # The draft's `<quota>;w=<window>`: a full bucket allows `burst` requests, and refills in
    # `burst` emission intervals, so it is `burst` requests per that many seconds.
    window = max(1, round(bucket.rate.window))
    return f'{bucket.rate.burst};w={window};name="{_scope_of(bucket)}"'


def org_bucket_key(org_id: str) -> str:
    return f"rl:org:{org_id}"


def key_bucket_key(api_key_id: str) -> str:
    return f"rl:key:{api_key_id}"


def api_calls_key(org_id: str, day: str) -> str:
    return f"q:{API_CALLS}:{org_id}:{day}"


class RequestLimiter:
    """The store, the ledger and the rules, shared by every request of one app."""

    def __init__(
        self,
        store: RateLimitStore,
        ledger: ApiCallLedger,
        *,
        store_kind: str,
        multiplier: float = 1.0,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.store_kind = store_kind
        self.multiplier = multiplier
        self._last_warning = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, database: Database) -> RequestLimiter:
        ledger = ApiCallLedger(
            database,
            flush_after=timedelta(seconds=settings.api_calls_flush_seconds),
            flush_size=settings.api_calls_flush_size,
        )
        if settings.redis_url:
            store: RateLimitStore = RedisStore.from_url(
                settings.redis_url,
                prefix=settings.redis_key_prefix,
                timeout=settings.redis_timeout_seconds,
            )
            kind = "redis"
        else:
            store, kind = MemoryStore(), "memory"
        return cls(store, ledger, store_kind=kind, multiplier=settings.rate_limit_multiplier)

    def admit(
        self,
        request: Request,
        session: Session,
        principal: Principal,
        *,
        now: datetime,
        org_id: str,
        team_id: str | None,
    ) -> None:
        plan = service.plan_of(session, org_id)
        rates = service.request_rates(session, org_id, plan, multiplier=self.multiplier)
        buckets = [Bucket(org_bucket_key(org_id), rates.org)]
        if principal.kind == "api_key" and principal.api_key_id:
            buckets.append(Bucket(key_bucket_key(principal.api_key_id), rates.key))
        decision = self._throttle(buckets, now)
        if decision is not None:
            status = RateLimitStatus.of(decision)
            request.state.rate_limit = status
            if not decision.allowed:
                raise _too_many(decision, status)
        self._count_api_call(request, plan, org_id=org_id, now=now)
        # The route's template; the path only when no route matched (`request.url` is built
        # only then: building it cost more than the rest of recording the call).
        route = getattr(request.scope.get("route"), "path", None) or request.url.path
        self.ledger.record(
            ApiCall(
                org_id=org_id,
                at=now,
                method=request.method,
                route=str(route)[:200],
                team_id=team_id,
                user_id=principal.user_id,
                api_key_id=principal.api_key_id,
            )
        )

    def used_today(self, org_id: str, *, now: datetime) -> int | None:
        """The org's API calls so far today, as the quota counts them (None: store down)."""
        count = self._add_api_calls(org_id, now, amount=0, limit=None, refuse_over=False)
        return None if count is None else count.count

    def _add_api_calls(
        self, org_id: str, now: datetime, *, amount: int, limit: int | None, refuse_over: bool
    ) -> WindowCount | None:
        """Add `amount` to the org's API calls of today (UTC); None when the store is down."""
        day, ends = service.day_window(now)
        try:
            return self.store.add_to_window(
                api_calls_key(org_id, day),
                amount=amount,
                limit=limit,
                refuse_over=refuse_over,
                expires_at=ends.timestamp(),
                now=now.timestamp(),
            )
        except StoreUnavailable as exc:
            self._warn(exc)
            return None

    def _throttle(self, buckets: list[Bucket], now: datetime) -> Decision | None:
        try:
            return self.store.throttle(buckets, now=now.timestamp())
        except StoreUnavailable as exc:
            self._warn(exc)
            return None

    def _count_api_call(self, request: Request, plan: Plan, *, org_id: str, now: datetime) -> None:
        quota = plan.quota(API_CALLS)
        if quota is None or quota.limit is None:
            return  # unlimited: nothing to count against (usage is still recorded)
        limit = int(quota.limit)
        # A quota-exempt route (plan changes; reading quotas, limits and the plan) is counted
        # but never refused: an org must be able to get out of a used-up quota.
        hard = quota.enforcement is Enforcement.HARD and not is_quota_exempt(request)
        count = self._add_api_calls(org_id, now, amount=1, limit=limit, refuse_over=hard)
        if count is None:
            return
        if not count.allowed:
            _, ends = service.day_window(now)
            raise PaymentRequired(
                f"The {plan.name} plan's {limit} API calls of today (UTC) are used up",
                code="quota_exceeded",
                extra={
                    "quota": API_CALLS,
                    "limit": limit,
                    "used": count.count,
                    "period": "day",
                    "resets_at": ends.isoformat(),
                    **service.upgrade_hint(plan),
                },
                headers={"Retry-After": str(max(1, math.ceil((ends - now).total_seconds())))},
            )
        if count.count >= WARN_FROM * limit:
            state = "exceeded" if count.count > limit else "approaching"
            request.state.quota_warning = (
                f"{API_CALLS};used={count.count};limit={limit};period=day;"
                f"enforcement={quota.enforcement.value};state={state}"
            )

    def _warn(self, exc: Exception) -> None:
        # At most one line every ten seconds: an outage must not flood the log.
        if time.monotonic() - self._last_warning >= 10:
            self._last_warning = time.monotonic()
            log.warning("rate-limit store unavailable, requests pass unlimited: %s", exc)


def _too_many(decision: Decision, status: RateLimitStatus) -> TooManyRequests:
    wait = max(1, math.ceil(decision.retry_after))
    who = "this API key" if status.scope == "api_key" else "this organization"
    return TooManyRequests(
        f"Rate limit of {who} reached; retry in {wait} s",
        extra={"scope": status.scope, "retry_after": wait},
        headers={"Retry-After": str(wait)},
    )


def throttle_request(
    request: Request,
    ctx: Ctx,
    principal: Principal,
    *,
    org_id: str | None = None,
    team_id: str | None = None,
) -> None:
    """Apply the org's rate limits and daily quota to this request, once (see the module
    docstring). Without `org_id`, an API key's own org is used; a user's request that names
    no org is not limited."""
    org_id = org_id or principal.key_org_id
    if org_id is None or getattr(request.state, "throttled", False):
        return
    request.state.throttled = True
    limiter: RequestLimiter | None = getattr(request.app.state, "throttle", None)
    if limiter is None:
        return
    limiter.admit(
        request,
        ctx.session,
        principal,
        now=ctx.clock.now(),
        org_id=org_id,
        team_id=team_id or principal.key_team_id,
    )


class RateLimitHeaders:
    """Adds the rate-limit (and quota warning) headers to the answer of every limited request,
    and starts writing buffered usage when a request finds it due (see `ledger`)."""

    def __init__(self, app: ASGIApp, limiter: RequestLimiter, clock: Clock) -> None:
        self.app = app
        self.limiter = limiter
        self.clock = clock
        self.flushing = False
        self.writes: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ledger = self.limiter.ledger
        # The request that finds the buffer due starts its write beside itself and goes on: a
        # buffer of 5 seconds of calls took tens of milliseconds to write, which that request
        # used to wait for (the slowest answers of an admission run, every 5 seconds).
        if not self.flushing and ledger.due(self.clock.now()):
            self.flushing = True
            ledger.begin_write()
            task = asyncio.get_running_loop().create_task(self._write_due(scope["app"].state))
            self.writes.add(task)
            task.add_done_callback(self.writes.discard)
        state: dict[str, Any] = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = state.get("rate_limit")
                warning = state.get("quota_warning")
                if status is not None or warning is not None:
                    headers = list(message.get("headers") or [])
                    if isinstance(status, RateLimitStatus):
                        headers += status.headers()
                    if warning is not None:
                        headers.append((QUOTA_WARNING_HEADER.lower().encode(), warning.encode()))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _write_due(self, app_state: Any) -> None:
        """Write the due buffer in chunks, each a short transaction that takes SQLite's write
        turn like a writing request, so requests wait for one chunk at most, never the buffer."""
        ledger = self.limiter.ledger
        try:
            gate = write_gate(app_state)
            for _ in range(math.ceil(ledger.pending_events() / FLUSH_CHUNK)):
                async with gate or contextlib.nullcontext():
                    await anyio.to_thread.run_sync(ledger.flush, FLUSH_CHUNK)
        except Exception:
            log.exception("writing buffered api_calls failed; they stay buffered")
        finally:
            self.flushing = False
            ledger.end_write()
