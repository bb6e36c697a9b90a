"""Teams in the browser: create one and see it in the tree, refusals beside their fields, the
members of a team, deleting with the typed confirmation. What a page changed is what the API
shows afterwards."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from conftest import Factory
from web.conftest import LiveServer, check_accessibility, sign_in


def test_create_a_team_and_see_it_listed(
    page: Any, live_server: LiveServer, factory: Factory, shots: Any
) -> None:
    tenant = factory.tenant("Acme Labs")
    sign_in(page, tenant.owner_email)
    page.get_by_role("link", name="Teams").click()
    page.wait_for_url(f"**/orgs/{tenant.org_slug}/teams")

    page.get_by_label("Name", exact=True).fill("Research")
    page.get_by_role("button", name="Create team").click()
    expect(page.locator(".notice")).to_have_text("Team Research created.")
    page.get_by_label("Name", exact=True).fill("Vision")
    page.get_by_label("Parent team").select_option(label="Research")
    page.get_by_role("button", name="Create team").click()
    expect(page.locator(".notice")).to_have_text("Team Vision created.")
    # The tree nests Vision under Research.
    nested = page.locator(".tree li", has_text="Research").locator("ul li").first
    assert nested.inner_text().startswith("Vision")
    check_accessibility(page, "teams")
    page.screenshot(path=str(shots / "teams.png"), full_page=True)

    with live_server.http() as api:
        listed = api.get(f"/api/v1/orgs/{tenant.org_id}/teams", headers=tenant.headers).json()
    by_name = {t["name"]: t for t in listed["items"]}
    assert by_name["Vision"]["parent_team_id"] == by_name["Research"]["id"]


def test_a_refused_team_shows_the_apis_detail_beside_its_field(page: Any, factory: Factory) -> None:
    tenant = factory.tenant()
    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/teams")
    page.get_by_label("Name", exact=True).fill("Research")
    page.get_by_label("Slug").fill("Not A Slug!")
    page.get_by_role("button", name="Create team").click()
    expect(page.locator("#f-slug-error")).to_have_text(
        "Slug must be 1-64 lowercase letters, digits and inner hyphens"
    )
    assert page.get_by_label("Slug").get_attribute("aria-invalid") == "true"
    # The name typed stays; nothing was created.
    assert page.get_by_label("Name", exact=True).input_value() == "Research"
    assert page.locator(".tree").count() == 1  # the default team only
    assert page.locator(".tree li").count() == 1


def test_team_members_and_deletion_with_typed_confirmation(
    page: Any, live_server: LiveServer, factory: Factory, shots: Any
) -> None:
    tenant = factory.tenant()
    member_id, _ = factory.member(tenant)
    with live_server.http() as api:
        email = api.get(f"/api/v1/orgs/{tenant.org_id}/members", headers=tenant.headers).json()[
            "items"
        ]
    member_email = next(m["email"] for m in email if m["user_id"] == member_id)
    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/teams")
    page.get_by_label("Name", exact=True).fill("Platform")
    page.get_by_role("button", name="Create team").click()
    page.get_by_role("link", name="Platform").click()
    page.wait_for_url("**/teams/team_*")

    page.get_by_label("Email").fill(member_email)
    page.get_by_label("Role", exact=True).select_option("viewer")
    page.get_by_role("button", name="Add member").click()
    expect(page.locator(".notice")).to_have_text("Member added.")
    page.get_by_label(f"Role of {member_email}").select_option("editor")
    page.locator("tr", has_text=member_email).get_by_role("button", name="Change role").click()
    expect(page.locator(".notice")).to_have_text("Role changed.")
    check_accessibility(page, "a team")
    page.screenshot(path=str(shots / "team.png"), full_page=True)

    team_id = page.url.rsplit("/", 1)[1]
    with live_server.http() as api:
        members = api.get(f"/api/v1/teams/{team_id}/members", headers=tenant.headers).json()
    assert [(m["email"], m["role"]) for m in members["items"]] == [(member_email, "editor")]

    delete = page.get_by_role("button", name="Delete team")
    assert delete.is_disabled()  # until the slug is typed
    page.get_by_label("Type the team's slug").fill("platfor")
    assert delete.is_disabled()
    page.get_by_label("Type the team's slug").fill("platform")
    delete.click()
    page.wait_for_url(f"**/orgs/{tenant.org_slug}/teams")
    assert page.get_by_role("link", name="Platform").count() == 0
    with live_server.http() as api:
        assert api.get(f"/api/v1/teams/{team_id}", headers=tenant.headers).status_code == 404
