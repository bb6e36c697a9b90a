"""`tenantry costs TEAM --by provider|model|member`: LLM spend (docs/spend.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import JsonFlag, print_table, show
from tenantry.cli.teams import resolve_team

app = typer.Typer(
    help="LLM spend of a team, by provider, model or member.",
    # One command, not a group of them: its options may follow the team.
    context_settings={"allow_interspersed_args": True},
)
BREAKDOWNS = {"provider", "model", "member", "team"}


@app.callback(invoke_without_command=True)
def costs(
    team: Annotated[str, typer.Argument(help="Team id, or ORG/TEAM-SLUG.", show_default=False)],
    by: Annotated[str, typer.Option(help="provider, model, member or team")] = "provider",
    period: Annotated[
        str | None, typer.Option(help="current, previous, day, week or YYYY-MM")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """The team's LLM spend in a period (this month by default), broken down."""
    if by not in BREAKDOWNS:
        raise typer.BadParameter(f"--by is one of {', '.join(sorted(BREAKDOWNS))}")
    with connection.signed_in() as api:
        found = api.team_billing(resolve_team(api, team), period=period)
    billing = found.billing_period
    rows = getattr(billing, f"breakdown_by_{by}")

    def render() -> None:
        typer.echo(f"{billing.label}: ${billing.total_cost} over {billing.total_requests} requests")
        columns = [
            (by.upper(), lambda item: item[0]),
            ("COST", lambda item: item[1].cost),
            ("REQUESTS", lambda item: item[1].requests),
        ]
        if by == "member":
            columns.insert(1, ("EMAIL", lambda item: item[1].email or ""))
        print_table(list(rows.items()), columns, empty="No calls in this period.")
        if billing.unpriced.get("requests"):
            typer.echo(f"{billing.unpriced['requests']} calls had no price (see --json).")

    show(found, json_output, render)
