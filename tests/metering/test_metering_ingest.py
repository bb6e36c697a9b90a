"""Usage ingestion and summaries: batches with per-event results, idempotent replays, refusals
one by one, and summaries (from rollups only) that match the events exactly."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.dialects import sqlite

from conftest import Factory, Tenant, assert_problem, bearer, count_rows
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database, UTCDateTime
from tenantry.metering import recording, repository
from tenantry.metering.models import UsageCounter, UsageEvent, UsageRollup

EVENTS = "/api/v1/usage/events"


def event(clock: FrozenClock, n: int | str, **kw: Any) -> dict[str, Any]:
    body = {
        "id": f"e-{n}",
        "meter": "llm_input_tokens",
        "quantity": "10",
        "timestamp": clock.now().isoformat(),
    }
    body.update(kw)
    return body


def post(client: TestClient, tenant: Tenant, body: dict[str, Any]) -> Any:
    return client.post(EVENTS, headers=tenant.headers, json=body)


def test_a_batch_is_recorded_and_a_replay_changes_nothing(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    acme = factory.tenant("Acme")
    batch = {
        "events": [
            event(clock, i, team=acme.team_id, quantity=str(i), dimensions={"model": "m"})
            for i in range(1, 6)
        ]
    }
    first = post(client, acme, batch)
    assert first.status_code == 200, first.text
    assert (first.json()["accepted"], first.json()["duplicates"]) == (5, 0)
    assert first.json()["org_id"] == acme.org_id
    before = count_rows(database)
    with database.session(write=False) as s:
        counters_before = list(s.execute(select(UsageCounter.used, UsageCounter.reserved)))
    again = post(client, acme, batch)
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 5)
    assert [r["status"] for r in again.json()["results"]] == ["duplicate"] * 5
    assert count_rows(database) == before
    with database.session(write=False) as s:
        assert list(s.execute(select(UsageCounter.used, UsageCounter.reserved))) == counters_before
        assert s.scalar(select(func.sum(UsageRollup.quantity))) == Decimal(15)


def test_a_batch_mixing_replays_and_new_events_records_only_the_new(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    acme = factory.tenant("Acme")
    bravo = factory.tenant("Bravo")

    # Another org's events land between the two batches, so the new rows are not simply the
    # table's last ones of this org.
    def batch(tenant: Tenant, *numbers: int) -> dict[str, Any]:
        return {"events": [event(clock, n, team=tenant.team_id, quantity=str(n)) for n in numbers]}

    assert post(client, acme, batch(acme, 1, 3)).status_code == 200
    assert post(client, bravo, batch(bravo, 2, 9)).status_code == 200
    mixed = batch(acme, 1, 2, 3, 4)
    answer = post(client, acme, mixed)
    assert answer.status_code == 200, answer.text
    assert [(r["id"], r["status"]) for r in answer.json()["results"]] == [
        ("e-1", "duplicate"),
        ("e-2", "accepted"),
        ("e-3", "duplicate"),
        ("e-4", "accepted"),
    ]
    with database.session(write=False) as s:
        acme_total = select(func.sum(UsageRollup.quantity)).where(UsageRollup.org_id == acme.org_id)
        # 1 + 3 from the first batch, then only e-2 (2) and e-4 (4) of the mixed one.
        assert s.scalar(acme_total) == Decimal(10)
        assert (
            s.scalar(
                select(func.count()).select_from(UsageEvent).where(UsageEvent.org_id == acme.org_id)
            )
            == 4
        )


def test_a_refused_body_is_named_by_its_shape(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    acme = factory.tenant("Acme")
    before = count_rows(database)

    def locs(body: Any) -> list[list[Any]]:
        problem = assert_problem(post(client, acme, body), 422, "validation_error")
        return [e["loc"] for e in problem["errors"]]

    good = event(clock, 1, team=acme.team_id)
    batch = {"events": [good, {**good, "id": "e-2", "quantity": "many"}]}
    assert locs(batch) == [["body", "batch", "events", 1, "quantity"]]
    assert locs({**good, "timestamp": "soon"}) == [["body", "event", "timestamp"]]
    # "events" inside a single event (a dimension here) does not make it a batch.
    lone = {**good, "quantity": "many", "dimensions": {"events": "3"}}
    assert locs(lone) == [["body", "event", "quantity"]]
    assert locs({"events": []})[0][:3] == ["body", "batch", "events"]
    assert count_rows(database) == before
    one = post(client, acme, {**good, "dimensions": {"events": "3"}})
    assert one.status_code == 200 and one.json()["accepted"] == 1, one.text


def test_bad_events_are_refused_one_by_one(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme")
    bravo = factory.tenant("Bravo")
    now = clock.now()
    cases = {
        "ok": event(clock, "ok", team=acme.team_id),
        "too_old": event(clock, "old", timestamp=(now - timedelta(days=36)).isoformat()),
        "in_future": event(clock, "ahead", timestamp=(now + timedelta(minutes=6)).isoformat()),
        "unknown_meter": event(clock, "m", meter="gpu_seconds"),
        "negative": event(clock, "neg", quantity="-1"),
        "too_precise": event(clock, "p", quantity="0.0000001"),
        "theirs": event(clock, "theirs", team=bravo.team_id),
        "nowhere": event(clock, "nowhere", team=bravo.team_id[:-6] + "000000"),
        "no_session": event(clock, "s", meter="ai_sessions", quantity="1"),
        "repeat": event(clock, "ok", team=acme.team_id),
    }
    resp = post(client, acme, {"org": acme.org_id, "events": list(cases.values())})
    assert resp.status_code == 200, resp.text
    got = {
        name: (r["status"], r["code"])
        for name, r in zip(cases, resp.json()["results"], strict=True)
    }
    assert got == {
        "ok": ("accepted", None),
        "too_old": ("rejected", "too_old"),
        "in_future": ("rejected", "in_future"),
        "unknown_meter": ("rejected", "unknown_meter"),
        "negative": ("rejected", "invalid_quantity"),
        "too_precise": ("rejected", "invalid_quantity"),
        # Another tenant's team answers exactly like a team that does not exist.
        "theirs": ("rejected", "unknown_team"),
        "nowhere": ("rejected", "unknown_team"),
        "no_session": ("rejected", "missing_dimension"),
        "repeat": ("duplicate", None),
    }
    assert resp.json()["accepted"] == 1 and resp.json()["rejected"] == 8


def test_whose_usage_it_is(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    acme = factory.tenant("Acme")
    bravo = factory.tenant("Bravo")
    key = factory.api_key(acme)
    # An API key speaks for its org (and stamps itself on the event).
    resp = client.post(EVENTS, headers=bearer(key["secret"]), json=event(clock, 1))
    assert resp.json()["org_id"] == acme.org_id
    with database.session(write=False) as s:
        assert s.scalar(select(UsageEvent.api_key_id)) == key["id"]
    # A user names the org, or teams of one org; otherwise the request says what is missing.
    assert post(client, acme, event(clock, 2, team=acme.team_id)).json()["org_id"] == acme.org_id
    assert post(client, acme, {**event(clock, 3), "org": acme.org_slug}).status_code == 200
    assert_problem(post(client, acme, event(clock, 4)), 422, "org_required")
    # Another tenant's org or team is not found, and nothing is written.
    before = count_rows(database)
    assert_problem(post(client, acme, {**event(clock, 5), "org": bravo.org_id}), 404, "not_found")
    assert_problem(post(client, acme, event(clock, 6, team=bravo.team_id)), 404, "not_found")
    resp = client.post(
        EVENTS, headers=bearer(key["secret"]), json={**event(clock, 7), "org": bravo.org_id}
    )
    assert_problem(resp, 404, "not_found")
    assert count_rows(database) == before


def test_recording_needs_usage_write_on_the_team(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme")
    _, viewer = factory.member(acme, team_role="viewer")
    _, editor = factory.member(acme, team_role="editor")
    body = event(clock, 1, team=acme.team_id)
    problem = assert_problem(client.post(EVENTS, headers=bearer(viewer), json=body), 403)
    assert problem["missing_permission"] == "usage:write"
    assert client.post(EVENTS, headers=bearer(editor), json=body).status_code == 200
    # Usage of no team is the org's: an org-level permission.
    no_team = {**event(clock, 2), "org": acme.org_id}
    assert_problem(client.post(EVENTS, headers=bearer(editor), json=no_team), 403)


def test_a_batch_has_at_most_1000_events(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme")
    batch = {"org": acme.org_id, "events": [event(clock, i) for i in range(1001)]}
    assert_problem(post(client, acme, batch), 422, "validation_error")
    batch["events"] = batch["events"][:1000]
    assert post(client, acme, batch).json()["accepted"] == 1000


def test_text_the_database_cannot_hold_is_refused_and_writes_nothing(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    # Events are checked by pydantic's core alone; the NUL check is the body's (a batch's or a
    # lone event's), and the dimension count a core constraint.
    acme = factory.tenant("Acme")
    nul = event(clock, "nul", dimensions={"model": "gpt\u0000x"})
    many = event(clock, "many", dimensions={f"d{i}": "x" for i in range(21)})
    refused = [
        {"org": acme.org_id, "events": [event(clock, 1), nul]},
        {**nul, "org": acme.org_id},
        {"org": acme.org_id, "events": [many]},
    ]
    before = count_rows(database)
    for body in refused:
        assert_problem(post(client, acme, body), 422, "validation_error")
    assert count_rows(database) == before
    fine = event(clock, "fine", dimensions={f"d{i}": "x" for i in range(20)})
    assert post(client, acme, {"org": acme.org_id, "events": [fine]}).json()["accepted"] == 1


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_sqlite_event_times_are_written_as_the_column_type_writes_them(moment: datetime) -> None:
    dialect = sqlite.dialect()
    stamp = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert stamp is not None
    assert repository.sqlite_stamp(moment) == stamp(moment)


def _usage(client: TestClient, tenant: Tenant, query: str = "", team: bool = False) -> Any:
    path = (
        f"/api/v1/teams/{tenant.team_id}/usage" if team else f"/api/v1/orgs/{tenant.org_id}/usage"
    )
    resp = client.get(path + ("?" + query if query else ""), headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_summaries_match_the_events_exactly(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme")
    member_id, _ = factory.member(acme, team_role="editor")
    other = client.post(
        f"/api/v1/orgs/{acme.org_id}/teams", headers=acme.headers, json={"name": "Lab"}
    ).json()["id"]
    rng = random.Random(7)
    start = clock.now() - timedelta(days=3)
    sent: list[dict[str, Any]] = []
    for i in range(600):
        sent.append(
            event(
                clock,
                i,
                meter=rng.choice(["llm_input_tokens", "llm_cost_usd", "compute_hours"]),
                quantity=str(Decimal(rng.randint(1, 10**7)) / 10**6),
                timestamp=(start + timedelta(minutes=rng.randint(0, 3 * 24 * 60))).isoformat(),
                team=rng.choice([acme.team_id, other]),
                user=rng.choice([member_id, acme.owner_id]),
                dimensions={"provider": rng.choice(["openai", "anthropic"]), "model": "m1"},
            )
        )
    for chunk in range(0, 600, 250):
        resp = post(client, acme, {"events": sent[chunk : chunk + 250]})
        assert resp.json()["accepted"] == len(sent[chunk : chunk + 250])

    def expected(team: str | None = None, by: str | None = None) -> dict[tuple[str, str], Decimal]:
        out: dict[tuple[str, str], Decimal] = {}
        for e in sent:
            if team is None or e["team"] == team:
                group = {"member": e["user"], "provider": e["dimensions"]["provider"]}.get(by or "")
                key = (e["meter"], group or "")
                out[key] = out.get(key, Decimal(0)) + Decimal(e["quantity"])
        return out

    since = f"since={(start - timedelta(hours=1)).isoformat().replace('+00:00', 'Z')}"
    org = _usage(client, acme, since)
    assert {k: Decimal(v) for k, v in org["totals"].items()} == {
        m: q for (m, _), q in expected().items()
    }
    by_member = _usage(client, acme, since + "&group_by=member")
    assert {(r["meter"], r["group"]): Decimal(r["quantity"]) for r in by_member["rows"]} == (
        expected(by="member")
    )
    team = _usage(client, acme, since + "&group_by=provider&granularity=day", team=True)
    summed: dict[tuple[str, str], Decimal] = {}
    for row in team["rows"]:
        key = (row["meter"], row["group"])
        summed[key] = summed.get(key, Decimal(0)) + Decimal(row["quantity"])
    assert summed == expected(team=acme.team_id, by="provider")
    assert {r["bucket"][:10] for r in team["rows"]} <= {
        (start + timedelta(days=d)).date().isoformat() for d in range(5)
    }
    hourly = _usage(client, acme, since + "&granularity=hour")
    assert sum(r["events"] for r in hourly["rows"]) == 600


def test_counting_meters(client: TestClient, factory: Factory, clock: FrozenClock) -> None:
    acme = factory.tenant("Acme")
    batch = [
        event(clock, "g1", meter="generations", quantity="7"),
        event(clock, "g2", meter="generations", quantity="1"),
        event(clock, "s1", meter="ai_sessions", quantity="1", dimensions={"session_id": "a"}),
        event(clock, "s2", meter="ai_sessions", quantity="1", dimensions={"session_id": "a"}),
        event(clock, "s3", meter="ai_sessions", quantity="1", dimensions={"session_id": "b"}),
    ]
    post(client, acme, {"org": acme.org_id, "events": batch})
    later = event(clock, "s4", meter="ai_sessions", quantity="1", dimensions={"session_id": "b"})
    post(client, acme, {"org": acme.org_id, "events": [later]})
    totals = _usage(client, acme)["totals"]
    # Each generation counts once whatever its quantity; each session once per month.
    assert totals == {"generations": "2", "ai_sessions": "2"}


def test_storage_is_billed_in_gb_months(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme")
    t0 = clock.now() - timedelta(hours=730)
    changes = [
        event(clock, "w1", meter="storage_gb", quantity="10", timestamp=t0.isoformat()),
        # 365 hours later, 4 GB are deleted: 10 GB x 365 h + 6 GB x 365 h = 8 GB-months.
        event(
            clock,
            "d1",
            meter="storage_gb",
            quantity="-4",
            timestamp=(t0 + timedelta(hours=365)).isoformat(),
        ),
    ]
    # Sent in two batches, out of order: the integral depends on the timestamps only.
    post(client, acme, {"org": acme.org_id, "events": changes[1:]})
    post(client, acme, {"org": acme.org_id, "events": changes[:1]})

    def iso(at: datetime) -> str:
        return at.isoformat().replace("+00:00", "Z")

    month = f"since={iso(t0)}&until={iso(t0 + timedelta(hours=730))}"
    assert _usage(client, acme, month)["totals"] == {"storage_gb": "8"}
    # Per day, each bucket is rounded to a millionth of a GB-month.
    days = _usage(client, acme, month + "&granularity=day")["rows"]
    drift = abs(sum(Decimal(r["quantity"]) for r in days) - Decimal(8))
    assert len(days) == 31 and drift <= Decimal("0.000001") * len(days)
    # The quota counts the level held now.
    quotas = client.get(f"/api/v1/orgs/{acme.org_id}/quotas", headers=acme.headers).json()
    storage = next(q for q in quotas["quotas"] if q["key"] == "storage_gb")
    assert (storage["used"], storage["limit"], storage["period"]) == ("6", "10", "none")


def test_summary_ranges_are_checked(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant("Acme")
    url = f"/api/v1/orgs/{acme.org_id}/usage"
    bad = [
        "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
        "since=2024-01-01T00:00:00Z&until=2026-01-01T00:00:00Z",
        "since=2025-10-01T00:00:00Z&until=2026-01-01T00:00:00Z&granularity=hour",
    ]
    for query in bad:
        assert_problem(client.get(f"{url}?{query}", headers=acme.headers), 422, "invalid_range")
    assert_problem(client.get(f"{url}?group_by=color", headers=acme.headers), 422)


def test_a_naive_event_time_is_refused_by_the_insert(
    factory: Factory, clock: FrozenClock, database: Database
) -> None:
    # The batch insert writes times itself (not through UTCDateTime), and refuses what it does.
    acme = factory.tenant("Acme")
    naive = recording.UsageEvent("n-1", "llm_input_tokens", Decimal(1), datetime(2026, 1, 1))
    with database.session(write=True) as s, pytest.raises(ValueError, match="naive"):
        recording.record_events(s, acme.org_id, [naive])
    with database.session(write=False) as s:
        mine = select(func.count()).select_from(UsageEvent).where(UsageEvent.org_id == acme.org_id)
        assert s.scalar(mine) == 0
