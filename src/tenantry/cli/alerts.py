"""`tenantry alerts ...`: budget alerts (docs/spend.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import JsonFlag, print_record, print_table, show

app = typer.Typer(no_args_is_help=True, help="Budget alerts: list, ack.")


@app.command("list")
def list_(
    org: Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)],
    open_only: Annotated[bool, typer.Option("--open", help="Unacknowledged only")] = False,
    json_output: JsonFlag = False,
) -> None:
    """The org's budget alerts, oldest first."""
    with connection.signed_in() as api:
        found = api.budget_alerts(org, open_only=open_only or None)
    columns = [
        ("ID", lambda a: a.id),
        ("TYPE", lambda a: a.type),
        ("BUDGET", lambda a: a.budget_id),
        ("THRESHOLD", lambda a: f"{a.threshold}%"),
        ("SPENT", lambda a: f"{a.spent} of {a.amount}"),
        ("ACKNOWLEDGED", lambda a: "yes" if a.acknowledged else "no"),
    ]
    show(found, json_output, lambda: print_table(found.alerts, columns, empty="No alerts."))


@app.command("ack")
def ack(
    alert_id: Annotated[str, typer.Argument(show_default=False)], json_output: JsonFlag = False
) -> None:
    """Mark an alert seen."""
    with connection.signed_in() as api:
        found = api.acknowledge_alert(alert_id)
    show(found, json_output, lambda: print_record(found.alert))
