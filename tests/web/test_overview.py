"""The org overview in the browser: plan and subscription, members, this month's usage (the
API's totals), quota gauges and the next invoice, each as the API reports it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from playwright.sync_api import expect

from conftest import Factory
from tenantry.kit.clock import FrozenClock
from web.conftest import LiveServer, check_accessibility, sign_in


def test_the_overview_shows_what_the_api_reports(
    page: Any, live_server: LiveServer, factory: Factory, clock: FrozenClock, shots: Any
) -> None:
    tenant = factory.tenant("Acme Labs", plan="professional")
    factory.member(tenant)
    events = [
        {
            "id": f"e-{n}",
            "meter": "llm_input_tokens",
            "quantity": str(1000 * n),
            "timestamp": clock.now().isoformat(),
            "team": tenant.team_id,
        }
        for n in range(1, 4)
    ]
    with live_server.http() as api:
        sent = api.post("/api/v1/usage/events", headers=tenant.headers, json={"events": events})
        assert sent.status_code in (200, 201, 207), sent.text
        totals = api.get(f"/api/v1/orgs/{tenant.org_id}/usage", headers=tenant.headers).json()
        quotas = api.get(f"/api/v1/orgs/{tenant.org_id}/quotas", headers=tenant.headers).json()
    expected = {r["meter"]: Decimal(r["quantity"]) for r in totals["rows"]}
    assert expected["llm_input_tokens"] == 6000

    sign_in(page, tenant.owner_email)
    expect(page.locator("h1")).to_have_text("Acme Labs")
    check_accessibility(page, "overview")
    page.screenshot(path=str(shots / "overview.png"), full_page=True)
    usage = page.locator("#usage-h + .table-wrap tbody tr", has_text="llm input tokens")
    expect(usage.locator("td.num")).to_have_text("6,000")
    expect(page.locator("#members-h + .big")).to_have_text("2")
    plan_name = quotas.get("plan", {}).get("name") if isinstance(quotas.get("plan"), dict) else None
    if plan_name:
        expect(page.locator("#plan-h + .big")).to_have_text(plan_name)
    gauges = page.locator(".gauge")
    expect(gauges).to_have_count(len(quotas["quotas"]))
    members = page.locator(".gauge", has_text="team members")
    expect(members).to_contain_text("2 of")


def test_a_member_sees_the_overview_without_usage_or_billing(
    page: Any, live_server: LiveServer, factory: Factory
) -> None:
    tenant = factory.tenant("Acme Labs")
    _, token = factory.member(tenant)
    with live_server.http() as api:
        email = api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    sign_in(page, email["user"]["email"])
    expect(page.locator("h1")).to_have_text("Acme Labs")
    assert page.locator("#usage-h").count() == 0
    assert page.locator("#cost-h").count() == 0
    assert page.get_by_role("link", name="Billing").count() == 0
    check_accessibility(page, "overview, a member")
