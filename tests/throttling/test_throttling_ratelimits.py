"""Rate limits and the daily API-calls quota through the real app, on both stores: in this
process, and on a real Redis when TENANTRY_TEST_REDIS_URL is set (CI sets it).

Per org and per API key from the plan (Free: org 600/min with bursts of 60, key 300/min with
bursts of 30), 429 with `Retry-After` and the `RateLimit-*` headers; an org's own tighter
limits; the daily `api_calls` quota (hard on Free → 402 with the next plan, soft on paid plans →
a warning header) across midnight UTC; and each limited request recorded as `api_calls` usage.
The FrozenClock stands still unless a test moves it, so buckets refill only when told to.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from conftest import (
    Factory,
    Tenant,
    assert_problem,
    bearer,
    count_rows,
    operator_headers,
    operator_url,
)
from tenantry.app import create_app
from tenantry.audit.models import AuditEvent
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.metering.models import UsageEvent
from tenantry.throttling import limiter as limiter_module
from tenantry.throttling.limiter import RequestLimiter, api_calls_key


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The plans' own rate limits (the suite otherwise multiplies them, see conftest)."""
    return settings.model_copy(update={"rate_limit_multiplier": 1.0})


@pytest.fixture(params=["memory", "redis"])
def limited_app(
    request: pytest.FixtureRequest, settings: Settings, clock: FrozenClock, database: Database
) -> FastAPI:
    if request.param == "redis":
        redis = request.getfixturevalue("real_redis")
        settings = settings.model_copy(
            update={"redis_url": redis.url, "redis_key_prefix": redis.prefix}
        )
    return create_app(settings, clock=clock, database=database)


