"""An org admin sets up SSO in the browser, alone: a connection to the OIDC provider of
tests/support (on loopback), what to give it, a test sign-in showing what it sent and what the
rules would do, the rules, enabling; a domain proven through a real DNS server; SSO required
with a break-glass owner. Every step is checked against the API's answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect

from conftest import Factory
from support.dns_server import LocalDns
from support.oidc_provider import OidcProvider
from tenantry.kit.clock import FrozenClock
from tenantry.sso.dns import DnsTxtResolver
from web.conftest import LiveServer, check_accessibility, sign_in


@pytest.fixture
def provider(clock: FrozenClock) -> Iterator[OidcProvider]:
    found = OidcProvider(clock).start()
    yield found
    found.stop()


@pytest.fixture
def dns(live_server: LiveServer) -> Iterator[LocalDns]:
    server = LocalDns().start()
    live_server.app.state.sso_txt_resolver = DnsTxtResolver([server.address])
    # The addresses given to the identity provider are the ones the browser uses.
    live_server.app.state.settings.base_url = live_server.url
    yield server
    server.stop()


def test_an_admin_connects_tests_maps_and_enables_an_identity_provider(
    page: Any,
    client: TestClient,
    factory: Factory,
    provider: OidcProvider,
    dns: LocalDns,
    live_server: LiveServer,
    shots: Any,
) -> None:
    tenant = factory.tenant("Acme Labs")
    api = f"/api/v1/orgs/{tenant.org_id}"
    sign_in(page, tenant.owner_email)
    page.get_by_role("navigation", name="Organization").get_by_role(
        "link", name="Single sign-on"
    ).click()
    expect(page.locator("#connections-h + .empty .empty-title")).to_have_text(
        "No identity provider yet"
    )
    check_accessibility(page, "SSO settings, empty")

    # A connection to the provider, from the generic preset.
    page.get_by_label("Name", exact=True).fill("Okta")
    page.get_by_label("Issuer URL").fill(provider.issuer)
    page.get_by_label("Client id").fill(provider.client_id)
    page.get_by_label("Client secret").fill(provider.client_secret)
    page.get_by_role("button", name="Add connection").click()
    page.wait_for_url("**/sso/sso_*")
    made = client.get(f"{api}/sso/connections", headers=tenant.headers).json()
    assert [c["name"] for c in made] == ["Okta"]
    conn = made[0]
    expect(page.locator("#redirect-uri")).to_have_text(conn["service_provider"]["redirect_uri"])
    expect(page.get_by_role("button", name="Enable")).to_be_disabled()
    check_accessibility(page, "an SSO connection, not tested")

    # The test sign-in goes to the provider and back; the page shows what came.
    provider.person("admin-test", "it@acme.example.com", name="Ira Tester", groups=["ml"])
    page.get_by_role("button", name="Run a test sign-in").click()
    page.wait_for_url(f"**/orgs/{tenant.org_slug}/sso/{conn['id']}?*")
    expect(page.locator("#test-result")).to_contain_text("passed")
    expect(page.locator("#test-result")).to_contain_text("it@acme.example.com")
    expect(page.locator("#test-result")).to_contain_text("ml")
    shown = client.get(f"{api}/sso/connections/{conn['id']}/test", headers=tenant.headers).json()
    assert shown["tested"] is True and shown["result"]["profile"]["email"] == "it@acme.example.com"
    # Nobody was made by the test.
    members = client.get(f"{api}/members", headers=tenant.headers).json()["items"]
    assert "it@acme.example.com" not in [m["email"] for m in members]

    # Rules that do not parse are refused beside the field; good ones are saved.
    rules = page.get_by_label("Rules (JSON)")
    rules.fill('{"rules": [{"when": {"group": "ml"}, "org_role": "emperor"}]}')
    page.get_by_role("button", name="Save rules").click()
    expect(page.locator("#f-mapping-error")).to_be_visible()
    unchanged = client.get(f"{api}/sso/connections/{conn['id']}", headers=tenant.headers).json()
    assert unchanged["mapping"] == conn["mapping"]
    page.get_by_label("Rules (JSON)").fill(
        '{"rules": [{"when": {"group": "ml"}, "org_role": "admin"}], "default": null}'
    )
    page.get_by_role("button", name="Save rules").click()
    expect(page.locator(".notice")).to_have_text("Mapping rules saved.")
    saved = client.get(f"{api}/sso/connections/{conn['id']}", headers=tenant.headers).json()
    assert saved["mapping"]["rules"][0]["org_role"] == "admin"

    # The rules apply at each sign-in; the test of the provider's settings still stands.
    assert saved["tested"] is True
    page.get_by_role("button", name="Enable").click()
    expect(page.locator(".notice")).to_have_text("Okta enabled.")
    enabled = client.get(f"{api}/sso/connections/{conn['id']}", headers=tenant.headers).json()
    assert enabled["enabled"] is True

    # A domain: its TXT record shown, refused until published, then verified.
    page.goto(f"/orgs/{tenant.org_slug}/sso")
    page.get_by_label("Email domain").fill("acme.example.com")
    page.get_by_role("button", name="Add domain").click()
    expect(page.locator(".notice")).to_contain_text("Publish the TXT record below")
    claim = client.get(f"{api}/domains", headers=tenant.headers).json()[0]
    expect(page.locator("#domains")).to_contain_text(claim["record_value"])
    page.get_by_role("button", name="Verify acme.example.com").click()
    expect(page.locator(".form-error")).to_be_visible()
    assert client.get(f"{api}/domains", headers=tenant.headers).json()[0]["status"] != "verified"
    dns.publish_txt(claim["record_name"], claim["record_value"])
    page.get_by_role("button", name="Verify acme.example.com").click()
    expect(page.locator(".notice")).to_have_text("acme.example.com verified.")
    assert client.get(f"{api}/domains", headers=tenant.headers).json()[0]["status"] == "verified"

    # SSO required, with the owner as break-glass.
    page.get_by_label("Require SSO for the verified domains").check()
    page.get_by_label(tenant.owner_email).check()
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator("#policy-state")).to_contain_text("SSO is required for acme.example.com")
    policy = client.get(f"{api}/sso/policy", headers=tenant.headers).json()
    assert policy["enforced"] is True and policy["break_glass"] == [tenant.owner_id]
    check_accessibility(page, "SSO settings, set up")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / "sso-settings.png"), full_page=True)
