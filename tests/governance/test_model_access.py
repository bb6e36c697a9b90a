"""Model access (seed 003's `ai_configuration`): allowed and denied models and providers of an
org, its teams and API keys, resolved layer by layer (deny beats allow, a child only narrows);
`requests_per_minute`, `tokens_per_day` and `concurrent_requests` held exactly in admission,
also by 50 admissions at once on two servers; bad input refused with nothing written; explain
names the deciding rule."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from conftest import Factory, Tenant, assert_problem, bearer, count_rows
from tenantry.app import create_app
from tenantry.audit.models import AuditEvent
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.metering.models import UsageCounter

ADMIT = "/api/v1/admission"
# Seed 003's `ai_config`, as written.
SEED = {
    "model_access": {
        "gpt-4": True,
        "claude-3": True,
        "custom_models": True,
        "fine_tuned_models": True,
    },
    "rate_limits": {
        "requests_per_minute": 1000,
        "tokens_per_day": 1000000,
        "concurrent_requests": 50,
    },
    "safety_settings": {
        "content_filter": True,
        "bias_detection": True,
        "hallucination_detection": True,
        "safety_threshold": 0.8,
    },
}


def put(client: TestClient, path: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
    resp = client.put(f"/api/v1{path}/model-access", headers=headers, json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def admit(
    client: TestClient,
    headers: dict[str, str],
    team: str,
    model: str | None,
    provider: str | None = "openai",
    **extra: Any,
) -> Any:
    body = {"team": team, "action": "llm.generate", "model": model, "provider": provider, **extra}
    resp = client.post(ADMIT, headers=headers, json={k: v for k, v in body.items() if v})
    assert resp.status_code == 200, resp.text
    return resp.json()


def decided(answer: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(decision, the first reason's code, the scope of the model-access rule it names)."""
    if answer["decision"] == "allow":
        return ("allow", None, None)
    reason = answer["reasons"][0]
    return ("deny", reason["code"], (reason.get("model_access") or {}).get("scope"))


def counter(database: Database, org_id: str, meter: str) -> tuple[Decimal, Decimal]:
    with database.session(write=False) as s:
        rows = s.execute(
            select(UsageCounter.used, UsageCounter.reserved).where(
                UsageCounter.org_id == org_id, UsageCounter.meter == meter
            )
        ).all()
    return (
        sum((r.used for r in rows), Decimal(0)),
        sum((r.reserved for r in rows), Decimal(0)),
    )


def child_team(client: TestClient, tenant: Tenant, parent: str) -> str:
    resp = client.post(
        f"/api/v1/orgs/{tenant.org_id}/teams",
        headers=tenant.headers,
        json={"name": "Research", "parent_team_id": parent},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def test_seed_configuration_is_accepted_as_written_and_audited(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    stored = put(client, f"/orgs/{acme.org_id}", acme.headers, SEED)
    assert stored["configured"] and stored["scope"] == "org"
    assert stored["model_access"] == SEED["model_access"]
    assert stored["rate_limits"] == SEED["rate_limits"]
    assert stored["safety_settings"] == SEED["safety_settings"]
    # As a tenant template holds it, too.
    wrapped = put(client, f"/teams/{acme.team_id}", acme.headers, {"ai_configuration": SEED})
    assert wrapped["scope"] == "team" and wrapped["model_access"] == SEED["model_access"]
    read = client.get(f"/api/v1/orgs/{acme.org_id}/model-access", headers=acme.headers).json()
    assert read == stored
    with database.session(write=False) as s:
        actions = s.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("model_access.%"))
        ).all()
    assert sorted(actions) == ["model_access.org_updated", "model_access.team_updated"]
    # The seed's names: `fine_tuned_models` are `ft:` models, `custom_models` the `custom`
    # provider's; anything else must be named.
    assert decided(admit(client, acme.headers, acme.team_id, "gpt-4")) == ("allow", None, None)
    assert decided(admit(client, acme.headers, acme.team_id, "ft:gpt-4o:acme:x")) == (
        "allow", None, None,
    )  # fmt: skip
    assert decided(admit(client, acme.headers, acme.team_id, "llama-3", "custom"))[0] == "allow"
    assert decided(admit(client, acme.headers, acme.team_id, "gpt-4o")) == (
        "deny", "model_not_allowed", "org",
    )  # fmt: skip


