"""`tenantry webhook ...` against the real app, delivering to a receiver on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from cli.test_cli import Cli, people  # noqa: F401 - the fixture
from conftest import Factory
from support.webhook_receiver import Receiver, webhook_receiver
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.webhooks import tasks


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret-" + "x" * 40,
        password_time_cost=1,
        password_memory_cost_kib=1024,
        webhooks_allow_private_urls=True,
    )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as found:
        yield found


def test_webhooks_from_the_cli(
    people: dict[str, Cli],
    factory: Factory,
    database: Database,
    settings: Settings,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    acme = factory.tenant("Acme")
    ann = people["ann"]
    assert ann.login(acme.owner_email).exit_code == 0
    assert "budget.exceeded" in ann.ok("webhook", "events")

    made = ann.json("webhook", "add", acme.org_slug, receiver.url, "-e", "budget.exceeded")
    assert made["secret"].startswith("whsec_")
    shown = ann.ok("webhook", "add", acme.org_slug, receiver.url + "/2", "-e", "invoice.paid")
    assert "secret  whsec_" in shown
    listed = ann.json("webhook", "list", acme.org_slug)["webhooks"]
    assert [w["event_types"] for w in listed] == [["budget.exceeded"], ["invoice.paid"]]

    queued = ann.json("webhook", "test", acme.org_slug, made["id"])
    tasks.deliver_due(database, settings, clock=clock)
    [got] = receiver.requests
    assert Webhook(made["secret"]).verify(got.body, got.headers)["type"] == "webhook.test"
    [logged] = ann.json("webhook", "deliveries", acme.org_slug, made["id"])
    assert (logged["id"], logged["status"], logged["last_status_code"]) == (
        queued["id"],
        "succeeded",
        200,
    )
    assert "succeeded" in ann.ok("webhook", "deliveries", acme.org_slug, made["id"])

    again = ann.json("webhook", "redeliver", acme.org_slug, made["id"], queued["id"])
    assert again["redelivery_of"] == queued["id"]
    pending = ann.json("webhook", "deliveries", acme.org_slug, made["id"], "--status", "pending")
    assert [d["id"] for d in pending] == [again["id"]]
    # Rotated before the redelivery is sent: it is signed with the new secret, not the old.
    rotated = ann.json("webhook", "rotate-secret", acme.org_slug, made["id"])
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != made["secret"]
    receiver.requests.clear()
    assert tasks.deliver_due(database, settings, clock=clock).succeeded == 1
    [resent] = receiver.requests
    assert Webhook(rotated["secret"]).verify(resent.body, resent.headers)["type"] == "webhook.test"
    with pytest.raises(WebhookVerificationError):
        Webhook(made["secret"]).verify(resent.body, resent.headers)
    assert "secret  whsec_" in ann.ok("webhook", "rotate-secret", acme.org_slug, made["id"])

    assert ann.json("webhook", "disable", acme.org_slug, made["id"])["enabled"] is False
    assert ann.json("webhook", "enable", acme.org_slug, made["id"])["enabled"] is True
    assert ann.json("webhook", "remove", acme.org_slug, made["id"])["removed"] is True
    assert len(ann.json("webhook", "list", acme.org_slug)["webhooks"]) == 1
    refused = ann.run("webhook", "add", acme.org_slug, "https://x.test", "-e", "nope.never")
    assert refused.exit_code != 0 and "unknown" in refused.stderr.lower()
