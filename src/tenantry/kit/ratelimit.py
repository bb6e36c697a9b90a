"""Rate-limit mechanisms, no business rules: GCRA buckets and fixed-window counters kept in a
store — in this process (`MemoryStore`, one process) or in Redis (`RedisStore`, any number).

GCRA (the generic cell rate algorithm) is a token bucket written as one number per bucket: the
theoretical arrival time (TAT) of the next request if requests came exactly at the sustained
rate. A request is allowed when, after adding its cost, the TAT is no further ahead of `now`
than the bucket's depth (`burst` emission intervals). One number per bucket means one read and
one write per check, with no refill loop and no background work.

Time is always passed in (`now`, seconds since the epoch from the caller's `Clock`), never read
here or in Redis: tests move a `FrozenClock` and the limits follow, and every process of a
deployment decides with the same clock it stamps its answers with. The price is that the
processes' clocks must agree (NTP keeps them within milliseconds; a skew of `s` seconds can let
at most `s * rate` extra requests through, and only while it lasts).

Checks are all-or-nothing: a request counted against several buckets (its API key's and its
org's) is charged to all of them or to none, atomically, so a request refused by one bucket does
not use up another.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis

MICROS = 1_000_000


class StoreUnavailable(Exception):
    """The store could not be reached or did not answer in time."""


@dataclass(frozen=True)
class Rate:
    """`per_period` requests per `period` seconds, at most `burst` of them at once."""

    per_period: int
    period: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_period < 1 or self.burst < 1 or self.period <= 0:
            raise ValueError("a rate needs per_period >= 1, burst >= 1 and period > 0")

    @property
    def interval_us(self) -> int:
        """Microseconds between two requests at the sustained rate (the emission interval).
        Whole microseconds: the arithmetic is exact integers in both stores, so a full bucket
        allows exactly `burst` requests, never one less through a rounding error."""
        return max(1, round(self.period * MICROS / self.per_period))

    @property
    def depth_us(self) -> int:
        """Microseconds of requests the bucket holds when full: `burst` intervals."""
        return self.interval_us * self.burst

    @property
    def window(self) -> float:
        """Seconds in which `burst` requests may be made from a full bucket: the time an empty
        bucket takes to fill again."""
        return self.depth_us / MICROS


@dataclass(frozen=True)
class Bucket:
    key: str
    rate: Rate


@dataclass(frozen=True)
class BucketState:
    """One bucket's answer: how many requests it has left now, and when."""

    key: str
    rate: Rate
    allowed: bool
    remaining: int
    reset_after: float  # seconds until the bucket is full again
    retry_after: float  # seconds until this request would be allowed (0 when it was)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    buckets: tuple[BucketState, ...]

    @property
    def retry_after(self) -> float:
        return max((b.retry_after for b in self.buckets), default=0.0)

    @property
    def binding(self) -> BucketState:
        """The bucket that decided: the refusing one that frees up last, or, when allowed, the
        one with the fewest requests left (what a client should pace itself by)."""
        refusing = [b for b in self.buckets if not b.allowed]
        if refusing:
            return max(refusing, key=lambda b: b.retry_after)
        return min(self.buckets, key=lambda b: (b.remaining, -b.reset_after))


@dataclass(frozen=True)
class WindowCount:
    """A fixed-window counter's answer: whether the amount was added, and the count after it
    (or, when refused, the count as it stands)."""

    allowed: bool
    count: int


