"""`tenantry governance ...`: why the policies decide what they do (docs/governance.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import CliError, JsonFlag, show

app = typer.Typer(no_args_is_help=True, help="Governance: explain a decision.")


@app.command("explain")
def explain(
    org: Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)],
    team: Annotated[str, typer.Argument(help="Team id.", show_default=False)],
    model: Annotated[str | None, typer.Option(help="The model asked for")] = None,
    provider: Annotated[str | None, typer.Option(help="Its provider")] = None,
    action: Annotated[str | None, typer.Option(help="The admission's action")] = None,
    cost: Annotated[str | None, typer.Option(help="Estimated cost in dollars")] = None,
    classification: Annotated[str | None, typer.Option(help="Data classification")] = None,
    region: Annotated[str | None, typer.Option(help="Region")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag as key=value (repeatable)")] = None,
    json_output: JsonFlag = False,
) -> None:
    """What the policies would decide for a request of yours now, and why."""
    tags: dict[str, str] = {}
    for item in tag or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"a tag is key=value, not {item!r}")
        tags[key] = value
    with connection.signed_in() as api:
        found = api.explain_governance(
            org, team, action=action, provider=provider, model_name=model,
            estimate={"llm_cost_usd": cost} if cost else None,
            data_classification=classification, region=region, tags=tags or None,
        )  # fmt: skip

    def render() -> None:
        typer.echo(f"decision: {found.decision} ({found.evaluated} policies evaluated)")
        for matched in found.matched:
            seen = ", ".join(f"{k}={v}" for k, v in matched["values"].items())
            actions = ", ".join(matched["actions"])
            typer.echo(f"  matched {matched['name']} v{matched['version']} [{actions}]: {seen}")
        for skipped in found.excepted:
            exception = skipped["exception"]
            typer.echo(f"  excepted {skipped['name']}: {exception['kind']} {exception['value']}")
        access = found.model_access or {}
        if access.get("reason"):
            typer.echo(f"  model access: {access['reason']['detail']}")

    show(found, json_output, render)
