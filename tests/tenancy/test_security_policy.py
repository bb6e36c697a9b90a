"""An org's security policy: who may set it, what it refuses (each refusal naming the org and
the rule), the strictest of a person's orgs for account-wide rules, MFA required with grace
days, session timeouts, the IP allowlist, and an owner's reset of a member's second factor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import PASSWORD, Factory, Tenant, assert_problem, bearer, count_rows
from support.mfa import code_at, enrol, secret_of
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database


def put_policy(client: TestClient, tenant: Tenant, body: dict[str, Any]) -> Any:
    return client.put(
        f"/api/v1/orgs/{tenant.org_id}/security-policy", headers=tenant.headers, json=body
    )


def set_policy(client: TestClient, tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    resp = put_policy(client, tenant, body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def member_login(client: TestClient, factory: Factory, tenant: Tenant) -> tuple[str, str, str]:
    """A member of `tenant`: (user id, email, access token)."""
    user_id, token = factory.member(tenant)
    me = client.get("/api/v1/me", headers=bearer(token)).json()
    return user_id, me["user"]["email"], token


def login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def change_password(client: TestClient, token: str, new: str, current: str = PASSWORD) -> Any:
    return client.post(
        "/api/v1/me/password",
        headers=bearer(token),
        json={"current_password": current, "new_password": new},
    )


def test_admins_set_the_policy_members_read_it(
    client: TestClient, factory: Factory, database: Database
) -> None:
    tenant = factory.tenant()
    _, member_token = factory.member(tenant)
    admin_id, admin_token = factory.member(tenant, org_role="admin")
    url = f"/api/v1/orgs/{tenant.org_id}/security-policy"
    default = client.get(url, headers=bearer(member_token)).json()
    assert default["password"]["min_length"] is None and default["mfa"]["required"] is False
    assert default["ip_allowlist"] == [] and default["sso_enforced"] is False

    refused = client.put(url, headers=bearer(member_token), json={"mfa": {"required": True}})
    assert_problem(refused, 403)
    before = count_rows(database)
    for bad in (
        {"ip_allowlist": ["10.0.0.300/8"]},
        {"password": {"min_length": 4}},
        {"password": {"min_complexity": 101}},
        {"sessions": {"idle_timeout_minutes": 1}},
        {"mfa": {"required": True, "grace_days": -1}},
        {"lockout": 3},
    ):
        assert_problem(client.put(url, headers=bearer(admin_token), json=bad), 422)
    assert count_rows(database) == before

    policy = client.put(
        url,
        headers=bearer(admin_token),
        json={"password": {"min_length": 16}, "mfa": {"required": True, "grace_days": 3}},
    )
    assert policy.status_code == 200, policy.text
    body = policy.json()
    assert body["password"]["min_length"] == 16
    assert body["mfa"]["required_since"] is not None and body["mfa"]["enforced_from"] is not None
    events = client.get(
        f"/api/v1/orgs/{tenant.org_id}/audit-events",
        headers=tenant.headers,
        params={"action": "organization.security_policy_updated"},
    ).json()["items"]
    changes = [e for e in events if e["result"] == "success"]
    assert [e["actor_id"] for e in changes] == [admin_id]
    assert set(changes[0]["summary"]["changed"]) == {"password", "mfa"}


def test_password_rules_name_the_org_and_the_rule(client: TestClient, factory: Factory) -> None:
    tenant = factory.tenant()
    _, _, token = member_login(client, factory, tenant)
    set_policy(
        client,
        tenant,
        {
            "password": {
                "min_length": 16,
                "require_uppercase": True,
                "require_digit": True,
                "require_symbol": True,
                "min_complexity": 70,
                "history": 2,
            }
        },
    )
    cases = [
        ("short but fine!", "min_length"),
        ("all lower case words 1!", "require_uppercase"),
        ("No Digits In Here At All!", "require_digit"),
        ("NoSymbolsInHereAtAll7x", "require_symbol"),
        ("Password1234567!", "min_complexity"),
    ]
    for password, rule in cases:
        body = assert_problem(change_password(client, token, password), 422, "weak_password")
        assert (body["rule"], body["org"], body["policy"]) == (
            rule,
            tenant.org_slug,
            "security_policy",
        ), body
        assert tenant.org_slug in body["detail"]
    strong = "Correct Horse Battery Staple 42!"
    assert change_password(client, token, strong).status_code == 204
    # History of two: the current password and the one before are refused, not older ones.
    refused = assert_problem(change_password(client, token, strong, strong), 422)
    assert refused["rule"] == "history"
    other = "Another Quite Long Phrase 99?"
    assert change_password(client, token, other, strong).status_code == 204
    assert assert_problem(change_password(client, token, strong, other), 422)["rule"] == "history"
    third = "Yet Another Long Phrase 77%"
    assert change_password(client, token, third, other).status_code == 204
    assert change_password(client, token, strong, third).status_code == 204


def test_the_strictest_of_a_persons_orgs_applies(client: TestClient, factory: Factory) -> None:
    first, second = factory.tenant(), factory.tenant()
    _, _, token = member_login(client, factory, first)
    invited = client.post(
        f"/api/v1/orgs/{second.org_id}/invitations",
        headers=second.headers,
        json={"email": client.get("/api/v1/me", headers=bearer(token)).json()["user"]["email"]},
    )
    accepted = client.post(
        f"/api/v1/invitations/{invited.json()['token']}/accept", headers=bearer(token)
    )
    assert accepted.status_code == 200, accepted.text
    set_policy(client, first, {"password": {"min_length": 14}})
    set_policy(client, second, {"password": {"min_length": 20}})
    body = assert_problem(change_password(client, token, "fifteen chars ok"), 422)
    assert (body["org"], body["rule"]) == (second.org_slug, "min_length")
    assert change_password(client, token, "twenty characters and more").status_code == 204


def test_an_old_password_is_refused_at_sign_in(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    tenant = factory.tenant()
    _, email, _ = member_login(client, factory, tenant)
    set_policy(client, tenant, {"password": {"max_age_days": 30}})
    clock.advance(days=29)
    assert login(client, email).status_code == 200
    clock.advance(days=2)
    body = assert_problem(login(client, email), 403, "password_expired")
    assert (body["org"], body["rule"]) == (tenant.org_slug, "max_age_days")
    # A wrong password still says only that.
    assert_problem(login(client, email, "not the password"), 401, "invalid_credentials")


def test_the_lockout_rule_of_the_policy(client: TestClient, factory: Factory) -> None:
    tenant = factory.tenant()
    _, email, _ = member_login(client, factory, tenant)
    set_policy(client, tenant, {"password": {"lockout_attempts": 2, "lockout_minutes": 30}})
    for _ in range(2):
        assert_problem(login(client, email, "wrong password here"), 401)
    locked = assert_problem(login(client, email), 429, "login_throttled")
    assert locked["retry_after"] > 29 * 60


def test_mfa_required_after_grace_days_enrols_at_sign_in(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    tenant = factory.tenant()
    _, email, _ = member_login(client, factory, tenant)
    set_policy(client, tenant, {"mfa": {"required": True, "grace_days": 2}})
    assert "access_token" in login(client, email).json()  # within the grace days
    clock.advance(days=2, seconds=1)
    held = login(client, email).json()
    assert held["mfa_required"] and held["enrolment_required"]
    assert held["required_by"] == tenant.org_slug and "access_token" not in held
    # The token opens nothing but the enrolment.
    assert_problem(client.get("/api/v1/me", headers=bearer(held["mfa_token"])), 401)
    wrong_step = client.post(
        "/api/v1/auth/mfa", json={"mfa_token": held["mfa_token"], "code": "123456"}
    )
    assert_problem(wrong_step, 409, "mfa_enrolment_required")
    enrolment = client.post("/api/v1/auth/mfa/enrolment", json={"mfa_token": held["mfa_token"]})
    assert enrolment.status_code == 200, enrolment.text
    secret = secret_of(enrolment.json()["provisioning_uri"])
    done = client.post(
        "/api/v1/auth/mfa",
        json={"mfa_token": held["mfa_token"], "code": code_at(secret, clock.now())},
    )
    assert done.status_code == 200, done.text
    assert len(done.json()["backup_codes"]) == 10
    status = client.get("/api/v1/me/mfa", headers=bearer(done.json()["access_token"])).json()
    assert status["enabled"] is True
    # From now on the sign-in asks for a code, not an enrolment.
    assert login(client, email).json()["enrolment_required"] is False


def test_session_timeouts(client: TestClient, factory: Factory, clock: FrozenClock) -> None:
    tenant = factory.tenant()
    _, email, _ = member_login(client, factory, tenant)
    set_policy(
        client,
        tenant,
        {"sessions": {"idle_timeout_minutes": 10, "absolute_timeout_minutes": 30}},
    )
    tokens = login(client, email).json()
    refresh = tokens["refresh_token"]
    for _ in range(2):  # used every 9 minutes: never idle too long
        clock.advance(minutes=9)
        resp = client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        assert resp.status_code == 200, resp.text
        refresh = resp.json()["refresh_token"]
    clock.advance(minutes=11)
    idle = client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert_problem(idle, 401, "session_ended")

    fresh = login(client, email).json()
    refresh = fresh["refresh_token"]
    for _ in range(3):
        clock.advance(minutes=9)
        resp = client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        assert resp.status_code == 200, resp.text
        refresh = resp.json()["refresh_token"]
    clock.advance(minutes=4)  # 31 minutes after the sign-in, never idle
    ended = client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert_problem(ended, 401, "session_ended")


@pytest.fixture
def office_client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False, client=("203.0.113.9", 40000)) as c:
        yield c


@pytest.fixture
def elsewhere_client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False, client=("198.51.100.7", 40000)) as c:
        yield c


def test_the_ip_allowlist_holds_for_the_orgs_api(
    office_client: TestClient, elsewhere_client: TestClient, database: Database
) -> None:
    factory = Factory(office_client)
    tenant = factory.tenant()
    key = factory.api_key(tenant)
    url = f"/api/v1/orgs/{tenant.org_id}/security-policy"
    before = count_rows(database)
    excluded = office_client.put(
        url, headers=tenant.headers, json={"ip_allowlist": ["198.51.100.0/24"]}
    )
    body = assert_problem(excluded, 422, "ip_allowlist_excludes_you")
    assert body["ip"] == "203.0.113.9"
    assert count_rows(database) == before
    ok = office_client.put(
        url, headers=tenant.headers, json={"ip_allowlist": ["203.0.113.0/24", "2001:db8::1"]}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["ip_allowlist"] == ["203.0.113.0/24", "2001:db8::1/128"]
    assert office_client.get(f"/api/v1/orgs/{tenant.org_id}", headers=tenant.headers).is_success
    for credential in (tenant.headers, bearer(key["secret"])):
        refused = elsewhere_client.get(f"/api/v1/orgs/{tenant.org_id}", headers=credential)
        body = assert_problem(refused, 403, "ip_not_allowed")
        assert (body["policy"], body["rule"]) == ("security_policy", "ip_allowlist")
        team = elsewhere_client.get(f"/api/v1/teams/{tenant.team_id}", headers=credential)
        assert_problem(team, 403, "ip_not_allowed")
    # The person's own account is not the org's.
    assert elsewhere_client.get("/api/v1/me", headers=tenant.headers).status_code == 200


def test_an_owner_resets_a_members_mfa(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    tenant = factory.tenant()
    member_id, email, token = member_login(client, factory, tenant)
    _, admin_token = factory.member(tenant, org_role="admin")
    enrol(client, bearer(token), clock.now())
    assert login(client, email).json()["mfa_required"] is True
    url = f"/api/v1/orgs/{tenant.org_id}/members/{member_id}/mfa"
    assert_problem(client.delete(url, headers=bearer(admin_token)), 403)
    outsider = factory.tenant()
    assert_problem(client.delete(url, headers=outsider.headers), 404)
    own = f"/api/v1/orgs/{tenant.org_id}/members/{tenant.owner_id}/mfa"
    assert_problem(client.delete(own, headers=tenant.headers), 422, "own_mfa_reset")
    assert client.delete(url, headers=tenant.headers).status_code == 204
    assert "access_token" in login(client, email).json()
    events = client.get(
        f"/api/v1/orgs/{tenant.org_id}/audit-events",
        headers=tenant.headers,
        params={"action": "organization.member.mfa_reset"},
    ).json()["items"]
    done = [(e["target_id"], e["summary"]) for e in events if e["result"] == "success"]
    assert done == [(member_id, {"had_mfa": True})]