@pytest.fixture
def api(limited_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(limited_app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def people(api: TestClient) -> Factory:
    return Factory(api)


def teams_url(tenant: Tenant) -> str:
    return f"/api/v1/orgs/{tenant.org_id}/teams"


def limiter(app: FastAPI) -> RequestLimiter:
    found: RequestLimiter = app.state.throttle
    return found


def test_a_limited_answer_carries_the_rate_limit_headers(api: TestClient, people: Factory) -> None:
    acme = people.tenant("Acme")
    resp = api.get(teams_url(acme), headers=acme.headers)
    assert resp.status_code == 200
    assert resp.headers["RateLimit-Limit"] == "60"
    assert resp.headers["RateLimit-Remaining"] == "59"
    assert resp.headers["RateLimit-Reset"] == "1"  # one interval (0.1 s) refills it
    assert resp.headers["RateLimit-Policy"] == '60;w=6;name="org"'
    # A request that names no organization is not limited, and says nothing about limits.
    me = api.get("/api/v1/me", headers=acme.headers)
    assert me.status_code == 200 and "RateLimit-Limit" not in me.headers


def test_an_org_past_its_burst_gets_429_until_the_bucket_refills(
    api: TestClient, people: Factory, clock: FrozenClock
) -> None:
    acme = people.tenant("Acme")
    answers = [api.get(teams_url(acme), headers=acme.headers) for _ in range(61)]
    assert [r.status_code for r in answers] == [200] * 60 + [429]
    refused = answers[-1]
    problem = assert_problem(refused, 429, "rate_limited")
    assert problem["scope"] == "org" and problem["retry_after"] == 1
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit-Limit"] == "60"
    # 600 a minute is one every 0.1 s: moving the clock that far allows exactly one more.
    clock.advance(seconds=0.1)
    assert api.get(teams_url(acme), headers=acme.headers).status_code == 200
    assert api.get(teams_url(acme), headers=acme.headers).status_code == 429
    # Another org is not affected.
    other = people.tenant("Other")
    assert api.get(teams_url(other), headers=other.headers).status_code == 200


def test_team_routes_count_against_the_org_of_the_team(api: TestClient, people: Factory) -> None:
    acme = people.tenant("Acme")
    for _ in range(30):
        assert api.get(f"/api/v1/teams/{acme.team_id}", headers=acme.headers).status_code == 200
    resp = api.get(teams_url(acme), headers=acme.headers)
    assert resp.headers["RateLimit-Remaining"] == "29"


def test_an_api_key_has_its_own_bucket_inside_its_orgs(api: TestClient, people: Factory) -> None:
    acme = people.tenant("Acme")
    first, second = people.api_key(acme), people.api_key(acme)  # 2 requests of the org
    one, two = bearer(first["secret"]), bearer(second["secret"])
    answers = [api.get(teams_url(acme), headers=one) for _ in range(31)]
    assert [r.status_code for r in answers] == [200] * 30 + [429]
    problem = assert_problem(answers[-1], 429, "rate_limited")
    assert problem["scope"] == "api_key"
    assert answers[-1].headers["Retry-After"] == "1"  # 300 a minute: one every 0.2 s
    assert answers[-1].headers["RateLimit-Limit"] == "30"
    # The other key and the owner still get through; the refused request cost the org nothing.
    ok = api.get(teams_url(acme), headers=two)
    assert ok.status_code == 200
    assert ok.headers["RateLimit-Remaining"] == str(60 - 2 - 30 - 1)
    assert '30;w=6;name="api_key"' in ok.headers["RateLimit-Policy"]
    for _ in range(60 - 2 - 30 - 1):
        assert api.get(teams_url(acme), headers=acme.headers).status_code == 200
    # Now the org's bucket is empty, for every key and user of it.
    assert assert_problem(api.get(teams_url(acme), headers=two), 429)["scope"] == "org"
    assert assert_problem(api.get(teams_url(acme), headers=acme.headers), 429)["scope"] == "org"


def test_an_org_can_tighten_its_own_limits_but_not_raise_them(
    api: TestClient, people: Factory, database: Database
) -> None:
    acme = people.tenant("Acme")
    url = f"/api/v1/orgs/{acme.org_id}/rate-limits"
    shown = api.get(url, headers=acme.headers).json()
    plan_limits = {"org_per_minute": 600, "org_burst": 60, "key_per_minute": 300, "key_burst": 30}
    assert shown["plan"] == "free" and shown["plan_limits"] == plan_limits
    assert shown["override"] is None and shown["effective"] == plan_limits
    assert shown["api_calls"]["limit"] == 10_000 and shown["api_calls"]["enforcement"] == "hard"
    assert shown["api_calls"]["used_today"] == 1  # this request

    before = count_rows(database)
    too_high = api.put(url, headers=acme.headers, json={"org_burst": 61})
    problem = assert_problem(too_high, 402, "above_plan_limit")
    assert problem["upgrade_to"] == "starter" and problem["limits"] == {"org_burst": 60}
    assert count_rows(database) == before

    changed = api.put(url, headers=acme.headers, json={"org_burst": 5, "key_per_minute": 100})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["override"]["org_burst"] == 5 and body["override"]["org_per_minute"] is None
    assert body["effective"] == {**plan_limits, "org_burst": 5, "key_per_minute": 100}
    with database.session(write=False) as session:
        events = session.scalars(
            select(AuditEvent).where(
                AuditEvent.org_id == acme.org_id, AuditEvent.action == "rate_limits.updated"
            )
        ).all()
    assert [e.summary["after"]["org_burst"] for e in events] == [5]

    # The bucket keeps what was spent: 3 requests so far (the 402 too), so 2 more of 5 at once.
    for _ in range(2):
        assert api.get(teams_url(acme), headers=acme.headers).status_code == 200
    assert_problem(api.get(teams_url(acme), headers=acme.headers), 429, "rate_limited")


def test_clearing_the_override_restores_the_plan(api: TestClient, people: Factory) -> None:
    acme = people.tenant("Acme")
    url = f"/api/v1/orgs/{acme.org_id}/rate-limits"
    assert api.put(url, headers=acme.headers, json={"key_burst": 3}).status_code == 200
    cleared = api.put(url, headers=acme.headers, json={"key_burst": None})
    assert cleared.status_code == 200
    assert cleared.json()["override"] is None
    assert cleared.json()["effective"]["key_burst"] == 30


def test_a_plan_below_an_old_override_still_caps_it(
    api: TestClient, people: Factory, database: Database
) -> None:
    rich = people.tenant("Rich", plan="professional")
    url = f"/api/v1/orgs/{rich.org_id}/rate-limits"
    assert api.put(url, headers=rich.headers, json={"org_burst": 200}).status_code == 200
    downgraded = api.put(
        operator_url(rich.org_id, "/plan"), headers=operator_headers(api), json={"plan": "free"}
    )
    assert downgraded.status_code == 200, downgraded.text
    assert api.get(url, headers=rich.headers).json()["effective"]["org_burst"] == 60


def _use_up(app: FastAPI, org_id: str, now: datetime, calls: int) -> None:
    """The org made `calls` API calls today already (as the quota counts them)."""
    day = now.date().isoformat()
    ends = datetime.combine(now.date(), datetime.max.time(), tzinfo=UTC).timestamp()
    limiter(app).store.add_to_window(
        api_calls_key(org_id, day),
        amount=calls,
        limit=None,
        refuse_over=False,
        expires_at=ends,
        now=now.timestamp(),
    )


def test_the_daily_api_calls_quota_is_hard_on_free_until_midnight_utc(
    api: TestClient, limited_app: FastAPI, people: Factory, clock: FrozenClock
) -> None:
    clock.set(datetime(2026, 3, 10, 23, 59, 50, tzinfo=UTC))
    acme = people.tenant("Acme")
    _use_up(limited_app, acme.org_id, clock.now(), 9_998)
    first = api.get(teams_url(acme), headers=acme.headers)
    assert first.status_code == 200
    assert first.headers["Tenantry-Quota-Warning"] == (
        "api_calls;used=9999;limit=10000;period=day;enforcement=hard;state=approaching"
    )
    assert api.get(teams_url(acme), headers=acme.headers).status_code == 200
    refused = api.get(teams_url(acme), headers=acme.headers)
    problem = assert_problem(refused, 402, "quota_exceeded")
    assert problem["quota"] == "api_calls" and problem["limit"] == 10_000
    assert problem["used"] == 10_000 and problem["upgrade_to"] == "starter"
    assert problem["resets_at"] == "2026-03-11T00:00:00+00:00"
    assert refused.headers["Retry-After"] == "10"  # seconds to midnight UTC
    assert "RateLimit-Remaining" in refused.headers  # the rate limit ran, and said so
    # Refused calls are not counted.
    assert limiter(limited_app).used_today(acme.org_id, now=clock.now()) == 10_000
    # A new UTC day, a new quota.
    clock.set(datetime(2026, 3, 11, 0, 0, 0, tzinfo=UTC))
    again = api.get(teams_url(acme), headers=acme.headers)
    assert again.status_code == 200 and "Tenantry-Quota-Warning" not in again.headers
    assert limiter(limited_app).used_today(acme.org_id, now=clock.now()) == 1


def test_an_org_past_its_hard_quota_can_still_read_its_limits_and_change_its_plan(
    api: TestClient, limited_app: FastAPI, people: Factory, clock: FrozenClock
) -> None:
    clock.set(datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC))
    acme = people.tenant("Acme")
    org = f"/api/v1/orgs/{acme.org_id}"
    _use_up(limited_app, acme.org_id, clock.now(), 10_000)
    assert_problem(api.get(teams_url(acme), headers=acme.headers), 402, "quota_exceeded")
    # Reading the quotas, the limits and the plan, and changing the plan, are never refused by
    # the daily quota: they are how an org gets out of it. They are still counted and limited.
    for path in ("/quotas", "/rate-limits", "/plan"):
        read = api.get(org + path, headers=acme.headers)
        assert read.status_code == 200, (path, read.text)
        assert "RateLimit-Remaining" in read.headers
        assert "state=exceeded" in read.headers["Tenantry-Quota-Warning"]
    # Custom plans and plans outside billing are the operator's; the org's own way up is a
    # subscription, which the daily quota never refuses either.
    refused = api.put(org + "/plan-overrides", json={}, headers=acme.headers)
    assert_problem(refused, 403, "operator_only")
    upgraded = api.put(org + "/subscription", json={"plan": "starter"}, headers=acme.headers)
    assert upgraded.status_code == 200, upgraded.text
    assert limiter(limited_app).used_today(acme.org_id, now=clock.now()) == 10_005
    # The upgrade took effect: Starter's quota is soft (and larger).
    assert api.get(teams_url(acme), headers=acme.headers).status_code == 200


def test_the_daily_api_calls_quota_is_soft_on_paid_plans(
    api: TestClient, limited_app: FastAPI, people: Factory, clock: FrozenClock
) -> None:
    acme = people.tenant("Acme", plan="starter")
    _use_up(limited_app, acme.org_id, clock.now(), 99_999)
    at_limit = api.get(teams_url(acme), headers=acme.headers)
    assert at_limit.status_code == 200
    assert "used=100000;limit=100000" in at_limit.headers["Tenantry-Quota-Warning"]
    over = api.get(teams_url(acme), headers=acme.headers)
    assert over.status_code == 200
    assert over.headers["Tenantry-Quota-Warning"] == (
        "api_calls;used=100001;limit=100000;period=day;enforcement=soft;state=exceeded"
    )


def test_an_unlimited_plan_has_no_daily_quota(
    api: TestClient, limited_app: FastAPI, people: Factory, clock: FrozenClock
) -> None:
    big = people.tenant("Big", plan="enterprise")
    resp = api.get(teams_url(big), headers=big.headers)
    assert resp.status_code == 200 and "Tenantry-Quota-Warning" not in resp.headers
    assert resp.headers["RateLimit-Limit"] == "1200"
    assert limiter(limited_app).used_today(big.org_id, now=clock.now()) == 0


def _api_calls(database: Database, org_id: str) -> list[UsageEvent]:
    with database.session(write=False) as session:
        return list(
            session.scalars(
                select(UsageEvent).where(
                    UsageEvent.org_id == org_id, UsageEvent.meter == "api_calls"
                )
            )
        )


def test_each_limited_request_is_recorded_as_api_calls_usage(
    api: TestClient, limited_app: FastAPI, people: Factory, database: Database
) -> None:
    acme = people.tenant("Acme")
    key = people.api_key(acme)  # 1 call, by the owner
    api.get(teams_url(acme), headers=acme.headers)
    api.get(f"/api/v1/teams/{acme.team_id}", headers=bearer(key["secret"]))
    api.get("/api/v1/me", headers=acme.headers)  # names no org: not an org's API call
    # Buffered, not written on the request path; written when due or at shutdown.
    assert _api_calls(database, acme.org_id) == []
    assert limiter(limited_app).ledger.flush() == 3
    calls = sorted(_api_calls(database, acme.org_id), key=lambda e: e.event_id)
    assert len(calls) == 3 and all(e.quantity == 1 for e in calls)
    assert [(e.dimensions["method"], e.dimensions["route"]) for e in calls] == [
        ("POST", "/api/v1/orgs/{org}/api-keys"),
        ("GET", "/api/v1/orgs/{org}/teams"),
        ("GET", "/api/v1/teams/{team}"),
    ]
    assert calls[0].user_id == acme.owner_id and calls[0].api_key_id is None
    assert calls[2].api_key_id == key["id"]
    # Written once: a second flush has nothing left.
    assert limiter(limited_app).ledger.flush() == 0


def test_buffered_usage_is_written_when_the_clock_says_it_is_due(
    api: TestClient, limited_app: FastAPI, people: Factory, clock: FrozenClock, database: Database
) -> None:
    acme = people.tenant("Acme")
    ledger = limiter(limited_app).ledger
    api.get(teams_url(acme), headers=acme.headers)
    clock.advance(seconds=4)
    api.get("/api/v1/me", headers=acme.headers)
    assert ledger.wait_written(timeout=10)
    assert _api_calls(database, acme.org_id) == []  # not due yet (5 s by default)
    clock.advance(seconds=1)
    # The first request once due starts writing them, beside itself: it does not wait.
    assert api.get("/api/v1/me", headers=acme.headers).status_code == 200
    assert ledger.wait_written(timeout=10)
    assert len(_api_calls(database, acme.org_id)) == 1


def test_the_request_that_finds_the_buffer_due_does_not_wait_for_its_write(
    api: TestClient,
    limited_app: FastAPI,
    people: Factory,
    clock: FrozenClock,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acme = people.tenant("Acme")
    ledger = limiter(limited_app).ledger
    api.get(teams_url(acme), headers=acme.headers)
    started, release = threading.Event(), threading.Event()
    write = ledger.flush

    def held_write(at_most: int | None = None) -> int:
        started.set()
        assert release.wait(timeout=10)
        return write(at_most)

    monkeypatch.setattr(ledger, "flush", held_write)
    clock.advance(seconds=5)
    # Answered while its write is held back.
    assert api.get("/api/v1/me", headers=acme.headers).status_code == 200
    assert started.wait(timeout=10)
    assert _api_calls(database, acme.org_id) == []
    release.set()
    assert ledger.wait_written(timeout=10)
    assert len(_api_calls(database, acme.org_id)) == 1


def test_a_due_buffer_is_written_whole_one_chunk_at_a_time(
    api: TestClient,
    limited_app: FastAPI,
    people: Factory,
    clock: FrozenClock,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acme = people.tenant("Acme")
    routes = [
        teams_url(acme),
        f"/api/v1/teams/{acme.team_id}",
        f"/api/v1/orgs/{acme.org_id}",
        f"/api/v1/orgs/{acme.org_id}/api-keys",
        f"/api/v1/orgs/{acme.org_id}/members",
    ]
    for url in routes:  # five routes: five usage events
        assert api.get(url, headers=acme.headers).status_code == 200
    ledger = limiter(limited_app).ledger
    # A flush may take the oldest events only (a chunk: one short transaction).
    assert ledger.flush(2) == 2 and (ledger.pending(), ledger.pending_events()) == (3, 3)
    monkeypatch.setattr(limiter_module, "FLUSH_CHUNK", 2)
    clock.advance(seconds=5)
    api.get("/api/v1/me", headers=acme.headers)  # once due: the rest, in chunks of 2
    assert ledger.wait_written(timeout=10)
    assert ledger.pending() == 0
    assert len(_api_calls(database, acme.org_id)) == 5


def test_buffered_usage_is_written_when_the_app_stops(
    limited_app: FastAPI, database: Database
) -> None:
    with TestClient(limited_app) as api:
        acme = Factory(api).tenant("Acme")
        api.get(teams_url(acme), headers=acme.headers)
        assert _api_calls(database, acme.org_id) == []
    assert len(_api_calls(database, acme.org_id)) == 1


def test_requests_pass_when_the_store_is_unreachable(
    settings: Settings, clock: FrozenClock, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    down = settings.model_copy(
        update={"redis_url": "redis://127.0.0.1:9/0", "redis_timeout_seconds": 0.2}
    )
    with TestClient(create_app(down, clock=clock, database=database)) as api:
        acme = Factory(api).tenant("Acme")
        resp = api.get(teams_url(acme), headers=acme.headers)
    assert resp.status_code == 200 and "RateLimit-Limit" not in resp.headers
    assert "rate-limit store unavailable" in caplog.text


def test_the_deployment_multiplier_scales_every_plan_limit(
    settings: Settings, clock: FrozenClock, database: Database
) -> None:
    doubled = settings.model_copy(update={"rate_limit_multiplier": 2.0})
    with TestClient(create_app(doubled, clock=clock, database=database)) as api:
        acme = Factory(api).tenant("Acme")
        shown = api.get(f"/api/v1/orgs/{acme.org_id}/rate-limits", headers=acme.headers)
        resp = api.get(teams_url(acme), headers=acme.headers)
        # An org may set its own limits up to the scaled ones.
        own = api.put(
            f"/api/v1/orgs/{acme.org_id}/rate-limits", headers=acme.headers, json={"org_burst": 120}
        )
    assert shown.json()["plan_limits"] == {
        "org_per_minute": 1200,
        "org_burst": 120,
        "key_per_minute": 600,
        "key_burst": 60,
    }
    assert resp.headers["RateLimit-Limit"] == "120"
    assert own.status_code == 200, own.text
