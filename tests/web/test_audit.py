"""The audit trail in the browser: the live view shows a change within 2 seconds of it (the
page waits on its own DOM, nothing sleeps), the table filters as the API's list does, the chain's
verdict is the API's, and the exports are the trail."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

from playwright.sync_api import expect

from conftest import Factory
from web.conftest import LiveServer, check_accessibility, sign_in


def test_the_live_view_shows_a_new_event_within_two_seconds(
    page: Any, live_server: LiveServer, factory: Factory, shots: Any
) -> None:
    tenant = factory.tenant("Acme Labs")
    sign_in(page, tenant.owner_email)
    page.get_by_role("navigation", name="Organization").get_by_role(
        "link", name="Audit trail"
    ).click()
    expect(page.locator("#verdict")).to_contain_text("Intact")
    # The stream is open before the change is made.
    expect(page.locator("#live-rows")).to_have_attribute("data-live", "open")
    expect(page.locator("#live-status")).to_have_text(
        "Connected: new events appear here as they happen."
    )
    assert page.locator("#live-rows tr").count() == 0

    with live_server.http() as api:
        made = api.post(
            f"/api/v1/orgs/{tenant.org_id}/teams", headers=tenant.headers, json={"name": "Vision"}
        )
    changed_at = time.monotonic()
    assert made.status_code == 201, made.text
    row = page.locator("#live-rows tr", has_text="team.created")
    expect(row).to_be_visible(timeout=2_000)
    assert time.monotonic() - changed_at < 2.0
    expect(row).to_contain_text(tenant.owner_email)
    expect(row).to_contain_text(made.json()["id"])
    check_accessibility(page, "audit trail, live")
    page.evaluate("window.scrollTo(0, 0)")  # the navigation where it sits
    page.screenshot(path=str(shots / "audit.png"), full_page=True)

    # A second change lands above the first: newest first.
    with live_server.http() as api:
        api.post(
            f"/api/v1/orgs/{tenant.org_id}/teams", headers=tenant.headers, json={"name": "Speech"}
        )
    expect(page.locator("#live-rows tr")).to_have_count(2, timeout=2_000)
    seqs = [
        int(s)
        for s in page.locator("#live-rows tr").evaluate_all("rows => rows.map(r => r.dataset.seq)")
    ]
    assert seqs == sorted(seqs, reverse=True)


def test_filters_verdict_and_exports_are_the_apis(
    page: Any, live_server: LiveServer, factory: Factory
) -> None:
    tenant = factory.tenant("Acme Labs")
    with live_server.http() as api:
        for name in ("Research", "Platform"):
            resp = api.post(
                f"/api/v1/orgs/{tenant.org_id}/teams", headers=tenant.headers, json={"name": name}
            )
            assert resp.status_code == 201, resp.text
        everything = api.get(
            f"/api/v1/orgs/{tenant.org_id}/audit-events", headers=tenant.headers
        ).json()["items"]
        teams_only = api.get(
            f"/api/v1/orgs/{tenant.org_id}/audit-events",
            headers=tenant.headers,
            params={"action": "team.", "actor": tenant.owner_id},
        ).json()["items"]
        verdict = api.get(
            f"/api/v1/orgs/{tenant.org_id}/audit-events/verify", headers=tenant.headers
        ).json()
    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/audit")
    shown = page.locator("#events tbody tr").evaluate_all("rows => rows.map(r => r.dataset.seq)")
    assert [int(s) for s in shown] == [e["seq"] for e in everything]
    expect(page.locator("#verdict")).to_contain_text(f"{verdict['events_checked']} events checked")

    page.get_by_label("Actor").select_option(label=tenant.owner_email)
    page.get_by_label("Action").fill("team.")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**action=team.*")
    shown = page.locator("#events tbody tr").evaluate_all("rows => rows.map(r => r.dataset.seq)")
    assert [int(s) for s in shown] == [e["seq"] for e in teams_only]
    assert len(shown) == 2

    # The exports hold what the table shows, filters included.
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert [int(r["seq"]) for r in rows] == [e["seq"] for e in teams_only]
    with page.expect_download() as download:
        page.get_by_role("link", name="NDJSON").click()
    lines = [json.loads(x) for x in download.value.path().read_text().splitlines()]
    events = [x for x in lines if x.get("type") == "event"]
    assert [e["seq"] for e in events] == [e["seq"] for e in teams_only]
    assert [e["hash"] for e in events] == [e["hash"] for e in teams_only]
    check_accessibility(page, "audit trail, filtered")


def test_a_bad_filter_is_shown_beside_its_field(page: Any, factory: Factory) -> None:
    tenant = factory.tenant()
    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/audit?since=yesterday")
    expect(page.locator("#f-since-error")).to_be_visible()
    assert page.locator("#events").count() == 0
