"""Webhooks in the browser: an endpoint pointing at a real receiver on loopback is added with
its event types (its secret shown once), a test event is delivered by the worker and shows in
the delivery log with its status, attempts and response code, a failing delivery shows its
next retry and is redelivered, the secret is rotated (the next delivery verifies with the new
one only), the endpoint is disabled, enabled and deleted. Each change writes the API's audit
event; a URL the API refuses writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect
from standardwebhooks import Webhook, WebhookVerificationError

from conftest import Factory, count_rows
from support.webhook_receiver import Receiver, webhook_receiver
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.webhooks import tasks
from web.conftest import check_accessibility, sign_in
from web.test_page_roles import browser_session


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret-" + "x" * 40,
        password_time_cost=1,
        password_memory_cost_kib=1024,
        webhooks_allow_private_urls=True,  # the receiver is on loopback
        webhooks_max_attempts=4,
    )


@pytest.fixture
def clock() -> FrozenClock:
    # The reference verifier compares the signed timestamp with the wall clock (5 minutes).
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as found:
        yield found


def _row(page: Any, delivery_id: str) -> Any:
    return page.locator(f"tr[data-delivery='{delivery_id}']")


def test_an_endpoint_is_added_tested_rotated_and_removed_in_the_browser(
    page: Any,
    client: TestClient,
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
    receiver: Receiver,
    shots: Any,
) -> None:
    tenant = factory.tenant("Acme Labs")
    api = f"/api/v1/orgs/{tenant.org_id}/webhooks"
    sign_in(page, tenant.owner_email)
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Webhooks").click()
    expect(page.locator("#endpoints-h + .empty .empty-title")).to_have_text("No endpoints yet")
    check_accessibility(page, "webhooks, none yet")

    # No event type ticked: refused beside the choice, as the API refuses it; nothing written.
    before = count_rows(database)
    page.get_by_label("URL").fill(receiver.url)
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.locator("#f-event_types-error")).to_be_visible()
    refused = client.post(
        api, headers=tenant.headers, json={"url": receiver.url, "event_types": []}
    )
    assert refused.status_code == 422
    # A URL that is not one: the guard's words, beside the URL.
    page.get_by_label("URL").fill("ftp://files.example/in")
    page.get_by_label("budget.exceeded").check()
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.locator("#f-url-error")).to_be_visible()
    expect(page.get_by_label("budget.exceeded")).to_be_checked()  # the choice is kept
    assert count_rows(database) == before

    page.get_by_label("URL").fill(receiver.url)
    page.get_by_label("Description").fill("ops alerts")
    page.get_by_label("budget.threshold_reached").check()
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.locator(".notice")).to_have_text("Endpoint added.")
    secret = page.locator("#new-secret").inner_text().strip()
    assert secret.startswith("whsec_")
    [made] = client.get(api, headers=tenant.headers).json()["webhooks"]
    assert made["url"] == receiver.url and made["description"] == "ops alerts"
    assert made["event_types"] == ["budget.exceeded", "budget.threshold_reached"]
    # Shown once: the list has no secret when opened again.
    page.reload()
    expect(page.locator("#new-secret")).to_have_count(0)
    assert secret not in page.content()

    # A test event: queued by the page, delivered by the worker, signed with that secret.
    page.get_by_role("link", name=receiver.url).click()
    page.wait_for_url(f"**/webhooks/{made['id']}")
    page.get_by_role("button", name="Send a test event").click()
    expect(page.locator(".notice")).to_contain_text("Test event queued")
    [queued] = client.get(f"{api}/{made['id']}/deliveries", headers=tenant.headers).json()["items"]
    expect(_row(page, queued["id"]).locator("[data-cell=status]")).to_have_text("pending")
    assert tasks.deliver_due(database, settings, clock=clock).succeeded == 1
    [got] = receiver.requests
    assert Webhook(secret).verify(got.body, got.headers)["type"] == "webhook.test"
    page.reload()
    row = _row(page, queued["id"])
    expect(row.locator("[data-cell=status]")).to_have_text("succeeded")
    expect(row.locator("[data-cell=attempts]")).to_have_text("1")
    expect(row.locator("[data-cell=code]")).to_have_text("200")

    # A failing attempt: its response code and next retry as the API logs them.
    receiver.script = [503]
    page.get_by_role("button", name="Send a test event").click()
    expect(page.locator(".notice")).to_contain_text("Test event queued")
    tasks.deliver_due(database, settings, clock=clock)
    log = client.get(f"{api}/{made['id']}/deliveries", headers=tenant.headers).json()["items"]
    failing = log[-1]
    assert failing["status"] == "pending" and failing["last_status_code"] == 503
    page.reload()
    row = _row(page, failing["id"])
    expect(row.locator("[data-cell=code]")).to_contain_text("503")
    expect(row.locator("[data-cell=attempts]")).to_have_text("1")
    retry_at = datetime.fromisoformat(failing["next_attempt_at"].replace("Z", "+00:00"))
    expect(row.locator("[data-cell=next]")).to_have_text(retry_at.strftime("%Y-%m-%d %H:%M UTC"))
    page.screenshot(path=str(shots / "webhook.png"), full_page=True)
    check_accessibility(page, "an endpoint's delivery log")

    # Redelivered: a new delivery of the same message.
    _row(page, queued["id"]).get_by_role("button", name="Redeliver").click()
    expect(page.locator(".notice")).to_contain_text("Queued again")
    log = client.get(f"{api}/{made['id']}/deliveries", headers=tenant.headers).json()["items"]
    again = [d for d in log if d["redelivery_of"] == queued["id"]]
    assert len(again) == 1 and again[0]["message_id"] == queued["message_id"]
    expect(_row(page, again[0]["id"])).to_be_visible()

    # Rotated: the new secret shown once; what is sent next verifies with it alone.
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.locator(".notice")).to_contain_text("Secret rotated")
    rotated = page.locator("#new-secret").inner_text().strip()
    assert rotated.startswith("whsec_") and rotated != secret
    clock.advance(minutes=1)  # the failing one's retry is due too
    receiver.requests.clear()
    assert tasks.deliver_due(database, settings, clock=clock).succeeded == 2
    for got in receiver.requests:
        Webhook(rotated).verify(got.body, got.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(got.body, got.headers)

    # Disabled: nothing more is sent; enabled again; deleted.
    page.reload()
    page.get_by_role("button", name="Disable").click()
    expect(page.locator(".notice")).to_contain_text("Endpoint disabled")
    assert client.get(f"{api}/{made['id']}", headers=tenant.headers).json()["enabled"] is False
    expect(page.get_by_role("button", name="Send a test event")).to_have_count(0)
    page.get_by_role("button", name="Enable").click()
    expect(page.locator(".notice")).to_have_text("Endpoint enabled.")
    assert client.get(f"{api}/{made['id']}", headers=tenant.headers).json()["enabled"] is True
    page.get_by_role("button", name="Delete endpoint").click()
    page.wait_for_url(f"**/orgs/{tenant.org_slug}/webhooks")
    assert client.get(f"{api}/{made['id']}", headers=tenant.headers).status_code == 404

    events = client.get(
        f"/api/v1/orgs/{tenant.org_id}/audit-events",
        headers=tenant.headers,
        params={"actor": tenant.owner_id, "limit": 100},
    ).json()["items"]
    actions = [e["action"] for e in events if e["target_type"] == "webhook"]
    assert actions == [
        "webhook.created",
        "webhook.tested",
        "webhook.tested",
        "webhook_delivery.redelivered",
        "webhook.secret_rotated",
        "webhook.updated",
        "webhook.updated",
        "webhook.deleted",
    ]


def test_another_orgs_endpoint_answers_404_and_a_reader_cannot_change_one(
    app: object, client: TestClient, factory: Factory, receiver: Receiver
) -> None:
    acme, other = factory.tenant("Acme"), factory.tenant("Other")
    resp = client.post(
        f"/api/v1/orgs/{other.org_id}/webhooks",
        headers=other.headers,
        json={"url": receiver.url, "event_types": ["invoice.paid"]},
    )
    assert resp.status_code == 201, resp.text
    theirs = resp.json()["id"]
    with TestClient(app, raise_server_exceptions=False) as browser:  # type: ignore[arg-type]
        browser_session(browser, acme.owner_email)
        mine = f"/orgs/{acme.org_slug}/webhooks"
        assert browser.get(f"{mine}/{theirs}").status_code == 404
        text = browser.get(mine).text
        token = text.split('name="csrf_token" value="')[1].split('"')[0]
        origin = {"Origin": str(browser.base_url)}
        for action in ("rotate-secret", "disable", "delete", "test"):
            answer = browser.post(
                f"{mine}/{theirs}/{action}",
                data={"csrf_token": token},
                headers=origin,
                follow_redirects=False,
            )
            assert answer.status_code == 404, action
    still = client.get(f"/api/v1/orgs/{other.org_id}/webhooks/{theirs}", headers=other.headers)
    assert still.json()["enabled"] is True

    # A plain member (no webhook:manage) is refused, as the API refuses them.
    _, token_member = factory.member(acme)
    email = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token_member}"}).json()[
        "user"
    ]["email"]
    api_says = client.post(
        f"/api/v1/orgs/{acme.org_id}/webhooks",
        headers={"Authorization": f"Bearer {token_member}"},
        json={"url": receiver.url, "event_types": ["invoice.paid"]},
    ).status_code
    with TestClient(app, raise_server_exceptions=False) as browser:  # type: ignore[arg-type]
        browser_session(browser, email)
        text = browser.get(f"/orgs/{acme.org_slug}").text
        token = text.split('name="csrf_token" value="')[1].split('"')[0]
        forced = browser.post(
            f"/orgs/{acme.org_slug}/webhooks",
            data={"csrf_token": token, "url": receiver.url, "event_types": "invoice.paid"},
            headers={"Origin": str(browser.base_url)},
            follow_redirects=False,
        )
    assert forced.status_code == api_says == 403
    assert (
        client.get(f"/api/v1/orgs/{acme.org_id}/webhooks", headers=acme.headers).json()["webhooks"]
        == []
    )