def test_allow_and_deny_resolve_across_org_team_and_key(
    client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    research = child_team(client, acme, acme.team_id)
    org, team = f"/orgs/{acme.org_id}", acme.team_id
    put(client, org, acme.headers, {
        "model_access": {"gpt-4*": True, "claude-3*": True, "gpt-4-32k": False},
        "providers": {"cohere": False},
    })  # fmt: skip
    # The team tries to widen (mistral) and narrows (no claude-3-opus); the child denies claude.
    put(client, f"/teams/{team}", acme.headers,
        {"model_access": {"mistral-*": True, "gpt-4*": True, "claude-3*": True,
                          "claude-3-opus": False}})  # fmt: skip
    put(client, f"/teams/{research}", acme.headers, {"providers": {"anthropic": False}})
    key = factory.api_key(acme)
    put(client, f"{org}/api-keys/{key['id']}", acme.headers,
        {"model_access": {"openai/gpt-4o*": True}})  # fmt: skip

    def by_owner(team_id: str, model: str, provider: str = "openai") -> Any:
        return decided(admit(client, acme.headers, team_id, model, provider))

    assert by_owner(team, "gpt-4o") == ("allow", None, None)
    assert by_owner(team, "GPT-4-32K") == ("deny", "model_denied", "org")  # deny beats allow
    assert by_owner(team, "mistral-large", "mistral") == ("deny", "model_not_allowed", "org")
    assert by_owner(team, "claude-3-opus", "anthropic") == ("deny", "model_denied", "team")
    assert by_owner(team, "claude-3-haiku", "anthropic") == ("allow", None, None)
    # The child team inherits its parent's rules and adds its own.
    assert by_owner(research, "claude-3-haiku", "anthropic") == (
        "deny", "provider_denied", "team",
    )  # fmt: skip
    assert by_owner(research, "claude-3-opus", "anthropic")[1] == "model_denied"
    assert by_owner(research, "gpt-4o") == ("allow", None, None)
    assert by_owner(team, "gpt-4", "cohere") == ("deny", "provider_denied", "org")
    # An admission naming no model or provider is not about model access.
    assert admit(client, acme.headers, team, None, None)["decision"] == "allow"

    # The key's layer is the narrowest: `provider/model` patterns match.
    key_headers = bearer(key["secret"])
    assert decided(admit(client, key_headers, team, "gpt-4o-mini")) == ("allow", None, None)
    denied = admit(client, key_headers, team, "gpt-4-turbo")
    assert decided(denied) == ("deny", "model_not_allowed", "api_key")
    assert denied["reasons"][0]["model_access"]["subject_id"] == key["id"]
    assert "API key" in denied["reasons"][0]["detail"]

    effective = client.get(
        f"/api/v1{org}/model-access/effective",
        headers=acme.headers,
        params={"team": research, "model": "claude-3-haiku", "provider": "anthropic"},
    )
    assert effective.status_code == 200, effective.text
    view = effective.json()
    assert [x["scope"] for x in view["layers"]] == ["org", "team", "team"]
    assert [x["subject_id"] for x in view["layers"]][1:] == [team, research]
    assert {"pattern": "gpt-4-32k", "scope": "org", "subject_id": acme.org_id} in view["models"][
        "deny"
    ]
    assert view["check"]["decision"] == "deny"
    assert view["check"]["reason"]["model_access"]["subject_id"] == research

    # Explain names the rule that decides (and would write nothing).
    explained = client.post(
        f"/api/v1/orgs/{acme.org_id}/governance/explain",
        headers=acme.headers,
        json={"team": team, "model": "gpt-4-32k", "provider": "openai"},
    ).json()
    assert explained["decision"] == "deny"
    rule = explained["model_access"]["reason"]["model_access"]
    assert (rule["scope"], rule["pattern"], rule["effect"]) == ("org", "gpt-4-32k", "deny")


def test_limits_hold_exactly_and_windows_move_with_the_clock(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    team = acme.team_id
    clock.advance(minutes=1)
    clock.set(clock.now().replace(second=0, microsecond=0))
    put(client, f"/orgs/{acme.org_id}", acme.headers, {"rate_limits": {"requests_per_minute": 3}})
    put(client, f"/teams/{team}", acme.headers, {"rate_limits": {"tokens_per_day": 1000}})
    tokens = {"llm_input_tokens": "300", "llm_output_tokens": "100"}

    first = [admit(client, acme.headers, team, "gpt-4o", estimate=tokens) for _ in range(3)]
    assert [a["decision"] for a in first] == ["allow", "allow", "deny"]
    refused = first[2]["reasons"][0]
    assert refused["code"] == "tokens_per_day_exceeded"
    assert refused["model_access"]["scope"] == "team" and refused["model_access"]["value"] == 1000
    # What was used replaces what was held: 100 tokens used leaves room for another 400.
    settled = client.post(
        f"{ADMIT}/{first[0]['reservation_id']}/settle",
        headers=acme.headers,
        json={"usage": {"llm_input_tokens": "60", "llm_output_tokens": "40"}},
    )
    assert settled.status_code == 200, settled.text
    assert counter(database, acme.org_id, f"model_access.tokens:{team}") == (100, 400)
    # The third request of the minute is allowed, the fourth is not (the refused one and its
    # holds were given back).
    assert admit(client, acme.headers, team, "gpt-4o", estimate=tokens)["decision"] == "allow"
    over = admit(client, acme.headers, team, "gpt-4o")
    assert decided(over) == ("deny", "requests_per_minute_exceeded", "org")
    assert over["reasons"][0]["retry_after"] == 60
    clock.advance(seconds=59)
    assert admit(client, acme.headers, team, "gpt-4o")["decision"] == "deny"
    clock.advance(seconds=1)  # a new minute; the day holds 100 used and 800 held
    one_more = {"llm_input_tokens": "101"}
    assert decided(admit(client, acme.headers, team, "gpt-4o", estimate=one_more))[1] == (
        "tokens_per_day_exceeded"
    )
    exact = {"llm_input_tokens": "100"}
    assert admit(client, acme.headers, team, "gpt-4o", estimate=exact)["decision"] == "allow"
    key = bearer(factory.api_key(acme)["secret"])  # outlives the owner's access token
    clock.advance(days=1)  # a new day, and a new minute
    assert admit(client, key, team, "gpt-4o", estimate=tokens)["decision"] == "allow"


def test_concurrent_requests_are_those_held_and_not_yet_settled(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    key = factory.api_key(acme)
    headers, team = bearer(key["secret"]), acme.team_id
    put(client, f"/orgs/{acme.org_id}/api-keys/{key['id']}", acme.headers,
        {"rate_limits": {"concurrent_requests": 2}})  # fmt: skip
    a = admit(client, headers, team, "gpt-4o", ttl_seconds=60)
    b = admit(client, headers, team, "gpt-4o", ttl_seconds=600)
    c = admit(client, headers, team, "gpt-4o")
    assert [x["decision"] for x in (a, b, c)] == ["allow", "allow", "deny"]
    assert decided(c) == ("deny", "concurrent_requests_exceeded", "api_key")
    # The owner's requests are not the key's.
    assert admit(client, acme.headers, team, "gpt-4o")["decision"] == "allow"
    done = client.post(f"{ADMIT}/{b['reservation_id']}/settle", headers=headers,
                       json={"usage": {"llm_input_tokens": "5"}})  # fmt: skip
    assert done.status_code == 200, done.text
    assert admit(client, headers, team, "gpt-4o", ttl_seconds=600)["decision"] == "allow"
    assert admit(client, headers, team, "gpt-4o")["decision"] == "deny"
    # An admission never settled stops being open when its reservation expires.
    clock.advance(seconds=61)
    assert admit(client, headers, team, "gpt-4o")["decision"] == "allow"
    assert counter(database, acme.org_id, f"model_access.open:{key['id']}") == (0, 2)


def test_bad_input_writes_nothing_and_others_things_are_not_found(
    client: TestClient, factory: Factory, database: Database
) -> None:
    acme = factory.tenant("Acme")
    other = factory.tenant("Other")
    key = factory.api_key(other)
    before = count_rows(database)
    path = f"/api/v1/orgs/{acme.org_id}/model-access"
    for body in (
        {"model_access": {"gpt 4; drop": True}},
        {"model_access": {"gpt-4": "yes please"}},
        {"rate_limits": {"requests_per_minute": -1}},
        {"rate_limits": {"tokens_per_minute": 5}},
        {"models": {"gpt-4": True}},
        {"safety_settings": "on"},
    ):
        assert_problem(client.put(path, headers=acme.headers, json=body), 422)
    assert_problem(
        client.put(f"/api/v1/orgs/{acme.org_id}/api-keys/{key['id']}/model-access",
                   headers=acme.headers, json=SEED), 404,
    )  # fmt: skip
    assert_problem(
        client.put(f"/api/v1/teams/{other.team_id}/model-access", headers=acme.headers,
                   json=SEED), 404,
    )  # fmt: skip
    assert_problem(
        client.get(f"/api/v1/orgs/{acme.org_id}/model-access/effective",
                   params={"team": other.team_id}, headers=acme.headers), 404,
    )  # fmt: skip
    assert count_rows(database) == before
    _, viewer = factory.member(acme, team_role="viewer")
    assert_problem(client.put(path, headers=bearer(viewer), json=SEED), 403)


# ---- 50 admissions at once ----


def admit_at_once(
    apps: list[FastAPI], headers: dict[str, str], body: dict[str, Any], n: int
) -> list[Any]:
    """`n` admissions released together, each from a thread with its own client, spread over
    `apps` (each with an engine of its own, as separate processes would have)."""
    barrier = threading.Barrier(n)

    def one(i: int) -> Any:
        client = TestClient(apps[i % len(apps)], raise_server_exceptions=False)
        barrier.wait()
        resp = client.post(ADMIT, headers=headers, json=body)
        return resp.json() if resp.status_code == 200 else resp.text

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


@pytest.mark.parametrize(
    ("limit", "scope", "meter"),
    [
        ({"requests_per_minute": 10}, "org", "model_access.requests:{org}"),
        ({"tokens_per_day": 1000}, "team", "model_access.tokens:{team}"),
        ({"concurrent_requests": 5}, "api_key", "model_access.open:{key}"),
    ],
)
def test_fifty_parallel_admissions_never_overshoot(
    app: FastAPI,
    client: TestClient,
    factory: Factory,
    database: Database,
    database_url: str,
    clock: FrozenClock,
    settings: Settings,
    limit: dict[str, int],
    scope: str,
    meter: str,
) -> None:
    acme = factory.tenant("Acme", plan="enterprise")
    key = factory.api_key(acme)
    where = {"org": f"/orgs/{acme.org_id}", "team": f"/teams/{acme.team_id}",
             "api_key": f"/orgs/{acme.org_id}/api-keys/{key['id']}"}[scope]  # fmt: skip
    put(client, where, acme.headers, {"model_access": {"gpt-4*": True}, "rate_limits": limit})
    clock.advance(minutes=1)
    clock.set(clock.now().replace(second=0, microsecond=0))
    body = {"team": acme.team_id, "action": "llm.generate", "provider": "openai",
            "model": "gpt-4o", "estimate": {"llm_input_tokens": "100"}}  # fmt: skip
    other_db = Database(database_url)
    other = create_app(settings, clock=clock, database=other_db)
    try:
        answers = admit_at_once([app, other], bearer(key["secret"]), body, 50)
    finally:
        other_db.dispose()
    assert all(isinstance(a, dict) for a in answers), answers
    allowed = [a for a in answers if a["decision"] == "allow"]
    assert len(allowed) == 10 if scope != "api_key" else len(allowed) == 5
    name = next(iter(limit))
    refused = {a["reasons"][0]["code"] for a in answers if a["decision"] == "deny"}
    assert refused == {f"{name}_exceeded"}
    subject = meter.format(org=acme.org_id, team=acme.team_id, key=key["id"])
    held = {"requests_per_minute": 10, "tokens_per_day": 1000, "concurrent_requests": 5}[name]
    assert counter(database, acme.org_id, subject) == (0, held)
