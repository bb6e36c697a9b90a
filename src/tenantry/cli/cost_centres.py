"""`tenantry cost-centres list|add|assign|remove|chargeback|focus`: cost centres and the
chargeback of LLM spend (docs/spend.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import JsonFlag, print_record, print_table, show

app = typer.Typer(no_args_is_help=True, help="Cost centres and chargeback of LLM spend.")
OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]
TeamsOpt = Annotated[
    list[str] | None, typer.Option("--team", help="A team id charged here (repeatable).")
]
PeriodOpt = Annotated[str | None, typer.Option(help="current, previous, day, week or YYYY-MM")]


@app.command("list")
def list_(org: OrgArg, json_output: JsonFlag = False) -> None:
    """The org's cost centres and their teams."""
    with connection.signed_in() as api:
        found = api.list_cost_centres(org)
    columns = [
        ("ID", lambda c: c.id),
        ("CODE", lambda c: c.code),
        ("NAME", lambda c: c.name),
        ("TEAMS", lambda c: ", ".join(c.teams)),
    ]
    show(found, json_output, lambda: print_table(found.cost_centres, columns, empty="None yet."))


@app.command("add")
def add(
    org: OrgArg,
    name: Annotated[str, typer.Option(help="Its name.", show_default=False)],
    code: Annotated[str, typer.Option(help="The finance system's code.", show_default=False)],
    team: TeamsOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """A new cost centre, with the teams charged to it."""
    with connection.signed_in() as api:
        found = api.create_cost_centre(org, name=name, code=code, teams=team or [])
    show(found, json_output, lambda: print_record(found))


@app.command("assign")
def assign(
    org: OrgArg,
    cost_centre: Annotated[str, typer.Argument(help="Cost centre id.", show_default=False)],
    team: TeamsOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Set exactly the teams charged to a cost centre."""
    with connection.signed_in() as api:
        found = api.set_cost_centre_teams(org, cost_centre, team or [])
    show(found, json_output, lambda: print_record(found))


@app.command("remove")
def remove(
    org: OrgArg,
    cost_centre: Annotated[str, typer.Argument(help="Cost centre id.", show_default=False)],
) -> None:
    """Delete a cost centre (its teams' spend becomes unallocated)."""
    with connection.signed_in() as api:
        api.delete_cost_centre(org, cost_centre)
    typer.echo(f"Removed {cost_centre}.")


@app.command("chargeback")
def chargeback(
    org: OrgArg,
    method: Annotated[str, typer.Option(help="usage_based or even_split")] = "usage_based",
    period: PeriodOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """What each cost centre is charged for a period (this month by default)."""
    with connection.signed_in() as api:
        found = api.chargeback(org, method=method, period=period)

    def render() -> None:
        typer.echo(f"{found.period['label']}: ${found.total_cost} ({found.method})")
        columns = [
            ("CODE", lambda c: c.code),
            ("NAME", lambda c: c.name),
            ("CHARGED", lambda c: c.charged),
            ("USAGE", lambda c: c.usage_cost),
            ("SHARE %", lambda c: c.share),
        ]
        print_table(found.cost_centres, columns, empty="No cost centres.")
        typer.echo(f"Unallocated: ${found.unallocated.charged}")

    show(found, json_output, render)


@app.command("focus")
def focus(
    org: OrgArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV file to write.")],
    period: PeriodOpt = None,
) -> None:
    """The period's spend as a FinOps FOCUS CSV."""
    with connection.signed_in() as api:
        content = api.chargeback_focus(org, period=period)
    output.write_text(content)
    typer.echo(f"Wrote {output}: {max(0, len(content.splitlines()) - 1)} charge rows")
