"""What protects the pages: a form posted from another site is refused (Origin check and
CSRF token), a viewer sees no admin controls and forcing a URL answers as the API does, the
headers every page carries, and the dashboard reaching nothing off the machine."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from conftest import Factory, Tenant, bearer
from web.conftest import LiveServer, Offline, sign_in

EVIL_ORIGIN = "http://localhost:9"  # another site


def _teams(live_server: LiveServer, tenant: Tenant) -> list[str]:
    with live_server.http() as api:
        found = api.get(f"/api/v1/orgs/{tenant.org_id}/teams", headers=tenant.headers)
    return [t["name"] for t in found.json()["items"]]


def _attack(page: Any, origin: str, target: str) -> int:
    """Serve the attacker's page at `origin` to the signed-in browser: a form that posts itself
    to `target` with a guessed token. The status the dashboard answered."""
    evil = f"""<!doctype html><html><body>
      <form method="post" action="{target}">
        <input name="name" value="Pwned"><input name="csrf_token" value="guessed">
      </form>
      <script>document.forms[0].submit()</script></body></html>"""
    page.context.route(
        f"{origin}/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=evil),
    )
    with page.expect_response(target) as posted:
        page.goto(f"{origin}/prize.html")
    return int(posted.value.status)


def test_a_form_posted_from_another_site_is_refused(
    page: Any, live_server: LiveServer, factory: Factory
) -> None:
    tenant = factory.tenant()
    sign_in(page, tenant.owner_email)
    target = f"{live_server.url}/orgs/{tenant.org_slug}/teams"
    # From another site the browser does not send the session cookie (SameSite=Lax): the
    # post reaches the dashboard signed out and is sent to the sign-in page.
    assert _attack(page, "http://localhost:9", target) == 303
    assert "/sign-in" in page.url
    # From another origin of the same site (another port of this host) the cookie goes along,
    # and the Origin check refuses the form.
    assert _attack(page, "http://127.0.0.1:9", target) == 403
    expect(page.locator(".problem p").first).to_have_text(
        "This form was not sent from one of this service's pages; nothing was changed"
    )
    assert "Pwned" not in _teams(live_server, tenant)


def test_the_token_and_the_origin_are_each_required(
    page: Any, live_server: LiveServer, factory: Factory
) -> None:
    tenant = factory.tenant()
    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/teams")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    cookie = next(c for c in page.context.cookies() if c["name"] == "tenantry_session")
    url = f"/orgs/{tenant.org_slug}/teams"
    with live_server.http() as http:
        http.cookies.set("tenantry_session", cookie["value"])
        same_origin = {"Origin": live_server.url}
        cases = {
            "no token": ({"name": "A"}, same_origin),
            "another session's token": ({"name": "B", "csrf_token": "x" * 43}, same_origin),
            "foreign origin": ({"name": "C", "csrf_token": token}, {"Origin": EVIL_ORIGIN}),
            "no origin or referer": ({"name": "D", "csrf_token": token}, {}),
            "opaque origin": ({"name": "E", "csrf_token": token}, {"Origin": "null"}),
        }
        for why, (form, headers) in cases.items():
            answer = http.post(url, data=form, headers=headers)
            assert answer.status_code == 403, why
        accepted = http.post(url, data={"name": "F", "csrf_token": token}, headers=same_origin)
        assert accepted.status_code == 303
        # A Referer from this site stands in for a missing Origin.
        referred = http.post(
            url,
            data={"name": "G", "csrf_token": token},
            headers={"Referer": f"{live_server.url}/orgs/{tenant.org_slug}/teams"},
        )
        assert referred.status_code == 303
    assert sorted(_teams(live_server, tenant)) == ["F", "G", "default"]


def test_a_viewer_sees_no_admin_controls_and_forcing_a_url_answers_as_the_api(
    page: Any, live_server: LiveServer, factory: Factory, shots: Any
) -> None:
    tenant = factory.tenant("Acme Labs")
    viewer_id, viewer_token = factory.member(tenant, org_role="member", team_role="viewer")
    with live_server.http() as api:
        me = api.get("/api/v1/me", headers=bearer(viewer_token)).json()
    sign_in(page, me["user"]["email"])
    assert page.url.endswith(f"/orgs/{tenant.org_slug}")

    page.goto(f"/orgs/{tenant.org_slug}/teams")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    expect(page.get_by_role("link", name="default")).to_be_visible()
    assert page.get_by_role("button", name="Create team").count() == 0
    page.get_by_role("link", name="default").click()
    page.wait_for_url("**/teams/team_*")
    for control in ("Add member", "Save", "Delete team", "Change role", "Remove"):
        assert page.get_by_role("button", name=control).count() == 0, control
    page.screenshot(path=str(shots / "viewer-team.png"), full_page=True)

    # Forced: the pages answer what the API's routes of the same actions answer.
    forced = {
        f"/orgs/{tenant.org_slug}/members": f"/api/v1/orgs/{tenant.org_id}/members",
        f"/orgs/{tenant.org_slug}/api-keys": f"/api/v1/orgs/{tenant.org_id}/api-keys",
    }
    with live_server.http() as api:
        for page_url, api_url in forced.items():
            expected = api.get(api_url, headers=bearer(viewer_token)).status_code
            answer = page.goto(page_url)
            assert answer is not None
            assert (answer.status, expected) == (403, 403), page_url
    expect(page.locator(".problem h1")).to_have_text("Permission denied")

    posted = page.request.post(
        f"/orgs/{tenant.org_slug}/teams",
        form={"name": "Sneaky", "csrf_token": token or ""},
        headers={"Origin": live_server.url},
    )
    assert posted.status == 403
    assert "Sneaky" not in _teams(live_server, tenant)
    other = factory.tenant("Other Co")
    answer = page.goto(f"/orgs/{other.org_slug}/teams")
    assert answer is not None and answer.status == 404  # another tenant's: as if absent
    assert viewer_id


@pytest.mark.parametrize("path", ["/sign-in", "/static/app.css"])
def test_the_headers_pages_and_assets_carry(live_server: LiveServer, path: str) -> None:
    with live_server.http() as http:
        answer = http.get(path)
    assert answer.status_code == 200
    assert answer.headers["x-content-type-options"] == "nosniff"
    if path == "/sign-in":
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
        assert "frame-ancestors 'none'" in policy
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["referrer-policy"] == "same-origin"
        assert not re.search(r"<script(?![^>]*\bsrc=)", answer.text)  # no inline script
        assert " style=" not in answer.text  # no inline style
    else:
        assert "content-security-policy" not in answer.headers


def test_the_api_is_not_given_the_pages_headers(live_server: LiveServer) -> None:
    with live_server.http() as http:
        answer = http.get("/healthz")
    assert "content-security-policy" not in answer.headers


def test_the_dashboard_works_with_the_network_cut_off(
    page: Any, new_context: Callable[..., Any], factory: Factory, offline: Offline
) -> None:
    """Every request a page makes off the loopback address is aborted (the fixtures do this for
    every test); here each main page loads, its scripts run, and nothing was attempted."""
    tenant = factory.tenant()
    sign_in(page, tenant.owner_email)
    for path in ("", "/teams", "/members", "/api-keys"):
        page.goto(f"/orgs/{tenant.org_slug}{path}")
        assert page.evaluate("typeof htmx") == "object"
        assert page.evaluate("typeof Alpine") == "object"
    page.goto("/account")
    assert offline.attempted == []
