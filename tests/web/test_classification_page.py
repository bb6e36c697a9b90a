"""The classification levels page in a real browser: the defaults, seed 001's levels saved as
JSON by an owner and shown as a table, a bad requirement refused in the API's words with
nothing saved, and a plain member kept out as the API keeps them out."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import expect

from conftest import Factory, Tenant
from web.conftest import LiveServer, check_accessibility, sign_in, text_of

SEED_LEVELS = {
    "levels": {
        "restricted": {
            "categories": ["medical", "legal", "security"],
            "handling_requirements": {
                "encryption_required": True,
                "access_logging": True,
                "retention_period_days": 90,
                "geographic_restrictions": ["US"],
                "approval_required": True,
            },
        }
    }
}


def _levels(live_server: LiveServer, tenant: Tenant) -> dict[str, Any]:
    with live_server.http() as api:
        found = api.get(
            f"/api/v1/orgs/{tenant.org_id}/governance/classification", headers=tenant.headers
        )
    return dict(found.json())


def test_owners_edit_the_levels_and_members_read_them(
    page: Any, live_server: LiveServer, factory: Factory, shots: Any, new_context: Any
) -> None:
    acme = factory.tenant("Acme")
    sign_in(page, acme.owner_email)
    page.goto(f"/orgs/{acme.org_slug}")
    page.get_by_role("link", name="Classification levels").click()
    expect(page.get_by_role("heading", name="Classification levels", exact=True)).to_be_visible()
    rows = page.locator("#classification-levels tbody tr")
    expect(rows).to_have_count(4)
    assert text_of(page, "tr[data-level=restricted] th").lower() == "restricted (default)"

    editor = page.get_by_label("Levels as JSON", exact=False)
    editor.fill(json.dumps({"levels": {"restricted": {"handling_requirements": {"x": True}}}}))
    page.get_by_role("button", name="Save levels").click()
    expect(page.locator("#f-levels-error")).to_contain_text("Extra inputs are not permitted")
    assert _levels(live_server, acme)["defined_by"] is None

    editor.fill(json.dumps(SEED_LEVELS))
    page.get_by_role("button", name="Save levels").click()
    expect(page.get_by_text("Classification levels saved.")).to_be_visible()
    restricted = page.locator("tr[data-level=restricted]")
    expect(restricted).to_contain_text("medical, legal, security")
    expect(restricted).to_contain_text("90 days")
    expect(restricted).to_contain_text("US")
    saved = _levels(live_server, acme)["levels"]["restricted"]
    assert saved["handling_requirements"]["approval_required"] is True
    check_accessibility(page, "classification levels")
    page.screenshot(path=str(shots / "classification.png"), full_page=True)

    # A plain member holds no governance:read on the org: no link, and the page answers 403
    # as the API does.
    _, token = factory.member(acme, org_role="member", team_role="viewer")
    me = factory.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    reader = new_context().new_page()
    sign_in(reader, me["user"]["email"])
    reader.goto(f"/orgs/{acme.org_slug}")
    expect(reader.get_by_role("link", name="Classification levels")).to_have_count(0)
    answer = reader.goto(f"/orgs/{acme.org_slug}/governance/classification")
    assert answer is not None and answer.status == 403
    expect(reader.locator("#classification-levels")).to_have_count(0)
