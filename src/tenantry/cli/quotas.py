"""`tenantry quota ...`: Plan quotas and what is left."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import JsonFlag, print_table, show
from tenantry.cli.teams import resolve_team

if TYPE_CHECKING:
    from tenantry.client.metering import Quotas

app = typer.Typer(no_args_is_help=True, help="Plan quotas and what is left.")


def _is_team(ref: str) -> bool:
    return ref.startswith("team_") or "/" in ref


def _rows(found: Quotas) -> None:
    plan = f"Plan: {found.plan}" + (" (custom)" if found.custom else "")
    if found.upgrade_to:
        plan += f"; next plan up: {found.upgrade_to}"
    typer.echo(plan)
    columns = [
        ("QUOTA", lambda q: q.key),
        ("LIMIT", lambda q: q.limit or "unlimited"),
        ("USED", lambda q: q.used),
        ("RESERVED", lambda q: q.reserved),
        ("REMAINING", lambda q: q.remaining),
        ("ENFORCEMENT", lambda q: q.enforcement),
        ("PERIOD", lambda q: q.period),
    ]
    if found.team_id:
        columns.insert(3, ("TEAM USED", lambda q: q.team_used))
    print_table(found.quotas, columns, empty="No quotas.")


@app.command("show")
def show_(
    ref: Annotated[
        str,
        typer.Argument(
            metavar="ORG|TEAM",
            help="Organization id or slug, or a team (team id, or ORG/TEAM-SLUG).",
            show_default=False,
        ),
    ],
    json_output: JsonFlag = False,
) -> None:
    """Each quota of the plan: limit, used, reserved, remaining, enforcement, period."""
    with connection.signed_in() as api:
        team = resolve_team(api, ref) if _is_team(ref) else None
        found = api.team_quotas(team) if team else api.org_quotas(ref)
    show(found, json_output, lambda: _rows(found))
