"""`tenantry experiments ...`: A team's experiments and runs."""

from __future__ import annotations

from typing import Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import JsonFlag, print_record, print_table, show
from tenantry.cli.teams import resolve_team

app = typer.Typer(no_args_is_help=True, help="A team's experiments and runs.")

Team = Annotated[str, typer.Argument(help="Team: its id, or ORG/TEAM-SLUG.", show_default=False)]
Experiment = Annotated[str, typer.Argument(help="Experiment id.", show_default=False)]


@app.command("list")
def list_(team: Team, json_output: JsonFlag = False) -> None:
    """The team's experiments."""
    with connection.signed_in() as api:
        found = api.list_experiments(resolve_team(api, team))
    show(found, json_output, lambda: print_table(
        found,
        [("ID", lambda e: e.id), ("NAME", lambda e: e.name), ("DEFAULT", lambda e: e.is_default),
         ("STAGE", lambda e: e.lifecycle_stage)],
        empty="No experiments.", keep_whole=("ID",),
    ))  # fmt: skip


@app.command("show")
def show_(team: Team, experiment: Experiment, json_output: JsonFlag = False) -> None:
    """One experiment."""
    with connection.signed_in() as api:
        found = api.get_experiment(resolve_team(api, team), experiment)
    show(found, json_output, lambda: print_record(found))


@app.command("runs")
def runs(
    team: Team,
    experiment: Experiment,
    filter_text: Annotated[
        str | None,
        typer.Option("--filter", help="e.g. \"metrics.loss < 0.6 and params.optimizer = 'adam'\"."),
    ] = None,
    order_by: Annotated[
        list[str] | None, typer.Option("--order-by", help="e.g. 'metrics.loss ASC' (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    json_output: JsonFlag = False,
) -> None:
    """An experiment's runs, filtered and ordered in MLflow's search language."""
    with connection.signed_in() as api:
        found = api.search_runs(
            resolve_team(api, team), experiment, filter=filter_text, order_by=order_by, limit=limit
        ).items
    show(found, json_output, lambda: print_table(
        found,
        [("RUN", lambda r: r.id), ("NAME", lambda r: r.name), ("STATUS", lambda r: r.status),
         ("METRICS", lambda r: ", ".join(f"{k}={p.value:g}" for k, p in r.metrics.items())),
         ("HYPERPARAMETERS", lambda r: _pairs(r.hyperparameters))],
        empty="No runs.", keep_whole=("RUN",),
    ))  # fmt: skip


def _pairs(values: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


@app.command("compare")
def compare(
    team: Team,
    experiment: Experiment,
    run: Annotated[list[str] | None, typer.Argument(help="Runs (default: the 20 latest).")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Runs side by side: one row per hyperparameter and metric, one column per run."""
    with connection.signed_in() as api:
        found = api.compare_runs(resolve_team(api, team), experiment, run)
    if json_output:
        show(found, True, lambda: None)
        return
    from rich.table import Table

    from tenantry.cli.output import console

    table = Table(show_edge=False, header_style="bold")
    table.add_column("")
    for item in found.runs:
        table.add_column(item.name or item.id[:8], overflow="fold")
    for key in found.hyperparameters:
        table.add_row(f"param {key}", *(r.hyperparameters.get(key, "") for r in found.runs))
    for key in found.metrics:
        cells = [f"{r.metrics[key].value:g}" if key in r.metrics else "" for r in found.runs]
        table.add_row(f"metric {key}", *cells)
    console().print(table)
