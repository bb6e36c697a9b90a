"""The API's interactive docs render in a real browser with every request off the loopback
address aborted: Swagger UI with its "Authorize" for both credential kinds, and ReDoc."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from web.conftest import Offline


def test_swagger_ui_and_redoc_work_with_the_network_cut_off(page: Any, offline: Offline) -> None:
    page.goto("/docs")
    # Swagger UI's bundle is large: a loaded machine takes a while to run it.
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Tenantry", timeout=60_000)
    # Every operation is listed, from the app's own document.
    expect(page.locator(".opblock").first).to_be_visible()
    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".dialog-ux")
    # Both credential kinds, and the password sign-in that fetches an access token.
    for scheme in ("accessToken", "apiKey", "passwordLogin"):
        expect(dialog).to_contain_text(scheme)
    page.goto("/redoc")
    expect(page.locator("redoc h1, .api-info h1").first).to_contain_text("Tenantry", timeout=60_000)
    # ReDoc's bundle names its attribution logo on its CDN, with no option to change it: the
    # page's CSP refuses it before any request leaves, and that refusal is the only one.
    redoc_logo = [e for e in offline.page_errors if "cdn.redoc.ly/redoc/logo-mini.svg" in e]
    assert len(redoc_logo) <= 1
    offline.page_errors[:] = [e for e in offline.page_errors if e not in redoc_logo]
    assert offline.attempted == []
