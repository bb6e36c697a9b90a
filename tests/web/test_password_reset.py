"""A forgotten password, with the server mailing through a real SMTP server (aiosmtpd): the
link arrives, sets a new password once, and ends every session of the account."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from conftest import PASSWORD, Factory
from support.smtp import Inbox, smtp_server
from tenantry.config import Settings
from web.conftest import LiveServer, check_accessibility, sign_in

NEW_PASSWORD = "a brand new passphrase 42"


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, database_url: str, inbox: Inbox) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret-" + "x" * 40,
        password_time_cost=1,
        password_memory_cost_kib=1024,
        smtp_host=inbox.host,
        smtp_port=inbox.port,
        smtp_security="none",
        smtp_from="Tenantry <noreply@tenantry.test>",
    )


def _ask_for_a_link(page: Any, email: str) -> None:
    page.goto("/sign-in")
    page.get_by_role("link", name="Forgotten your password?").click()
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Mail me a link").click()
    expect(page.locator(".notice")).to_contain_text("a link to choose a new password")


def test_a_mailed_link_sets_a_new_password_once_and_ends_every_session(
    page: Any,
    new_context: Callable[..., Any],
    live_server: LiveServer,
    factory: Factory,
    inbox: Inbox,
) -> None:
    tenant = factory.tenant()
    elsewhere = new_context().new_page()
    sign_in(elsewhere, tenant.owner_email)  # a session that the reset must end

    _ask_for_a_link(page, tenant.owner_email)
    check_accessibility(page, "forgotten password, sent")
    (mail,) = inbox.to(tenant.owner_email)
    assert mail["Subject"] == "Reset your Tenantry password"
    link = re.search(r"http://\S+/reset-password/\S+", mail.get_content())
    assert link is not None and link.group().startswith(live_server.url)

    page.goto(link.group())
    check_accessibility(page, "reset password")
    page.get_by_label("New password").fill("short")
    page.get_by_role("button", name="Set password").click()
    expect(page.locator("#f-new_password-error")).to_have_text(
        "Password must be at least 12 characters"
    )
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password").click()
    page.wait_for_url("**/sign-in?reset=1")
    expect(page.locator(".notice")).to_have_text("Your password is changed; sign in with it.")

    elsewhere.reload()
    assert "/sign-in" in elsewhere.url  # its session ended with the old password
    sign_in(page, tenant.owner_email, PASSWORD)
    expect(page.locator(".form-error")).to_have_text("Wrong email or password")
    sign_in(page, tenant.owner_email, NEW_PASSWORD)
    assert f"/orgs/{tenant.org_slug}" in page.url

    used = page.goto(link.group())
    assert used is not None and used.status == 410


def test_an_unknown_address_gets_the_same_answer_and_no_mail(page: Any, inbox: Inbox) -> None:
    _ask_for_a_link(page, "nobody@example.com")
    assert inbox.messages == []


def test_without_smtp_there_is_no_reset(
    page: Any, factory: Factory, live_server: LiveServer
) -> None:
    live_server.app.state.settings = live_server.app.state.settings.model_copy(
        update={"smtp_host": None}
    )
    page.goto("/sign-in")
    assert page.get_by_role("link", name="Forgotten your password?").count() == 0
    answer = page.goto("/forgot-password")
    assert answer is not None and answer.status == 404
