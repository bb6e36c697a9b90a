"""`tenantry webhook ...`: an org's outbound webhook endpoints and their delivery log
(docs/webhooks.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, cast

import typer

from tenantry.cli import connection
from tenantry.cli.output import (
    JsonFlag,
    done,
    note,
    print_json,
    print_record,
    print_table,
    show,
)

if TYPE_CHECKING:  # the SDK loads on the first command that calls the server, not at --help
    from tenantry.client.webhooks import DeliveryStatus

app = typer.Typer(
    no_args_is_help=True,
    help="Outbound webhooks: add, list, show, enable, disable, rotate-secret, remove, test, "
    "deliveries, redeliver, events.",
)

OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]
WebhookArg = Annotated[str, typer.Argument(help="Endpoint id (whk_…).", show_default=False)]
SHOWN = ["id", "url", "description", "event_types", "enabled", "disabled_reason",
         "consecutive_failures", "created_at"]  # fmt: skip
DELIVERY_COLUMNS = [
    ("ID", lambda d: d.id),
    ("EVENT", lambda d: d.event_type),
    ("STATUS", lambda d: d.status),
    ("ATTEMPTS", lambda d: str(d.attempts)),
    ("LAST", lambda d: str(d.last_status_code or d.last_error or "")),
    ("MS", lambda d: "" if d.last_duration_ms is None else str(d.last_duration_ms)),
    ("NEXT", lambda d: d.next_attempt_at.isoformat() if d.next_attempt_at else ""),
]


@app.command("add")
def add(
    org: OrgArg,
    url: Annotated[str, typer.Argument(help="The receiver's https URL.", show_default=False)],
    event: Annotated[
        list[str],
        typer.Option("--event", "-e", help="An event type to send (repeat); see `events`"),
    ],
    description: Annotated[str | None, typer.Option(help="What it is for")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Add it turned off")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Add an endpoint. Its signing secret is printed this once: keep it."""
    with connection.signed_in() as api:
        made = api.create_webhook(
            org, url, event, description=description, enabled=False if disabled else None
        )
    if json_output:
        print_json(made)
        return
    print_record(made, SHOWN)
    typer.echo(f"secret  {made.secret}")
    note("The secret is shown only now; verify deliveries with it (docs/webhooks.md).")


@app.command("list")
def list_(org: OrgArg, json_output: JsonFlag = False) -> None:
    """The org's endpoints."""
    with connection.signed_in() as api:
        found = api.list_webhooks(org)
    columns = [
        ("ID", lambda w: w.id),
        ("URL", lambda w: w.url),
        ("EVENTS", lambda w: ", ".join(w.event_types)),
        ("ENABLED", lambda w: "yes" if w.enabled else f"no ({w.disabled_reason})"),
        ("FAILURES", lambda w: str(w.consecutive_failures)),
    ]
    show(found, json_output, lambda: print_table(found.webhooks, columns, empty="No webhooks."))


@app.command("show")
def show_(org: OrgArg, webhook_id: WebhookArg, json_output: JsonFlag = False) -> None:
    with connection.signed_in() as api:
        found = api.get_webhook(org, webhook_id)
    show(found, json_output, lambda: print_record(found, SHOWN))


def _set_enabled(org: str, webhook_id: str, enabled: bool, json_output: bool) -> None:
    with connection.signed_in() as api:
        found = api.update_webhook(org, webhook_id, enabled=enabled)
    show(found, json_output, lambda: print_record(found, SHOWN))


@app.command("enable")
def enable(org: OrgArg, webhook_id: WebhookArg, json_output: JsonFlag = False) -> None:
    """Turn it on again (its failure count starts afresh; pending deliveries resume)."""
    _set_enabled(org, webhook_id, True, json_output)


@app.command("disable")
def disable(org: OrgArg, webhook_id: WebhookArg, json_output: JsonFlag = False) -> None:
    """Turn it off: nothing is sent to it until it is enabled."""
    _set_enabled(org, webhook_id, False, json_output)


@app.command("remove")
def remove(org: OrgArg, webhook_id: WebhookArg, json_output: JsonFlag = False) -> None:
    """Remove it with its delivery log."""
    with connection.signed_in() as api:
        api.delete_webhook(org, webhook_id)
    done(json_output, f"Removed {webhook_id}", {"id": webhook_id, "removed": True})


@app.command("rotate-secret")
def rotate_secret(org: OrgArg, webhook_id: WebhookArg, json_output: JsonFlag = False) -> None:
    """Give it a new signing secret, printed this once; the old one signs nothing more."""
    with connection.signed_in() as api:
        rotated = api.rotate_webhook_secret(org, webhook_id)
    if json_output:
        print_json(rotated)
        return
    print_record(rotated, SHOWN)
    typer.echo(f"secret  {rotated.secret}")
    note("The secret is shown only now; give it to the receiver before its next delivery.")


@app.command("test")
def test(org: OrgArg, webhook_id: WebhookArg, json_output: JsonFlag = False) -> None:
    """Queue a `webhook.test` event for it; follow it with `deliveries`."""
    with connection.signed_in() as api:
        queued = api.send_webhook_test(org, webhook_id)
    show(queued, json_output, lambda: print_record(queued))


@app.command("deliveries")
def deliveries(
    org: OrgArg,
    webhook_id: WebhookArg,
    status: Annotated[
        str | None, typer.Option(help="pending, succeeded or failed", show_default=False)
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """The endpoint's delivery log, oldest first."""
    if status not in (None, "pending", "succeeded", "failed"):
        raise typer.BadParameter("pending, succeeded or failed", param_hint="--status")
    with connection.signed_in() as api:
        wanted = cast("DeliveryStatus | None", status)
        found = list(api.iter_webhook_deliveries(org, webhook_id, status=wanted))
    show(found, json_output, lambda: print_table(found, DELIVERY_COLUMNS, empty="No deliveries."))


@app.command("redeliver")
def redeliver(
    org: OrgArg,
    webhook_id: WebhookArg,
    delivery_id: Annotated[str, typer.Argument(help="Delivery id (whd_…).", show_default=False)],
    json_output: JsonFlag = False,
) -> None:
    """Send a delivery's message again (same webhook-id, same body)."""
    with connection.signed_in() as api:
        queued = api.redeliver_webhook(org, webhook_id, delivery_id)
    show(queued, json_output, lambda: print_record(queued))


@app.command("events")
def events(json_output: JsonFlag = False) -> None:
    """The event types an endpoint can subscribe to."""
    with connection.signed_in() as api:
        found = api.webhook_event_types()
    columns = [("TYPE", lambda t: t.type), ("DESCRIPTION", lambda t: t.description)]
    show(found, json_output, lambda: print_table(found.event_types, columns, empty="None."))