def gcra(tat: int | None, *, now: int, rate: Rate, cost: int) -> tuple[BucketState, int]:
    """One bucket's decision and its TAT afterwards (unchanged when refused); times in µs."""
    interval, depth = rate.interval_us, rate.depth_us
    start = now if tat is None or tat < now else tat
    new_tat = start + cost * interval
    allow_at = new_tat - depth
    if now < allow_at:
        left = max(0, (now + depth - start) // interval)
        return BucketState("", rate, False, left, _s(start - now), _s(allow_at - now)), start
    left = max(0, (now + depth - new_tat) // interval)
    return BucketState("", rate, True, left, _s(new_tat - now), 0.0), new_tat


def _s(micros: int) -> float:
    return micros / MICROS


class RateLimitStore(Protocol):
    """Where bucket and counter state lives. Both operations are atomic."""

    def throttle(self, buckets: Sequence[Bucket], *, now: float, cost: int = 1) -> Decision:
        """Charge `cost` to every bucket, or to none if any of them refuses."""
        ...

    def add_to_window(
        self,
        key: str,
        *,
        amount: int,
        limit: int | None,
        refuse_over: bool,
        expires_at: float,
        now: float,
    ) -> WindowCount:
        """Add `amount` to the counter `key` (one per window: the window is in the key). With
        `refuse_over`, an amount that would take the count past `limit` is not added."""
        ...

    def forget(self, keys: Sequence[str]) -> None:
        """Drop these buckets and counters (an override changed; a test cleans up)."""
        ...

    def close(self) -> None: ...


class MemoryStore:
    """State in a dict of this process, behind one lock: exact for one process, and shared by
    nothing else (several processes or hosts need `RedisStore`)."""

    SWEEP_EVERY = 10_000  # operations between sweeps of entries that no longer matter

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tats: dict[str, int] = {}
        self._counters: dict[str, tuple[int, float]] = {}
        self._operations = 0

    def throttle(self, buckets: Sequence[Bucket], *, now: float, cost: int = 1) -> Decision:
        at = _micros(now)
        with self._lock:
            self._maybe_sweep(now)
            states: list[BucketState] = []
            tats: list[int] = []
            for bucket in buckets:
                state, tat = gcra(self._tats.get(bucket.key), now=at, rate=bucket.rate, cost=cost)
                states.append(_named(state, bucket.key))
                tats.append(tat)
            allowed = all(s.allowed for s in states)
            if allowed:
                for bucket, tat in zip(buckets, tats, strict=True):
                    self._tats[bucket.key] = tat
            return Decision(allowed, tuple(states))

    def add_to_window(
        self,
        key: str,
        *,
        amount: int,
        limit: int | None,
        refuse_over: bool,
        expires_at: float,
        now: float,
    ) -> WindowCount:
        with self._lock:
            self._maybe_sweep(now)
            count, _ = self._counters.get(key, (0, expires_at))
            if refuse_over and limit is not None and count + amount > limit:
                return WindowCount(False, count)
            self._counters[key] = (count + amount, expires_at)
            return WindowCount(True, count + amount)

    def forget(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._tats.pop(key, None)
                self._counters.pop(key, None)

    def close(self) -> None:
        return None

    def _maybe_sweep(self, now: float) -> None:
        # A bucket whose TAT has passed is full, the same as no entry; a counter past its
        # window's end is never read again. Dropping them keeps memory bounded by activity.
        self._operations += 1
        if self._operations % self.SWEEP_EVERY:
            return
        at = _micros(now)
        self._tats = {k: t for k, t in self._tats.items() if t > at}
        self._counters = {k: v for k, v in self._counters.items() if v[1] > now}


def _named(state: BucketState, key: str) -> BucketState:
    return BucketState(
        key, state.rate, state.allowed, state.remaining, state.reset_after, state.retry_after
    )


# KEYS: the buckets. ARGV: now (µs), cost, then per bucket its interval and depth (µs).
# Every TAT is read and checked before any is written: all buckets are charged, or none.
_GCRA_LUA = """
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local allowed = 1
local tats = {}
local out = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[1 + 2 * i])
  local depth = tonumber(ARGV[2 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  local allow_at = new_tat - depth
  local ok, left, reset, retry
  if now < allow_at then
    allowed = 0
    ok = 0
    left = math.floor((now + depth - tat) / interval)
    reset = tat - now
    retry = allow_at - now
  else
    ok = 1
    left = math.floor((now + depth - new_tat) / interval)
    reset = new_tat - now
    retry = 0
  end
  if left < 0 then left = 0 end
  tats[i] = new_tat
  out[#out + 1] = ok
  out[#out + 1] = left
  out[#out + 1] = string.format('%.0f', reset)
  out[#out + 1] = string.format('%.0f', retry)
end
if allowed == 1 then
  for i = 1, #KEYS do
    -- The key may go once the bucket is full again; the expiry runs on Redis's clock, so it
    -- gets a minute's grace for callers whose clock is not Redis's (tests, skewed hosts).
    local ttl_ms = math.ceil((tats[i] - now) / 1000) + 60000
    redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ttl_ms)
  end
end
table.insert(out, 1, allowed)
return out
"""

# KEYS[1]: the counter. ARGV: amount, limit (-1: none), refuse_over (1/0), ttl (ms).
_WINDOW_LUA = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if ARGV[3] == '1' and limit >= 0 and count + amount > limit then
  return {0, count}
end
count = redis.call('INCRBY', KEYS[1], amount)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, count}
"""

# A window's counter outlives the window by a day (on Redis's clock), which covers any skew
# between Redis and the callers' clocks; the window itself is named in the key.
_WINDOW_GRACE_MS = 24 * 3600 * 1000


class RedisStore:
    """State in Redis, updated by Lua scripts (atomic on the server): exact across any number
    of processes and hosts that share the Redis. Keys are prefixed, so several deployments (or
    test runs) can share one Redis."""

    def __init__(self, client: Any, *, prefix: str = "tenantry:") -> None:
        self._redis = client
        self._prefix = prefix
        self._gcra = client.register_script(_GCRA_LUA)
        self._window = client.register_script(_WINDOW_LUA)

    @classmethod
    def from_url(cls, url: str, *, prefix: str, timeout: float) -> RedisStore:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True
        )
        return cls(client, prefix=prefix)

    def throttle(self, buckets: Sequence[Bucket], *, now: float, cost: int = 1) -> Decision:
        args: list[Any] = [_micros(now), cost]
        for bucket in buckets:
            args += [bucket.rate.interval_us, bucket.rate.depth_us]
        try:
            raw = self._gcra(keys=[self._prefix + b.key for b in buckets], args=args)
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        states = []
        for i, bucket in enumerate(buckets):
            ok, left, reset, retry = raw[1 + 4 * i : 5 + 4 * i]
            states.append(
                BucketState(
                    bucket.key,
                    bucket.rate,
                    int(ok) == 1,
                    int(left),
                    int(reset) / MICROS,
                    int(retry) / MICROS,
                )
            )
        return Decision(int(raw[0]) == 1, tuple(states))

    def add_to_window(
        self,
        key: str,
        *,
        amount: int,
        limit: int | None,
        refuse_over: bool,
        expires_at: float,
        now: float,
    ) -> WindowCount:
        ttl_ms = max(0, math.ceil((expires_at - now) * 1000)) + _WINDOW_GRACE_MS
        try:
            raw = self._window(
                keys=[self._prefix + key],
                args=[amount, -1 if limit is None else limit, int(refuse_over), ttl_ms],
            )
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return WindowCount(int(raw[0]) == 1, int(raw[1]))

    def forget(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            self._redis.delete(*(self._prefix + key for key in keys))
        except redis.RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    def close(self) -> None:
        self._redis.close()


def _micros(seconds: float) -> int:
    return round(seconds * MICROS)
