"""Signing in to the dashboard through SSO in a real browser: email first, then the
organization's identity provider (the OIDC provider and SAML IdP of tests/support, on loopback),
back to the dashboard with a session; no password typed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import Factory, Tenant
from support.dns_server import LocalDns
from support.oidc_provider import OidcProvider
from support.saml_idp import SamlIdp
from support.sso import create_oidc, create_saml, enable, run_saml_test, run_test, set_mapping
from tenantry.kit.clock import FrozenClock
from tenantry.sso.dns import DnsTxtResolver
from web.conftest import LiveServer, check_accessibility, text_of


@pytest.fixture
def provider(clock: FrozenClock) -> Iterator[OidcProvider]:
    found = OidcProvider(clock).start()
    yield found
    found.stop()


@pytest.fixture
def dns(live_server: LiveServer) -> Iterator[LocalDns]:
    server = LocalDns().start()
    live_server.app.state.sso_txt_resolver = DnsTxtResolver([server.address])
    # The app's public address is the live server's: the addresses given to identity
    # providers are the ones the browser uses.
    live_server.app.state.settings.base_url = live_server.url
    yield server
    server.stop()


def verify_domain(client: TestClient, tenant: Tenant, dns: LocalDns, name: str) -> None:
    claim = client.post(
        f"/api/v1/orgs/{tenant.org_id}/domains", headers=tenant.headers, json={"domain": name}
    ).json()
    dns.publish_txt(claim["record_name"], claim["record_value"])
    resp = client.post(
        f"/api/v1/orgs/{tenant.org_id}/domains/{claim['id']}/verify", headers=tenant.headers
    )
    assert resp.status_code == 200, resp.text


def sso_sign_in(page: Any, email: str) -> None:
    page.goto("/sign-in")
    page.get_by_role("link", name="Sign in with SSO").click()
    page.wait_for_url("**/sign-in/sso?next=/")
    page.get_by_label("Work email").fill(email)
    page.get_by_role("button", name="Continue").click()


def test_a_person_signs_in_through_the_oidc_provider(
    page: Any,
    client: TestClient,
    factory: Factory,
    provider: OidcProvider,
    dns: LocalDns,
    shots: Any,
) -> None:
    tenant = factory.tenant("Acme Labs")
    conn = create_oidc(client, tenant, provider)
    provider.person("admin-test", "it@acme.example.com")
    assert run_test(client, tenant, conn["id"])["tested"] is True
    enable(client, tenant, conn["id"])
    set_mapping(
        client, tenant, conn["id"], {"rules": [{"when": {"group": "ml"}, "org_role": "admin"}]}
    )
    verify_domain(client, tenant, dns, "acme.example.com")

    page.goto("/sign-in/sso")
    check_accessibility(page, "SSO sign-in page")
    page.screenshot(path=str(shots / "sso-sign-in.png"))
    provider.person("okta|ada", "ada@acme.example.com", name="Ada Lovelace", groups=["ml"])
    sso_sign_in(page, "ada@acme.example.com")
    page.wait_for_url(f"**/orgs/{tenant.org_slug}")
    assert text_of(page, "h1") == "Acme Labs"
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["tenantry_session"]["httpOnly"]
    assert "tenantry_sso" not in cookies  # the verifier is gone once used
    # She is an admin of the org, as the rules say.
    members = client.get(f"/api/v1/orgs/{tenant.org_id}/members", headers=tenant.headers).json()
    assert ("ada@acme.example.com", "admin") in [(m["email"], m["role"]) for m in members["items"]]


def test_people_without_sso_are_sent_to_the_password_form(page: Any, factory: Factory) -> None:
    factory.tenant("Acme Labs")
    sso_sign_in(page, "someone@elsewhere.example.com")
    page.wait_for_url("**/sign-in?next=%2F")
    assert page.get_by_label("Password").is_visible()


def test_a_refused_sign_in_says_why(
    page: Any, client: TestClient, factory: Factory, provider: OidcProvider, dns: LocalDns
) -> None:
    tenant = factory.tenant("Acme Labs")
    conn = create_oidc(client, tenant, provider)
    provider.person("admin-test", "it@acme.example.com")
    assert run_test(client, tenant, conn["id"])["tested"] is True
    enable(client, tenant, conn["id"])
    set_mapping(client, tenant, conn["id"], {"rules": [], "default": None})
    verify_domain(client, tenant, dns, "acme.example.com")
    provider.person("okta|bo", "bo@acme.example.com")
    sso_sign_in(page, "bo@acme.example.com")
    page.wait_for_url("**/sign-in/sso/done**")
    assert "no access here" in text_of(page, ".form-error")


def test_a_person_signs_in_through_the_saml_idp(
    page: Any,
    client: TestClient,
    factory: Factory,
    dns: LocalDns,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    idp = SamlIdp(tmp_path)
    login_page = idp.serve(
        clock=clock, subject="cy", attributes={"email": ["cy@saml.example.com"], "groups": ["eng"]}
    )
    try:
        tenant = factory.tenant("Saml Works")
        conn = create_saml(client, tenant, idp)
        assert run_saml_test(client, tenant, idp, conn["id"], now=clock.now())["tested"] is True
        enable(client, tenant, conn["id"])
        verify_domain(client, tenant, dns, "saml.example.com")
        sso_sign_in(page, "cy@saml.example.com")
        page.wait_for_url(f"**/orgs/{tenant.org_slug}")
        assert text_of(page, "h1") == "Saml Works"
    finally:
        login_page.stop()
