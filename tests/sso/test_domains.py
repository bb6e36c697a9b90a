"""Verified domains against a real DNS server on loopback, home-realm discovery, and an org
requiring SSO for its verified domains: password sign-in and password sessions refused (with
the policy named), existing password sessions ended, break-glass owners exempt."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from conftest import PASSWORD, Factory, Tenant, assert_problem, bearer
from support.dns_server import LocalDns
from support.oidc_provider import OidcProvider
from support.sso import create_oidc, enable, oidc_sign_in, run_test


def add_domain(client: TestClient, tenant: Tenant, name: str) -> dict[str, Any]:
    resp = client.post(
        f"/api/v1/orgs/{tenant.org_id}/domains", headers=tenant.headers, json={"domain": name}
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def verify(client: TestClient, tenant: Tenant, domain_id: str) -> Any:
    return client.post(
        f"/api/v1/orgs/{tenant.org_id}/domains/{domain_id}/verify", headers=tenant.headers
    )


def verified(client: TestClient, tenant: Tenant, dns: LocalDns, name: str) -> dict[str, Any]:
    claim = add_domain(client, tenant, name)
    dns.publish_txt(claim["record_name"], claim["record_value"])
    resp = verify(client, tenant, claim["id"])
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_a_domain_is_verified_by_its_txt_record(
    client: TestClient, factory: Factory, dns: LocalDns
) -> None:
    tenant = factory.tenant()
    claim = add_domain(client, tenant, "Acme-Corp.example.com.")
    assert claim["domain"] == "acme-corp.example.com"
    assert claim["status"] == "pending"
    assert claim["record_name"] == "_tenantry-challenge.acme-corp.example.com"
    # No record yet; then a record with another value: not proven.
    problem = assert_problem(verify(client, tenant, claim["id"]), 422, "domain_not_verified")
    assert problem["record_value"] == claim["record_value"]
    dns.publish_txt(claim["record_name"], "tenantry-domain-verification=someone-elses")
    assert_problem(verify(client, tenant, claim["id"]), 422, "domain_not_verified")
    dns.publish_txt(claim["record_name"], claim["record_value"])
    resp = verify(client, tenant, claim["id"])
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "verified"
    assert claim["record_name"] in dns.questions
    # The failed checks are on record too.
    events = client.get(
        f"/api/v1/orgs/{tenant.org_id}/audit-events?limit=50", headers=tenant.headers
    ).json()["items"]
    results = [e["result"] for e in events if e["action"] == "domain.verified"]
    assert sorted(results) == ["failure", "failure", "success"]


def test_one_org_at_most_verifies_a_domain(
    client: TestClient, factory: Factory, dns: LocalDns
) -> None:
    first, second = factory.tenant(), factory.tenant()
    verified(client, first, dns, "shared.example.com")
    claim = add_domain(client, second, "shared.example.com")
    dns.publish_txt(claim["record_name"], claim["record_value"])
    assert_problem(verify(client, second, claim["id"]), 409, "domain_taken")


def test_bad_domains_are_refused(client: TestClient, factory: Factory) -> None:
    tenant = factory.tenant()
    # The last: valid alone, but its challenge record's name would be over DNS's 253.
    too_long = ".".join(["a" * 57] * 4) + ".example.com"  # 244 characters
    for name in ("localhost", "not a domain", "-bad.example.com", "x" * 64 + ".com", too_long):
        resp = client.post(
            f"/api/v1/orgs/{tenant.org_id}/domains", headers=tenant.headers, json={"domain": name}
        )
        assert_problem(resp, 422, "invalid_domain")


def sso_org(
    client: TestClient, factory: Factory, provider: OidcProvider, dns: LocalDns
) -> tuple[Tenant, str]:
    tenant = factory.tenant()
    conn = create_oidc(client, tenant, provider)
    provider.person("admin-test", "it-admin@corp.example.com")
    assert run_test(client, tenant, conn["id"])["tested"] is True
    enable(client, tenant, conn["id"])
    verified(client, tenant, dns, "corp.example.com")
    return tenant, str(conn["id"])


def test_discovery_sends_people_of_a_verified_domain_to_their_sso(
    client: TestClient, factory: Factory, provider: OidcProvider, dns: LocalDns
) -> None:
    tenant, conn_id = sso_org(client, factory, provider, dns)
    found = client.post("/api/v1/auth/sso/discover", json={"email": "Someone@Corp.example.com"})
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["sso"] is True and body["enforced"] is False
    assert body["org"]["slug"] == tenant.org_slug
    assert [c["id"] for c in body["connections"]] == [conn_id]
    elsewhere = client.post("/api/v1/auth/sso/discover", json={"email": "a@other.example.com"})
    assert elsewhere.json() == {
        "domain": "other.example.com", "sso": False, "enforced": False, "org": None,
        "connections": [],
    }  # fmt: skip
    # Starting by email picks the org's connection.
    provider.person("okta|pat", "pat@corp.example.com")
    started = client.post("/api/v1/auth/sso/start", json={"email": "pat@corp.example.com"})
    assert started.status_code == 200, started.text
    assert provider.issuer in started.json()["redirect_url"]
    assert "login_hint=pat%40corp.example.com" in started.json()["redirect_url"]


def test_requiring_sso_refuses_passwords_to_the_domains_people_but_break_glass_owners(
    client: TestClient, factory: Factory, provider: OidcProvider, dns: LocalDns
) -> None:
    tenant, conn_id = sso_org(client, factory, provider, dns)
    # A member of the domain with a password account and a live password session.
    user_id, email, token = factory.user("dana@corp.example.com")
    login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200
    refresh_token = login.json()["refresh_token"]
    # The owner signs in with a password too; she will be the break-glass account.
    policy_url = f"/api/v1/orgs/{tenant.org_id}/sso/policy"
    resp = client.put(
        policy_url, headers=tenant.headers, json={"enforced": True, "break_glass": ["usr_nobody"]}
    )
    assert_problem(resp, 422, "not_an_owner")
    resp = client.put(
        policy_url,
        headers=tenant.headers,
        json={"enforced": True, "break_glass": [tenant.owner_id]},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "enforced": True, "break_glass": [tenant.owner_id], "verified_domains": ["corp.example.com"]
    }  # fmt: skip

    refused = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    problem = assert_problem(refused, 403, "sso_required")
    assert problem["policy"] == "sso_enforced" and problem["domain"] == "corp.example.com"
    # Her password session ended: its access token and refresh token are refused.
    assert_problem(client.get("/api/v1/me", headers=bearer(token)), 401, "session_ended")
    assert_problem(
        client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token}),
        401,
        "session_ended",
    )
    # A wrong password still reads as a wrong password (the policy tells guessers nothing).
    wrong = client.post("/api/v1/auth/login", json={"email": email, "password": "nope " * 4})
    assert_problem(wrong, 401, "invalid_credentials")
    # SSO lets her in.
    provider.person("okta|dana", email)
    sso = oidc_sign_in(client, conn_id)
    assert sso.status_code == 200, sso.text
    assert sso.json()["user"]["id"] == user_id  # her domain is verified: linked to her account
    # The break-glass owner, whose email is in another domain anyway, signs in with a password.
    owner = client.post(
        "/api/v1/auth/login", json={"email": tenant.owner_email, "password": PASSWORD}
    )
    assert owner.status_code == 200, owner.text
    # While SSO is required, its last connection stays enabled.
    resp = client.post(
        f"/api/v1/orgs/{tenant.org_id}/sso/connections/{conn_id}/disable", headers=tenant.headers
    )
    assert_problem(resp, 409, "sso_last_connection")
    discovered = client.post("/api/v1/auth/sso/discover", json={"email": email}).json()
    assert discovered["enforced"] is True


def test_a_break_glass_owner_of_the_domain_keeps_password_sign_in(
    client: TestClient, factory: Factory, provider: OidcProvider, dns: LocalDns
) -> None:
    tenant, _ = sso_org(client, factory, provider, dns)
    user_id, email, _ = factory.user("root@corp.example.com")
    invite = client.post(
        f"/api/v1/orgs/{tenant.org_id}/invitations",
        headers=tenant.headers,
        json={"email": email, "role": "owner"},
    )
    login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    accepted = client.post(
        f"/api/v1/invitations/{invite.json()['token']}/accept",
        headers=bearer(login.json()["access_token"]),
    )
    assert accepted.status_code == 200, accepted.text
    resp = client.put(
        f"/api/v1/orgs/{tenant.org_id}/sso/policy",
        headers=tenant.headers,
        json={"enforced": True, "break_glass": [user_id]},
    )
    assert resp.status_code == 200, resp.text
    again = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert again.status_code == 200, again.text
    # Demoted, the account is break-glass no more.
    demoted = client.patch(
        f"/api/v1/orgs/{tenant.org_id}/members/{user_id}",
        headers=tenant.headers,
        json={"role": "admin"},
    )
    assert demoted.status_code == 200, demoted.text
    refused = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert_problem(refused, 403, "sso_required")


def test_sso_is_required_only_with_a_verified_domain_and_an_enabled_connection(
    client: TestClient, factory: Factory
) -> None:
    tenant = factory.tenant()
    resp = client.put(
        f"/api/v1/orgs/{tenant.org_id}/sso/policy", headers=tenant.headers, json={"enforced": True}
    )
    assert_problem(resp, 409, "no_verified_domain")
