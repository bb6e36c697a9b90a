"""`tenantry prices ...`: the LLM price table (docs/spend.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tenantry.cli import connection
from tenantry.cli.output import CliError, JsonFlag, print_table, show

app = typer.Typer(no_args_is_help=True, help="The LLM price table: list, import.")


@app.command("list")
def list_(
    org: Annotated[str | None, typer.Option(help="What this org is charged")] = None,
    json_output: JsonFlag = False,
) -> None:
    """The price in force for each model, $ per million tokens."""
    with connection.signed_in() as api:
        found = api.org_prices(org) if org else api.list_prices()
    columns = [
        ("PROVIDER", lambda p: p.provider),
        ("MODEL", lambda p: p.model),
        ("INPUT", lambda p: p.input_per_million),
        ("OUTPUT", lambda p: p.output_per_million),
        ("CACHED", lambda p: p.cached_input_per_million or "-"),
        ("CLASS", lambda p: p.substitution_class),
        ("SOURCE", lambda p: p.source),
    ]
    show(found, json_output, lambda: print_table(found.prices, columns, empty="No prices."))


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A price file (JSON).", show_default=False)],
    org: Annotated[str | None, typer.Option(help="The org's own rates instead")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Import a price file: the deployment's (operators) or, with --org, the org's own rates."""
    try:
        data: Any = json.loads(file.read_text())
        prices = list(data["prices"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CliError(f"{file}: not a price file ({exc})") from None
    with connection.signed_in() as api:
        if org:
            found: Any = api.set_org_prices(org, prices)
            message = f"{len(found.prices)} rates set for {org}"
        else:
            found = api.import_prices(prices)
            message = f"{found.imported} prices imported"
    show(found, json_output, lambda: typer.echo(message))
