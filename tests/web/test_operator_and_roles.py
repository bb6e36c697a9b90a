"""The operator console in the browser (tenants with plan, status and usage; a plan set,
a tenant suspended and resumed, as the API then answers; the plan catalog), and what a viewer
sees of the new pages: no admin control anywhere, and a forced address or form refused as the
API refuses it, with nothing written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from conftest import Factory, count_rows
from tenantry.kit.db import Database
from web.conftest import LiveServer, check_accessibility, sign_in


def test_the_operator_console(
    page: Any, live_server: LiveServer, factory: Factory, shots: Any
) -> None:
    acme = factory.tenant("Acme Labs")
    factory.tenant("Globex")
    operator = factory.operator()
    sign_in(page, operator.email)
    page.get_by_role("link", name="Operator console").click()
    page.wait_for_url("**/operator")
    row = page.locator("#tenants tr", has=page.locator(f"text={acme.org_slug}"))
    expect(row).to_contain_text("Acme Labs")
    expect(row).to_contain_text("active")
    expect(page.locator("#tenants tbody tr")).to_have_count(2)
    check_accessibility(page, "operator console")

    page.get_by_label("Plan of Acme Labs").select_option("professional")
    page.get_by_role("button", name="Set plan of Acme Labs").click()
    expect(page.locator(".notice")).to_have_text("Acme Labs is on professional.")
    with live_server.http() as api:
        plan = api.get(f"/api/v1/orgs/{acme.org_id}/plan", headers=acme.headers).json()
    assert plan["key"] == "professional"

    page.get_by_label("Why suspend Acme Labs").fill("unpaid invoices")
    page.get_by_role("button", name="Suspend Acme Labs").click()
    expect(page.locator(".notice")).to_have_text("Acme Labs suspended.")
    expect(page.locator("#tenants tr", has_text="Acme Labs")).to_contain_text("suspended")
    page.evaluate("window.scrollTo(0, 0)")  # the navigation where it sits
    page.screenshot(path=str(shots / "operator.png"), full_page=True)
    with live_server.http() as api:
        refused = api.get(f"/api/v1/orgs/{acme.org_id}", headers=acme.headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "tenant_suspended")

    page.get_by_role("button", name="Resume Acme Labs").click()
    expect(page.locator(".notice")).to_have_text("Acme Labs resumed.")
    with live_server.http() as api:
        assert api.get(f"/api/v1/orgs/{acme.org_id}", headers=acme.headers).status_code == 200

    page.get_by_role("link", name="Plan catalog").click()
    expect(page.locator("#plans section")).to_have_count(4)
    expect(page.locator("#plans")).to_contain_text("Professional")
    check_accessibility(page, "plan catalog")


def test_a_tenant_member_is_no_operator(page: Any, factory: Factory) -> None:
    tenant = factory.tenant()
    sign_in(page, tenant.owner_email)
    assert page.get_by_role("link", name="Operator console").count() == 0
    response = page.goto("/operator")
    assert response.status == 403
    expect(page.locator(".problem")).to_contain_text("operator_only")


def test_a_viewer_sees_no_admin_controls_and_is_refused_when_forcing(
    new_context: Callable[..., Any],
    live_server: LiveServer,
    factory: Factory,
    database: Database,
) -> None:
    tenant = factory.tenant("Acme Labs")
    viewer_id, viewer_token = factory.member(tenant, org_role="member", team_role="viewer")
    with live_server.http() as api:
        email = api.get("/api/v1/me", headers={"Authorization": f"Bearer {viewer_token}"}).json()[
            "user"
        ]["email"]
    page = new_context().new_page()
    sign_in(page, email)
    slug = tenant.org_slug

    # Navigation offers only what the viewer may open.
    nav = page.get_by_role("navigation", name="Organization")
    expect(nav.get_by_role("link", name="Access", exact=True)).to_be_visible()
    expect(nav.get_by_role("link", name="Usage")).to_be_visible()
    assert nav.get_by_role("link", name="Billing").count() == 0
    assert nav.get_by_role("link", name="Audit trail").count() == 0
    assert page.get_by_role("link", name="Operator console").count() == 0

    # Access: only the explain form, about oneself.
    page.goto(f"/orgs/{slug}/access")
    expect(page.get_by_role("button", name="Explain")).to_be_visible()
    for control in ("Create role", "Grant", "Create template", "Apply template", "Revoke"):
        assert page.get_by_role("button", name=control).count() == 0, control
    assert page.locator("#roles, #grants, #templates").count() == 0
    check_accessibility(page, "access, as a viewer")

    # Usage: the viewer's own team (no org-wide scope offered), read only.
    page.goto(f"/orgs/{slug}/usage")
    expect(page.locator(".page-head .muted")).to_contain_text("default")
    assert page.locator("form[method=post]").count() == 1  # the sign-out form only
    check_accessibility(page, "usage, as a viewer")

    # Forcing addresses: the API's refusals, as pages.
    for path, status in (
        (f"/orgs/{slug}/billing", 403),
        (f"/orgs/{slug}/audit", 403),
        (f"/orgs/{slug}/audit/live", 403),
        (f"/orgs/{slug}/audit/export?format=csv", 403),
        (f"/orgs/{slug}/usage?team=", 200),
        (f"/orgs/{slug}/access/roles/viewer", 403),
        ("/operator", 403),
        ("/operator/plans", 403),
    ):
        response = page.goto(path)
        assert response.status == status, path
    with live_server.http() as api:
        org_usage = api.get(
            f"/api/v1/orgs/{tenant.org_id}/usage",
            headers={"Authorization": f"Bearer {viewer_token}"},
        )
    assert org_usage.status_code == 403

    # Forcing forms, with a valid session and CSRF token: refused, nothing written.
    page.goto(f"/orgs/{slug}/access")
    token = page.locator("form[action='/sign-out'] input[name=csrf_token]").get_attribute("value")
    before = count_rows(database)
    for path, form in (
        (f"/orgs/{slug}/access/roles", {"name": "sneaky", "permissions": "org:read"}),
        (
            f"/orgs/{slug}/access/grants",
            {
                "team_id": tenant.team_id,
                "subject_type": "user",
                "subject_id": viewer_id,
                "role": "owner",
            },
        ),
        (f"/orgs/{slug}/billing/subscription", {"plan": "starter", "cycle": "monthly"}),
        (f"/orgs/{slug}/billing/payment-methods", {"token": "tok_visa"}),
        (f"/operator/tenants/{tenant.org_id}/suspend", {"reason": "x"}),
    ):
        response = page.request.post(
            path,
            form={**form, "csrf_token": token},
            headers={"Origin": live_server.url},
        )
        assert response.status == 403, (path, response.status)
    after = count_rows(database)
    changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
    # Refusals are audited, as the API's are; nothing else is written.
    assert set(changed) <= {"audit_events"}, changed
