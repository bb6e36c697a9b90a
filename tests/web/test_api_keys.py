"""API keys in the browser: made for a team with some permissions and an expiry, the secret
shown once and copied, used from outside the browser, revoked, and refused afterwards."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from conftest import Factory
from web.conftest import LiveServer, check_accessibility, sign_in


def test_create_copy_use_and_revoke_an_api_key(
    new_context: Callable[..., Any], live_server: LiveServer, factory: Factory, shots: Any
) -> None:
    tenant = factory.tenant("Acme Labs")
    context = new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    sign_in(page, tenant.owner_email)
    page.get_by_role("link", name="API keys").click()
    expect(page.locator(".empty-title")).to_have_text("No API keys yet")
    check_accessibility(page, "API keys, none yet")

    page.get_by_label("Name").fill("training cluster")
    page.get_by_label("Scope").select_option(label="default")
    page.get_by_label("org:read").check()
    page.get_by_label("team:read").check()
    page.get_by_label("Expires on").fill("2026-03-01")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator(".notice")).to_have_text("API key training cluster created.")
    secret = page.locator("#new-secret").inner_text()
    assert secret.startswith("tnt_")
    assert page.content().count(secret) == 1  # rendered once, in the panel and nowhere else
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    check_accessibility(page, "API keys, a new secret")
    page.screenshot(path=str(shots / "api-keys.png"), full_page=True)

    with live_server.http() as api:
        key = {"Authorization": f"Bearer {secret}"}
        assert api.get(f"/api/v1/teams/{tenant.team_id}", headers=key).status_code == 200
        # Only the permissions ticked: reading usage is refused.
        usage = api.get(f"/api/v1/teams/{tenant.team_id}/quotas", headers=key)
        assert usage.status_code == 403
        listed = api.get(f"/api/v1/orgs/{tenant.org_id}/api-keys", headers=tenant.headers)
    (made,) = listed.json()["items"]
    assert made["team_id"] == tenant.team_id
    assert made["permissions"] == ["org:read", "team:read"]
    assert made["expires_at"].startswith("2026-03-01T00:00:00")

    page.reload()
    assert secret not in page.content()  # never shown again
    row = page.locator("tr", has_text="training cluster")
    expect(row).not_to_contain_text("never used")
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator(".notice")).to_have_text("API key training cluster revoked.")
    expect(page.locator("tr", has_text="training cluster")).to_contain_text("revoked")
    with live_server.http() as api:
        refused = api.get(f"/api/v1/teams/{tenant.team_id}", headers=key)
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_api_key"


def test_a_bad_expiry_is_shown_beside_its_field(page: Any, factory: Factory) -> None:
    tenant = factory.tenant()
    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/api-keys")
    page.get_by_label("Name").fill("old")
    page.get_by_label("Expires on").fill("2020-01-01")  # the clock says 2026
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#f-expires_at-error")).to_have_text("expires_at must be in the future")
    expect(page.locator(".empty-title")).to_have_text("No API keys yet")
