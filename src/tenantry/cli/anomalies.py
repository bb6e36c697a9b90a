"""`tenantry anomalies list|ack`: days of unusual LLM spend (docs/spend.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import JsonFlag, print_record, print_table, show
from tenantry.cli.teams import resolve_team

app = typer.Typer(no_args_is_help=True, help="Spend anomalies: list, ack.")


@app.command("list")
def list_(
    org: Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)],
    team: Annotated[
        str | None, typer.Option(help="Only this team's (id, or ORG/TEAM-SLUG).")
    ] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Unacknowledged only")] = False,
    json_output: JsonFlag = False,
) -> None:
    """The org's (or a team's) spend anomalies, newest day first."""
    with connection.signed_in() as api:
        if team is not None:
            found = api.team_anomalies(resolve_team(api, team), open_only=open_only or None)
        else:
            found = api.org_anomalies(org, open_only=open_only or None)
    columns = [
        ("ID", lambda a: a.id),
        ("DAY", lambda a: a.day),
        ("WHAT", lambda a: f"{a.dimension} {a.subject}"),
        ("SPENT", lambda a: a.value),
        ("BASELINE", lambda a: a.baseline),
        ("SCORE", lambda a: a.score),
        ("ACKNOWLEDGED", lambda a: "yes" if a.acknowledged else "no"),
    ]
    show(found, json_output, lambda: print_table(found.anomalies, columns, empty="No anomalies."))


@app.command("ack")
def ack(
    anomaly_id: Annotated[str, typer.Argument(show_default=False)], json_output: JsonFlag = False
) -> None:
    """Mark an anomaly seen."""
    with connection.signed_in() as api:
        found = api.acknowledge_anomaly(anomaly_id)
    show(found, json_output, lambda: print_record(found))
