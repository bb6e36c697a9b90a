"""`tenantry mlflow ...`: Point MLflow's own client at a team."""

from __future__ import annotations

from typing import Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import JsonFlag, print_json
from tenantry.cli.teams import resolve_team

app = typer.Typer(no_args_is_help=True, help="Point MLflow's own client at a team.")


@app.command("uri")
def uri(
    team: Annotated[
        str, typer.Argument(help="Team: its id, or ORG/TEAM-SLUG.", show_default=False)
    ],
    json_output: JsonFlag = False,
) -> None:
    """The team's MLflow tracking URI, and the environment a training script needs."""
    with connection.signed_in() as api:
        found = api.get_team(resolve_team(api, team))
        org = api.get_org(found.org_id)
        tracking = f"{api.base_url.rstrip('/')}/mlflow/{org.slug}/{found.slug}"
    if json_output:
        print_json({"tracking_uri": tracking, "team_id": found.id, "org_id": org.id})
        return
    typer.echo(f"Tracking URI of {org.slug}/{found.slug}: {tracking}\n")
    typer.echo(f"export MLFLOW_TRACKING_URI={tracking}")
    typer.echo("export MLFLOW_TRACKING_TOKEN=<an API key of the org>")
    typer.echo("\n# an API key for this team only:")
    typer.echo(f"#   tenantry apikey create {org.slug} --team {found.id}")
