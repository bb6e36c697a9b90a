"""The rate-limit mechanism (`tenantry.kit.ratelimit`), the same tests on both stores: in this
process, and on a real Redis when TENANTRY_TEST_REDIS_URL is set (CI sets it).

GCRA: a full bucket allows exactly `burst` requests at one instant, then one per emission
interval; a check against several buckets charges all or none; fixed-window counters refuse at
the limit when asked to and count on when not. Under concurrency (real threads) nothing
overshoots.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import RedisForTests
from tenantry.kit.ratelimit import (
    Bucket,
    MemoryStore,
    Rate,
    RateLimitStore,
    RedisStore,
    StoreUnavailable,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[RateLimitStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    redis: RedisForTests = request.getfixturevalue("real_redis")
    made = RedisStore.from_url(redis.url, prefix=redis.prefix, timeout=2.0)
    yield made
    made.close()


TEN_PER_SECOND = Rate(per_period=600, period=60, burst=5)  # interval 0.1 s, depth 0.5 s


def test_a_full_bucket_allows_exactly_its_burst_at_once(store: RateLimitStore) -> None:
    bucket = [Bucket("b:burst", TEN_PER_SECOND)]
    decisions = [store.throttle(bucket, now=T0) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.binding.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    refused = decisions[5]
    assert refused.binding.remaining == 0
    assert refused.retry_after == pytest.approx(0.1, abs=1e-6)
    assert refused.binding.reset_after == pytest.approx(0.5, abs=1e-6)


def test_the_bucket_refills_at_the_sustained_rate(store: RateLimitStore) -> None:
    bucket = [Bucket("b:refill", TEN_PER_SECOND)]
    for _ in range(5):
        assert store.throttle(bucket, now=T0).allowed
    assert not store.throttle(bucket, now=T0 + 0.099).allowed
    assert store.throttle(bucket, now=T0 + 0.1).allowed
    assert not store.throttle(bucket, now=T0 + 0.1).allowed
    # A quiet second refills the whole bucket, and no more than that.
    later = T0 + 10
    assert [store.throttle(bucket, now=later).allowed for _ in range(6)] == [True] * 5 + [False]


def test_a_refused_request_costs_nothing(store: RateLimitStore) -> None:
    bucket = [Bucket("b:refused", TEN_PER_SECOND)]
    for _ in range(5):
        store.throttle(bucket, now=T0)
    for _ in range(100):
        assert not store.throttle(bucket, now=T0 + 0.05).allowed
    assert store.throttle(bucket, now=T0 + 0.1).allowed  # not pushed back by the refusals


def test_several_buckets_are_charged_together_or_not_at_all(store: RateLimitStore) -> None:
    key = Bucket("b:key", Rate(per_period=60, period=60, burst=2))
    org = Bucket("b:org", Rate(per_period=60, period=60, burst=3))
    assert store.throttle([key, org], now=T0).allowed
    assert store.throttle([key, org], now=T0).allowed
    refused = store.throttle([key, org], now=T0)
    assert not refused.allowed
    assert refused.binding.key == "b:key"
    # The key's refusal did not spend the org's last request.
    assert store.throttle([org], now=T0).allowed
    assert not store.throttle([org], now=T0).allowed


def test_cost_counts_several_requests(store: RateLimitStore) -> None:
    bucket = [Bucket("b:cost", TEN_PER_SECOND)]
    assert store.throttle(bucket, now=T0, cost=3).allowed
    assert not store.throttle(bucket, now=T0, cost=3).allowed
    assert store.throttle(bucket, now=T0, cost=2).allowed


def test_a_window_counter_refuses_at_its_limit_when_hard(store: RateLimitStore) -> None:
    ends = T0 + 86_400
    counts = [
        store.add_to_window("w:hard", amount=1, limit=3, refuse_over=True, expires_at=ends, now=T0)
        for _ in range(5)
    ]
    assert [(c.allowed, c.count) for c in counts] == [
        (True, 1),
        (True, 2),
        (True, 3),
        (False, 3),
        (False, 3),
    ]


def test_a_window_counter_counts_past_its_limit_when_soft(store: RateLimitStore) -> None:
    ends = T0 + 86_400
    counts = [
        store.add_to_window("w:soft", amount=2, limit=3, refuse_over=False, expires_at=ends, now=T0)
        for _ in range(3)
    ]
    assert [(c.allowed, c.count) for c in counts] == [(True, 2), (True, 4), (True, 6)]
    # Another window (another key) starts from zero.
    fresh = store.add_to_window(
        "w:soft:next", amount=0, limit=None, refuse_over=False, expires_at=ends, now=T0
    )
    assert (fresh.allowed, fresh.count) == (True, 0)


def test_forget_empties_a_bucket(store: RateLimitStore) -> None:
    bucket = [Bucket("b:forget", TEN_PER_SECOND)]
    for _ in range(5):
        store.throttle(bucket, now=T0)
    assert not store.throttle(bucket, now=T0).allowed
    store.forget(["b:forget"])
    assert store.throttle(bucket, now=T0).allowed


def test_concurrent_checks_never_overshoot(store: RateLimitStore) -> None:
    bucket = [Bucket("b:race", Rate(per_period=1, period=3600, burst=10))]
    counter = "w:race"
    start = threading.Barrier(16)

    def one(i: int) -> tuple[bool, bool]:
        if i < 16:  # the first wave starts together
            start.wait()
        allowed = store.throttle(bucket, now=T0).allowed
        counted = store.add_to_window(
            counter, amount=1, limit=25, refuse_over=True, expires_at=T0 + 60, now=T0
        ).allowed
        return allowed, counted

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(60)))
    assert sum(allowed for allowed, _ in results) == 10
    assert sum(counted for _, counted in results) == 25


def test_an_unreachable_redis_is_reported_not_hung() -> None:
    # Port 9 (discard) on loopback: nothing listens there.
    store = RedisStore.from_url("redis://127.0.0.1:9/0", prefix="x:", timeout=0.2)
    with pytest.raises(StoreUnavailable):
        store.throttle([Bucket("b", TEN_PER_SECOND)], now=T0)
    with pytest.raises(StoreUnavailable):
        store.add_to_window("w", amount=1, limit=1, refuse_over=True, expires_at=T0, now=T0)


def test_a_rate_must_make_sense() -> None:
    with pytest.raises(ValueError):
        Rate(per_period=0, period=60, burst=1)
    with pytest.raises(ValueError):
        Rate(per_period=10, period=60, burst=0)
