"""OIDC sign-in against a real provider process (tests/support/oidc_provider.py): discovery,
code flow with PKCE, state and nonce, the ID token checked; and each way an answer is refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import Factory, Tenant, assert_problem, bearer, count_rows, database_contains
from support.oidc_provider import Misbehaviour, OidcProvider
from support.sso import (
    back_at,
    create_oidc,
    enable,
    exchange,
    oidc_sign_in,
    query_of,
    run_test,
    start_sign_in,
    through_provider,
)
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.sso.models import SsoAttempt
from tenantry.worker import run_once


def test_a_person_signs_in_through_the_provider(
    client: TestClient, factory: Factory, provider: OidcProvider
) -> None:
    tenant = factory.tenant()
    conn = create_oidc(client, tenant, provider)
    assert conn["enabled"] is False and conn["tested"] is False
    provider.person("okta|ada", "ada@example.com", name="Ada Lovelace", groups=["ml"])
    result = run_test(client, tenant, conn["id"])
    assert result["tested"] is True, result
    enable(client, tenant, conn["id"])

    resp = oidc_sign_in(client, conn["id"])
    assert resp.status_code == 200, resp.text
    tokens = resp.json()
    assert tokens["user"]["email"] == "ada@example.com"
    me = client.get("/api/v1/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200, me.text
    assert [o["org_id"] for o in me.json()["organizations"]] == [tenant.org_id]
    # PKCE S256, state and nonce went to the provider.
    sent = provider.authorize_requests[-1]
    assert sent["code_challenge_method"] == "S256" and sent["nonce"] and sent["state"]
    assert provider.token_requests[-1]["code_verifier"]


def enabled_connection(
    client: TestClient, factory: Factory, provider: OidcProvider, **extra: object
) -> tuple[Tenant, dict[str, Any]]:
    tenant = factory.tenant()
    conn = create_oidc(client, tenant, provider, **extra)
    provider.person("admin-test", "it-admin@example.com")
    assert run_test(client, tenant, conn["id"])["tested"] is True
    enable(client, tenant, conn["id"])
    return tenant, conn


def refused_sign_in(client: TestClient, connection_id: str) -> str:
    """A sign-in the app refuses: the browser is sent back with the refusal's code."""
    started = start_sign_in(client, connection_id=connection_id)
    resp = through_provider(client, started["redirect_url"])
    return query_of(resp)["sso_error"]


@pytest.mark.parametrize(
    ("wrong", "code"),
    [
        (Misbehaviour(wrong_key=True), "sso_invalid_id_token"),
        (Misbehaviour(audience="someone-else"), "sso_invalid_id_token"),
        (Misbehaviour(expired=True), "sso_invalid_id_token"),
        (Misbehaviour(nonce="not-the-one-sent"), "sso_invalid_id_token"),
        (Misbehaviour(issuer="https://evil.example"), "sso_invalid_id_token"),
    ],
    ids=["unpublished key", "wrong audience", "expired", "wrong nonce", "wrong issuer"],
)
def test_a_bad_id_token_is_refused_and_nobody_signs_in(
    client: TestClient,
    factory: Factory,
    provider: OidcProvider,
    database: Database,
    wrong: Misbehaviour,
    code: str,
) -> None:
    tenant, conn = enabled_connection(client, factory, provider)
    provider.person("okta|eve", "eve@example.com")
    provider.misbehave = wrong
    before = count_rows(database)
    assert refused_sign_in(client, conn["id"]) == code
    after = count_rows(database)
    # Nothing but the attempt's own row (kept, consumed) and the refusal's audit event.
    assert after["users"] == before["users"]
    assert after["sso_identities"] == before["sso_identities"]
    assert after["login_sessions"] == before["login_sessions"]
    events = audit_actions(client, tenant)
    assert ("sso.oidc_response", "failure") in events


def audit_actions(client: TestClient, tenant: Tenant) -> list[tuple[str, str]]:
    resp = client.get(
        f"/api/v1/orgs/{tenant.org_id}/audit-events?limit=200", headers=tenant.headers
    )
    assert resp.status_code == 200, resp.text
    return [(e["action"], e["result"]) for e in resp.json()["items"]]


def test_a_replayed_answer_and_an_unknown_state_are_refused(
    client: TestClient, factory: Factory, provider: OidcProvider
) -> None:
    _, conn = enabled_connection(client, factory, provider)
    provider.person("okta|bob", "bob@example.com")
    started = start_sign_in(client, connection_id=conn["id"])
    at_provider = httpx.get(started["redirect_url"], follow_redirects=False)
    location = at_provider.headers["location"]
    first = back_at(client, location)
    assert "sso_code" in query_of(first)
    again = back_at(client, location)
    assert_problem(again, 401, "sso_replayed")
    forged = location.split("state=")[0] + "state=made-up"
    assert_problem(back_at(client, forged), 401, "sso_unknown_state")


def test_the_code_goes_with_its_pkce_verifier(
    client: TestClient, factory: Factory, provider: OidcProvider, database: Database
) -> None:
    _, conn = enabled_connection(client, factory, provider)
    provider.person("okta|mallory", "mallory@example.com")
    started = start_sign_in(client, connection_id=conn["id"])
    # The stored verifier no longer matches the challenge the provider was sent.
    with database.session(write=True) as session:
        attempt = session.get(SsoAttempt, started["attempt_id"])
        assert attempt is not None
        attempt.code_verifier = "x" * 64
        session.commit()
    resp = through_provider(client, started["redirect_url"])
    assert query_of(resp)["sso_error"] == "sso_code_refused"
    assert provider.token_requests[-1]["code_verifier"] == "x" * 64


