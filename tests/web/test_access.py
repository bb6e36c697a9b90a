"""Access control in the browser: a custom role made, inheriting a built-in one, and edited; a
grant with an expiry; a template made and applied; the explain form's answer and remedies are
the API's explain, before and after the grant."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from conftest import Factory, bearer
from web.conftest import LiveServer, check_accessibility, sign_in


def _explain(live_server: LiveServer, headers: dict[str, str], org: str, body: Any) -> Any:
    with live_server.http() as api:
        resp = api.post(f"/api/v1/orgs/{org}/access/explain", headers=headers, json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_roles_grants_templates_and_explain(
    page: Any, live_server: LiveServer, factory: Factory, shots: Any
) -> None:
    tenant = factory.tenant("Acme Labs")
    member_id, member_token = factory.member(tenant)
    with live_server.http() as api:
        me = api.get("/api/v1/me", headers=bearer(member_token)).json()
    member_email = me["user"]["email"]
    sign_in(page, tenant.owner_email)
    page.get_by_role("navigation", name="Organization").get_by_role(
        "link", name="Access", exact=True
    ).click()
    check_accessibility(page, "access")

    # Explain: may the member delete models on the default team? Not yet.
    page.get_by_label("Who").select_option("user")
    page.get_by_label("Email or id").first.fill(member_email)
    page.get_by_label("Permission").select_option("model:delete")
    page.get_by_label("On", exact=True).first.select_option("team")
    page.get_by_label("Resource id").first.fill(tenant.team_id)
    page.get_by_role("button", name="Explain").click()
    asked = {
        "subject": {"type": "user", "id": member_email},
        "permission": "model:delete",
        "resource": {"type": "team", "id": tenant.team_id},
    }
    before = _explain(live_server, tenant.headers, tenant.org_id, asked)
    assert before["allowed"] is False
    answer = page.locator("#answer")
    expect(answer.locator(".verdict")).to_have_text("No")
    expect(answer).to_contain_text(before["detail"])
    remedies = [r["name"] for r in before["remedies"]]
    assert remedies
    expect(page.locator("#remedies li")).to_have_count(len(remedies))
    for name in remedies:
        expect(page.locator("#remedies")).to_contain_text(name)

    # A role inheriting viewer, with model:delete of its own.
    page.get_by_label("Role name").fill("model-janitor")
    page.get_by_label("Description").first.fill("Cleans up models")
    page.locator("form[action$='/access/roles'] input[name=inherits][value=viewer]").check()
    page.locator(
        "form[action$='/access/roles'] input[name=permissions][value='model:delete']"
    ).check()
    page.get_by_role("button", name="Create role").click()
    expect(page.locator(".notice")).to_have_text("Role model-janitor created.")
    with live_server.http() as api:
        roles = api.get(f"/api/v1/orgs/{tenant.org_id}/roles", headers=tenant.headers).json()[
            "items"
        ]
    (role,) = roles
    assert (role["name"], role["inherits"], role["permissions"]) == (
        "model-janitor",
        ["viewer"],
        ["model:delete"],
    )
    assert "model:read" in role["effective_permissions"]

    # Edit it: model:update too.
    page.get_by_role("link", name="model-janitor").click()
    page.wait_for_url(f"**/access/roles/{role['id']}")
    check_accessibility(page, "a role")
    page.locator("input[name=permissions][value='model:update']").check()
    page.get_by_role("button", name="Save role").click()
    expect(page.locator(".notice")).to_have_text("Role saved.")
    expect(page.locator("#effective")).to_contain_text("model:update")
    page.get_by_role("link", name="All roles").click()

    # Grant it to the member on the default team until 2026-02-01.
    grant = page.locator("form[action$='/access/grants']")
    grant.get_by_label("Team", exact=True).select_option(tenant.team_id)
    grant.get_by_label("Email or id", exact=True).fill(member_email)
    grant.get_by_label("Role", exact=True).select_option("model-janitor")
    grant.get_by_label("Expires on", exact=True).fill("2026-02-01")
    grant.get_by_label("Reason", exact=True).fill("spring cleaning")
    grant.get_by_role("button", name="Grant").click()
    expect(page.locator(".notice")).to_have_text("Granted model-janitor in default.")
    with live_server.http() as api:
        grants = api.get(f"/api/v1/orgs/{tenant.org_id}/grants", headers=tenant.headers).json()[
            "items"
        ]
    (made,) = grants
    assert (made["subject_id"], made["role"], made["reason"]) == (
        member_id,
        role["id"],
        "spring cleaning",
    )
    assert made["expires_at"].startswith("2026-02-01T00:00:00")
    expect(page.locator("#grants")).to_contain_text(member_email)

    # The same question now: yes, through the grant.
    page.get_by_label("Who").select_option("user")
    page.get_by_label("Email or id").first.fill(member_email)
    page.get_by_label("Permission").select_option("model:delete")
    page.get_by_label("On", exact=True).first.select_option("team")
    page.get_by_label("Resource id").first.fill(tenant.team_id)
    page.get_by_role("button", name="Explain").click()
    after = _explain(live_server, tenant.headers, tenant.org_id, asked)
    assert after["allowed"] is True
    expect(page.locator("#answer .verdict")).to_have_text("Yes")
    expect(page.locator("#answer")).to_contain_text(after["via"])

    # A template, applied to another person: one more grant.
    other_id, _ = factory.member(tenant)
    template = page.locator("form[action$='/access/templates']")
    template.get_by_label("Template name", exact=True).fill("on-call")
    template.get_by_label("Role", exact=True).select_option("editor")
    template.get_by_label("Lasts (days)", exact=True).fill("7")
    template.get_by_role("button", name="Create template").click()
    expect(page.locator(".notice")).to_have_text("Template on-call created.")
    apply = page.locator("form[action$='/access/templates/apply']")
    apply.get_by_label("Template", exact=True).select_option(label="on-call")
    apply.get_by_label("In team", exact=True).select_option(tenant.team_id)
    apply.get_by_label("People", exact=True).fill(other_id)
    apply.get_by_role("button", name="Apply template").click()
    expect(page.locator(".notice")).to_have_text("1 grant made in default.")
    check_accessibility(page, "access, with roles, grants and templates")
    page.evaluate("window.scrollTo(0, 0)")  # the navigation where it sits
    page.screenshot(path=str(shots / "access.png"), full_page=False)
    with live_server.http() as api:
        grants = api.get(
            f"/api/v1/orgs/{tenant.org_id}/grants",
            headers=tenant.headers,
            params={"subject_id": other_id},
        ).json()["items"]
    assert [(g["role"], g["expires_at"][:10]) for g in grants] == [("editor", "2026-01-08")]

    # Revoking the member's grant from the table.
    page.locator("#grants tr", has_text=member_email).get_by_role("button", name="Revoke").click()
    expect(page.locator(".notice")).to_have_text("Grant revoked.")
    assert _explain(live_server, tenant.headers, tenant.org_id, asked)["allowed"] is False


def test_a_refused_role_shows_the_apis_detail_beside_its_field(page: Any, factory: Factory) -> None:
    tenant = factory.tenant()
    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/access")
    page.get_by_label("Role name").fill("viewer")
    page.get_by_role("button", name="Create role").click()
    expect(page.locator("#role-name-error")).to_be_visible()
    assert page.get_by_label("Role name").get_attribute("aria-invalid") == "true"
    expect(page.locator("#roles tbody tr")).to_have_count(4)  # the built-in roles only
