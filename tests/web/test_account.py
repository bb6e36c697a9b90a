"""The account page in the browser: profile, password, sessions (revoking one ends that
browser's session on its next request, as the API's tokens end), the export and erasure."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from conftest import PASSWORD, Factory
from web.conftest import LiveServer, check_accessibility, sign_in


def test_profile_password_and_sessions(
    page: Any,
    new_context: Callable[..., Any],
    live_server: LiveServer,
    factory: Factory,
    shots: Any,
) -> None:
    _, email, token = factory.user()
    other = new_context().new_page()
    sign_in(other, email)
    sign_in(page, email)
    page.goto("/account")
    check_accessibility(page, "account")

    page.get_by_label("Full name").fill("Ada Lovelace")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator(".notice")).to_have_text("Profile saved.")
    with live_server.http() as api:
        me = api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["user"]["full_name"] == "Ada Lovelace"

    # Three sessions: the API's token and two browsers. Ending the other browser's one signs
    # it out on its next request.
    rows = page.locator("#sessions-h + .table-wrap tbody tr")
    expect(rows).to_have_count(3)
    page.screenshot(path=str(shots / "account.png"), full_page=True)
    rows.filter(has_not_text="this browser").first.get_by_role("button").click()
    expect(page.locator(".notice")).to_have_text("Session ended.")
    other.reload()
    ended_token = "/sign-in" in other.url
    with live_server.http() as api:
        api_answer = api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    # Sessions are listed oldest first: the API's token was ended, or the other browser was.
    assert ended_token != (api_answer.status_code == 401)

    page.get_by_label("Current password").fill("not it at all")
    page.get_by_label("New password").fill("another long passphrase")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#f-current_password-error")).to_have_text("The current password is wrong")
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password").fill("another long passphrase")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator(".notice")).to_have_text("Password changed; your other sessions ended.")
    expect(rows).to_have_count(1)  # this browser's session stays
    other.reload()
    assert "/sign-in" in other.url


def test_export_and_erasure(page: Any, live_server: LiveServer, factory: Factory) -> None:
    tenant = factory.tenant()
    member_id, _ = factory.member(tenant)
    with live_server.http() as api:
        members = api.get(f"/api/v1/orgs/{tenant.org_id}/members", headers=tenant.headers)
    email = next(m["email"] for m in members.json()["items"] if m["user_id"] == member_id)
    sign_in(page, email)
    page.goto("/account")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download my data").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["user"]["email"] == email
    assert [o["org_id"] for o in exported["organizations"]] == [tenant.org_id]

    erase = page.get_by_role("button", name="Erase my account")
    assert erase.is_disabled()
    page.get_by_label("Type your email").fill(email)
    erase.click()
    page.wait_for_url("**/erased")
    expect(page.locator("h1")).to_have_text("Your account is erased")
    with live_server.http() as api:
        members = api.get(f"/api/v1/orgs/{tenant.org_id}/members", headers=tenant.headers)
    assert member_id not in [m["user_id"] for m in members.json()["items"]]


def test_the_last_owner_cannot_erase_and_is_told_why(page: Any, factory: Factory) -> None:
    tenant = factory.tenant()
    sign_in(page, tenant.owner_email)
    page.goto("/account")
    page.get_by_label("Type your email").fill(tenant.owner_email)
    page.get_by_role("button", name="Erase my account").click()
    expect(page.locator(".form-error")).to_contain_text(
        f"You are the last owner of {tenant.org_slug}"
    )