def test_the_one_time_code_needs_its_verifier_and_works_once(
    client: TestClient, factory: Factory, provider: OidcProvider, clock: FrozenClock
) -> None:
    _, conn = enabled_connection(client, factory, provider)
    provider.person("okta|cy", "cy@example.com")
    started = start_sign_in(client, connection_id=conn["id"])
    callback = through_provider(client, started["redirect_url"])
    assert_problem(exchange(client, callback, "tsv_wrong"), 401, "sso_invalid_code")
    assert exchange(client, callback, started["verifier"]).status_code == 200
    assert_problem(exchange(client, callback, started["verifier"]), 401, "sso_invalid_code")
    # A code not exchanged within two minutes is dead.
    started = start_sign_in(client, connection_id=conn["id"])
    callback = through_provider(client, started["redirect_url"])
    clock.advance(seconds=121)
    assert_problem(exchange(client, callback, started["verifier"]), 401, "sso_invalid_code")


def test_userinfo_fills_in_what_the_id_token_left_out(
    client: TestClient, factory: Factory, provider: OidcProvider
) -> None:
    _, conn = enabled_connection(client, factory, provider)
    provider.person("okta|dee", "dee@example.com")
    provider.misbehave = Misbehaviour(email_only_in_userinfo=True)
    resp = oidc_sign_in(client, conn["id"])
    assert resp.status_code == 200, resp.text
    assert resp.json()["user"]["email"] == "dee@example.com"


def test_the_client_secret_is_encrypted_at_rest(
    client: TestClient, factory: Factory, provider: OidcProvider, database: Database
) -> None:
    tenant = factory.tenant()
    conn = create_oidc(client, tenant, provider)
    assert conn["has_client_secret"] is True
    assert "client_secret" not in conn["settings"]
    assert database_contains(database, provider.client_secret) == []
    # And it is the secret the provider gets.
    provider.person("okta|x", "x@example.com")
    assert run_test(client, tenant, conn["id"])["tested"] is True


def test_people_are_linked_by_subject_not_by_email(
    client: TestClient, factory: Factory, provider: OidcProvider
) -> None:
    _, conn = enabled_connection(client, factory, provider)
    provider.person("okta|fay", "fay@example.com")
    first = oidc_sign_in(client, conn["id"]).json()
    # The provider changes her email: same subject, same account.
    provider.person("okta|fay", "fay.new@example.com")
    again = oidc_sign_in(client, conn["id"]).json()
    assert again["user"]["id"] == first["user"]["id"]
    # Another subject claiming the first email is someone else: refused, not merged.
    provider.person("okta|impostor", "fay@example.com")
    assert refused_sign_in(client, conn["id"]) == "sso_link_required"


def test_an_existing_password_account_is_linked_only_with_proof(
    client: TestClient, factory: Factory, provider: OidcProvider
) -> None:
    _, conn = enabled_connection(client, factory, provider)
    user_id, email, token = factory.user("gus@example.com")
    provider.person("okta|gus", email)
    assert refused_sign_in(client, conn["id"]) == "sso_link_required"
    # Signed in with his password, he links his account to the provider himself.
    started = client.post(
        "/api/v1/me/sso/link", headers=bearer(token), json={"connection_id": conn["id"]}
    )
    assert started.status_code == 200, started.text
    linked = through_provider(client, started.json()["redirect_url"])
    assert linked.status_code == 200, linked.text
    assert linked.json()["linked"] is True
    resp = oidc_sign_in(client, conn["id"])
    assert resp.status_code == 200, resp.text
    assert resp.json()["user"]["id"] == user_id


def test_without_jit_provisioning_nobody_new_gets_in(
    client: TestClient, factory: Factory, provider: OidcProvider
) -> None:
    _, conn = enabled_connection(client, factory, provider, jit_provisioning=False)
    provider.person("okta|new", "new@example.com")
    assert refused_sign_in(client, conn["id"]) == "sso_no_account"


def test_a_disabled_connection_starts_no_sign_in(
    client: TestClient, factory: Factory, provider: OidcProvider
) -> None:
    tenant = factory.tenant()
    conn = create_oidc(client, tenant, provider)
    resp = client.post("/api/v1/auth/sso/start", json={"connection_id": conn["id"]})
    assert_problem(resp, 404, "not_found")


def test_the_worker_forgets_ended_attempts(
    client: TestClient,
    factory: Factory,
    provider: OidcProvider,
    clock: FrozenClock,
    database: Database,
    settings: Settings,
) -> None:
    _, conn = enabled_connection(client, factory, provider)
    start_sign_in(client, connection_id=conn["id"])
    assert count_rows(database)["sso_attempts"] >= 2  # the admin's test and this one
    clock.advance(minutes=30)
    assert run_once(settings, clock=clock, database=database).sso_attempts_forgotten == 0
    clock.advance(minutes=45)  # ten minutes to finish, kept an hour more
    report = run_once(settings, clock=clock, database=database)
    assert report.sso_attempts_forgotten >= 2
    assert count_rows(database)["sso_attempts"] == 0


def test_a_persons_export_holds_their_linked_identities(
    client: TestClient, factory: Factory, provider: OidcProvider
) -> None:
    tenant, conn = enabled_connection(client, factory, provider)
    provider.person("okta|eda", "eda@example.com")
    token = oidc_sign_in(client, conn["id"]).json()["access_token"]
    export = client.get("/api/v1/users/me/export", headers=bearer(token))
    assert export.status_code == 200, export.text
    linked = export.json()["sso_identities"]
    assert [(i["issuer"], i["subject"], i["org_id"]) for i in linked] == [
        (provider.issuer, "okta|eda", tenant.org_id)
    ]
