"""The model access page in a real browser: the owner sets the org's and a team's rules and
sees what applies to the team resolved; a refused value is shown beside its field with nothing
saved. (Who may open the page at all: tests/web/test_page_roles.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from conftest import Factory
from web.conftest import LiveServer, check_accessibility, sign_in, text_of


def _access(live_server: LiveServer, headers: dict[str, str], path: str) -> Any:
    with live_server.http() as api:
        return api.get(f"/api/v1{path}/model-access", headers=headers).json()


def test_rules_of_the_org_and_a_team_and_what_applies(
    page: Any, live_server: LiveServer, factory: Factory, shots: Path
) -> None:
    tenant = factory.tenant("Acme Labs")
    sign_in(page, tenant.owner_email)
    nav = page.get_by_role("navigation", name="Organization")
    nav.get_by_role("link", name="Model access").click()
    expect(page.get_by_role("heading", name="Model access", level=1)).to_be_visible()
    check_accessibility(page, "model access")

    page.get_by_label("Allowed models").fill("gpt-4*\nclaude-3*")
    page.get_by_label("Denied models").fill("gpt-4-32k")
    page.get_by_label("Requests per minute").fill("100")
    page.get_by_role("button", name="Save model access").click()
    expect(page.locator(".notice")).to_have_text("Model access saved.")
    org = _access(live_server, tenant.headers, f"/orgs/{tenant.org_id}")
    assert org["model_access"] == {"gpt-4*": True, "claude-3*": True, "gpt-4-32k": False}
    assert org["rate_limits"]["requests_per_minute"] == 100

    # The team's layer: narrower limits, and the org's rules still apply to it.
    page.get_by_label("Layer").select_option(tenant.team_id)
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", name="This team's rules")).to_be_visible()
    page.get_by_label("Denied providers").fill("cohere")
    page.get_by_label("Requests per minute").fill("-5")
    page.get_by_role("button", name="Save model access").click()
    expect(page.locator("#f-requests_per_minute-error")).to_be_visible()
    assert page.get_by_label("Requests per minute").get_attribute("aria-invalid") == "true"
    team = _access(live_server, tenant.headers, f"/teams/{tenant.team_id}")
    assert team["configured"] is False  # nothing saved
    page.get_by_label("Requests per minute").fill("10")
    page.get_by_role("button", name="Save model access").click()
    expect(page.locator(".notice")).to_have_text("Model access saved.")
    team = _access(live_server, tenant.headers, f"/teams/{tenant.team_id}")
    assert team["providers"] == {"cohere": False}
    assert team["rate_limits"]["requests_per_minute"] == 10

    limits = text_of(page, "#effective-limits")
    assert "requests per minute 10 team" in limits
    rules = text_of(page, "#effective-rules")
    assert "model deny gpt-4-32k org" in rules and "provider deny cohere team" in rules
    page.screenshot(path=str(shots / "model-access.png"), full_page=True)
