"""Signing in and out of the dashboard in a real browser, and what the session cookie is."""

from __future__ import annotations

from typing import Any

from conftest import PASSWORD, Factory
from web.conftest import LiveServer, check_accessibility, sign_in, text_of


def test_sign_in_opens_the_org_and_sign_out_ends_the_session(
    page: Any, live_server: LiveServer, factory: Factory, shots: Any
) -> None:
    tenant = factory.tenant("Acme Labs")
    page.goto("/")
    assert page.url.endswith("/sign-in?next=/")
    check_accessibility(page, "sign-in page")
    page.screenshot(path=str(shots / "sign-in.png"))

    sign_in(page, tenant.owner_email)
    assert page.url.endswith(f"/orgs/{tenant.org_slug}")
    assert text_of(page, "h1") == "Acme Labs"
    cookie = next(c for c in page.context.cookies() if c["name"] == "tenantry_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert not cookie["secure"]  # served over plain http on the loopback address
    check_accessibility(page, "overview")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/sign-in")
    assert not [c for c in page.context.cookies() if c["name"] == "tenantry_session"]
    # The cookie's login session was ended on the server: replaying it is refused.
    replay = live_server.http()
    replay.cookies.set("tenantry_session", cookie["value"])
    assert replay.get("/orgs/" + tenant.org_slug).status_code == 303


def test_wrong_password_is_shown_beside_the_form(page: Any, factory: Factory) -> None:
    tenant = factory.tenant()
    sign_in(page, tenant.owner_email, "not the password at all")
    assert page.url.endswith("/sign-in?next=/")
    assert text_of(page, ".form-error") == "Wrong email or password"
    # The email stays filled in; the password does not.
    assert page.get_by_label("Email").input_value() == tenant.owner_email
    assert page.get_by_label("Password").input_value() == ""
    sign_in(page, tenant.owner_email, PASSWORD)
    assert "/orgs/" in page.url
