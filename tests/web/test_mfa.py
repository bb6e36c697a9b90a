"""Two-factor sign-in in a real browser: enrolment on the account page (the QR code shown under
the strict CSP, the first code, backup codes shown once) and the sign-in's code step, with TOTP
codes computed from the server's clock (the test's FrozenClock)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from conftest import Factory
from support.mfa import code_at
from tenantry.kit.clock import FrozenClock
from web.conftest import check_accessibility, sign_in, text_of


def test_enrol_on_the_account_page_then_sign_in_with_a_code(
    page: Any,
    new_context: Callable[..., Any],
    factory: Factory,
    clock: FrozenClock,
    shots: Any,
) -> None:
    tenant = factory.tenant("Acme Labs")
    sign_in(page, tenant.owner_email)
    page.goto("/account")
    page.get_by_role("button", name="Set up two-factor sign-in").click()
    qr = page.locator("#mfa-h ~ figure.qr svg")
    expect(qr).to_be_visible()
    assert qr.bounding_box()["width"] > 100  # drawn, not refused by the page's CSP
    secret = text_of(page, "code.secret")
    check_accessibility(page, "account with an enrolment")
    page.screenshot(path=str(shots / "mfa-enrolment.png"), full_page=True)

    page.get_by_label("Code from the app").fill("000000")
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator("#mfa-code-error")).to_contain_text("That code is not right")
    expect(page.locator("code.secret")).to_have_text(secret)  # the same enrolment, shown again
    page.get_by_label("Code from the app").fill(code_at(secret, clock.now()))
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator(".notice")).to_have_text("Two-factor sign-in is on.")
    codes = page.locator("ul.backup-codes li")
    expect(codes).to_have_count(10)
    backup = codes.first.inner_text().strip()
    page.reload()  # shown once
    expect(page.locator("ul.backup-codes")).to_have_count(0)
    expect(page.locator("#mfa-h + p")).to_contain_text("10 backup codes left")

    # Another browser: the password, then the code.
    other = new_context().new_page()
    sign_in(other, tenant.owner_email)
    expect(other.locator("h1")).to_have_text("Two-factor sign-in")
    check_accessibility(other, "sign-in code step")
    other.get_by_label("Code").fill("123456")
    other.get_by_role("button", name="Verify").click()
    expect(other.locator("#f-code-error")).to_have_text("That code is not right")
    assert not [c for c in other.context.cookies() if c["name"] == "tenantry_session"]
    clock.advance(seconds=30)  # the enrolment's code was used; the next step's is fresh
    other.get_by_label("Code").fill(code_at(secret, clock.now()))
    other.get_by_role("button", name="Verify").click()
    other.wait_for_url(f"**/orgs/{tenant.org_slug}")
    assert text_of(other, "h1") == "Acme Labs"

    # A third browser signs in with a backup code.
    third = new_context().new_page()
    sign_in(third, tenant.owner_email)
    third.get_by_label("Code").fill(backup)
    third.get_by_role("button", name="Verify").click()
    third.wait_for_url(f"**/orgs/{tenant.org_slug}")


def test_an_admin_sets_the_security_policy_and_members_see_it(
    page: Any, new_context: Callable[..., Any], factory: Factory, shots: Any
) -> None:
    tenant = factory.tenant("Policy Labs")
    member_id, member_token = factory.member(tenant)
    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/security")
    check_accessibility(page, "security policy")
    page.get_by_label("Minimum length").fill("4")
    page.get_by_role("button", name="Save security policy").click()
    expect(page.locator("#f-password_min_length-error")).to_contain_text("greater than or equal")
    page.get_by_label("Minimum length").fill("16")
    page.get_by_label("A symbol").check()
    page.get_by_label("Required for every member").check()
    page.get_by_label("Grace days").fill("7")
    page.get_by_label("Networks allowed").fill("10.0.0.0/8")
    page.get_by_role("button", name="Save security policy").click()
    # The browser is on 127.0.0.1: an allowlist without it would lock its author out.
    expect(page.locator("#f-ip_allowlist-error")).to_contain_text("leaves out your own address")
    page.get_by_label("Networks allowed").fill("127.0.0.0/8\n10.0.0.0/8")
    page.get_by_role("button", name="Save security policy").click()
    expect(page.locator(".notice")).to_have_text("Security policy saved.")
    expect(page.get_by_label("Minimum length")).to_have_value("16")
    expect(page.get_by_label("A symbol")).to_be_checked()
    page.screenshot(path=str(shots / "security-policy.png"), full_page=True)

    member = new_context().new_page()
    me = factory.client.get("/api/v1/me", headers={"Authorization": f"Bearer {member_token}"})
    assert me.json()["user"]["id"] == member_id
    sign_in(member, me.json()["user"]["email"])
    member.goto(f"/orgs/{tenant.org_slug}/security")
    expect(member.get_by_label("Minimum length")).to_have_value("16")
    expect(member.get_by_label("Minimum length")).to_be_disabled()
    expect(member.get_by_role("button", name="Save security policy")).to_have_count(0)
