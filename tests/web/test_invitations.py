"""Invitations in the browser: an owner invites, the person opens the link in a browser of
their own, signs up there and accepts; a pasted list is all or nothing; someone else's link
answers 404 as the API does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from conftest import PASSWORD, Factory
from web.conftest import LiveServer, check_accessibility, sign_in


def _invite(page: Any, org_slug: str, emails: str, role: str = "member") -> None:
    page.goto(f"/orgs/{org_slug}/members")
    page.get_by_label("Email addresses").fill(emails)
    page.get_by_label("Role").select_option(role)
    page.get_by_role("button", name="Invite", exact=True).click()


def test_invite_and_accept_from_the_link_in_another_browser_with_sign_up(
    page: Any,
    new_context: Callable[..., Any],
    live_server: LiveServer,
    factory: Factory,
    shots: Any,
) -> None:
    tenant = factory.tenant("Acme Labs")
    sign_in(page, tenant.owner_email)
    _invite(page, tenant.org_slug, "new.person@example.com", role="admin")
    expect(page.locator(".notice")).to_have_text("1 invitation created.")
    link = page.locator(".secret code").inner_text()
    assert link.startswith(f"{live_server.url}/invitations/tni_")
    check_accessibility(page, "members, with an invitation link")
    page.screenshot(path=str(shots / "members.png"), full_page=True)

    invitee = new_context().new_page()
    invitee.goto(link)
    expect(invitee.locator("h1")).to_have_text("You have an invitation")
    check_accessibility(invitee, "invitation, signed out")
    invitee.get_by_role("link", name="Create an account").click()
    invitee.get_by_label("Full name").fill("New Person")
    invitee.get_by_label("Email").fill("new.person@example.com")
    invitee.get_by_label("Password").fill(PASSWORD)
    invitee.get_by_role("button", name="Create account").click()
    expect(invitee.locator("h1")).to_have_text("Join Acme Labs")
    assert invitee.url == link
    check_accessibility(invitee, "invitation, signed in")
    invitee.screenshot(path=str(shots / "invitation.png"))
    invitee.get_by_role("button", name="Accept invitation").click()
    invitee.wait_for_url(f"**/orgs/{tenant.org_slug}")
    expect(invitee.locator("h1")).to_have_text("Acme Labs")

    with live_server.http() as api:
        members = api.get(f"/api/v1/orgs/{tenant.org_id}/members", headers=tenant.headers)
    roles = {m["email"]: m["role"] for m in members.json()["items"]}
    assert roles["new.person@example.com"] == "admin"
    page.reload()
    expect(page.locator("#pending-h + .empty .empty-title")).to_have_text("No pending invitations")


def test_a_pasted_list_is_sent_whole_or_not_at_all(
    page: Any, live_server: LiveServer, factory: Factory
) -> None:
    tenant = factory.tenant()
    sign_in(page, tenant.owner_email)
    pasted = f"Ann <ann@example.com>, bob@example.com\n{tenant.owner_email}; not-an-address"
    _invite(page, tenant.org_slug, pasted)
    error = page.locator("#f-emails-error")
    expect(error).to_contain_text(f"{tenant.owner_email}: Already a member of this organization")
    expect(error).to_contain_text("not-an-address: not an email address")
    assert page.get_by_label("Email addresses").input_value() == pasted
    with live_server.http() as api:
        pending = api.get(f"/api/v1/orgs/{tenant.org_id}/invitations", headers=tenant.headers)
    assert pending.json()["items"] == []

    _invite(page, tenant.org_slug, "ann@example.com, bob@example.com\ncy@example.com")
    expect(page.locator(".notice")).to_have_text("3 invitations created.")
    assert page.locator(".secret code").count() == 3
    with live_server.http() as api:
        pending = api.get(f"/api/v1/orgs/{tenant.org_id}/invitations", headers=tenant.headers)
    assert sorted(i["email"] for i in pending.json()["items"]) == [
        "ann@example.com",
        "bob@example.com",
        "cy@example.com",
    ]


def test_someone_elses_invitation_answers_404_and_declining_works(
    page: Any, new_context: Callable[..., Any], factory: Factory
) -> None:
    tenant = factory.tenant("Acme Labs")
    sign_in(page, tenant.owner_email)
    _invite(page, tenant.org_slug, "meant@example.com")
    link = page.locator(".secret code").inner_text()

    _, stranger_email, _ = factory.user()
    stranger = new_context().new_page()
    sign_in(stranger, stranger_email)
    answer = stranger.goto(link)
    assert answer is not None and answer.status == 404
    expect(stranger.locator(".notice.bad")).to_have_text(
        "Invitation not found; it may have been sent to another email address"
    )

    factory.user("meant@example.com")
    meant = new_context().new_page()
    sign_in(meant, "meant@example.com")
    meant.goto(link)
    meant.get_by_role("button", name="Decline").click()
    expect(meant.locator("h1")).to_have_text("Invitation declined")
    answer = meant.goto(link)
    assert answer is not None and answer.status == 410  # as the API answers a used one
