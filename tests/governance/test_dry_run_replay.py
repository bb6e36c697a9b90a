"""A dry run replays calls as admission would have seen them: the member's requests in the
hour before each call, the call's tags, and a time-window exception read in the org's time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from conftest import Factory
from governance.test_governance import join
from tenantry.kit.clock import FrozenClock


def test_a_replay_counts_bursts_of_tagged_calls_outside_the_excepted_hours(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    dev_id, dev = join(client, factory, acme)
    base = (clock.now() - timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    # (minutes after 10:00, project): the hour before each call decides its burst.
    history = [(0, "search"), (10, "search"), (20, "ads"), (80, "search"),
               (300, "search"), (365, "search"), (370, "search")]  # fmt: skip
    calls: list[dict[str, Any]] = [
        {"id": f"c{i}", "team": acme.team_id, "provider": "openai", "model": "gpt-4o",
         "input_tokens": 10, "output_tokens": 10, "cost": "1",
         "timestamp": (base + timedelta(minutes=m)).isoformat(), "tags": {"project": p}}
        for i, (m, p) in enumerate(history)
    ]  # fmt: skip
    sent = client.post("/api/v1/llm-calls", headers=dev, json={"calls": calls})
    assert sent.status_code == 200 and sent.json()["accepted"] == len(calls), sent.text
    made = client.post(
        f"/api/v1/orgs/{acme.org_id}/policies",
        headers=acme.headers,
        json={
            "name": "Search bursts",
            "rules": {
                "conditions": [
                    {"field": "tags.project", "operator": "equals", "value": "search"},
                    {"field": "requests_last_hour", "operator": "greater_than", "value": 1},
                ],
                "actions": [{"type": "deny"}, {"type": "log"}],
            },
            "exceptions": {"time_windows": [{"start": "14:00", "end": "16:00"}]},
        },
    )
    assert made.status_code == 201, made.text
    ran = client.post(
        f"/api/v1/policies/{made.json()['id']}/dry-run", headers=acme.headers, json={"days": 7}
    )
    assert ran.status_code == 200, ran.text
    report = ran.json()
    # 10:10 (two in the hour) and 16:10 (16:05 and 16:10) match; 10:00, 11:20 and 16:05 are
    # alone in their hour, 10:20 is another project's, 15:00 falls in the excepted window.
    assert report["calls"] == len(history)
    both = {"count": 2, "cost": "2"}
    assert report["would"] == {"deny": both, "require_approval": {"count": 0, "cost": "0"},
                               "log": both}  # fmt: skip
    assert report["by_member"] == {dev_id: {"deny": both, "log": both}}
    assert report["by_day"] == {base.date().isoformat(): {"deny": both, "log": both}}
    # The window moved over 16:10, only 10:10 is left.
    moved = client.post(
        f"/api/v1/policies/{made.json()['id']}/dry-run", headers=acme.headers,
        json={"days": 7, "exceptions": {"time_windows": [{"start": "14:00", "end": "17:00"}]}},
    ).json()  # fmt: skip
    assert moved["would"]["deny"] == {"count": 1, "cost": "1"}
