"""`tenantry governance ...`: why the policies decide what they do, and the org's data
classification levels (docs/governance.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tenantry.cli import connection
from tenantry.cli.output import CliError, JsonFlag, show

app = typer.Typer(
    no_args_is_help=True, help="Governance: explain a decision; data classification levels."
)
classification_app = typer.Typer(
    no_args_is_help=True, help="Data classification levels: show, set."
)
app.add_typer(classification_app, name="classification")

OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]


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
        if found.classification is not None:
            level = found.classification
            region = level["region"] or "no region"
            typer.echo(f"  classification {level['level']} ({region}): {level['outcome']}")
            for reason in level["reasons"]:
                typer.echo(f"    {reason['code']}: {reason['detail']}")
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


def _levels_file(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None
    # Seed 001's section works as written: `{"data_classification": {"levels": ...}}`.
    if isinstance(found, dict) and isinstance(found.get("data_classification"), dict):
        found = found["data_classification"]
    if not isinstance(found, dict) or not isinstance(found.get("levels"), dict):
        raise CliError(f'{path} holds no {{"levels": {{...}}}} object')
    levels: dict[str, Any] = found["levels"]
    return levels


def _requirements(needs: dict[str, Any]) -> str:
    shown = []
    for key, value in needs.items():
        if value is True:
            shown.append(key)
        elif isinstance(value, list):
            shown.append(f"{key}={','.join(value)}")
        elif value not in (None, False):
            shown.append(f"{key}={value}")
    return ", ".join(shown) or "-"


@classification_app.command("show")
def classification_show(org: OrgArg, json_output: JsonFlag = False) -> None:
    """The org's levels, each with its categories and handling requirements."""
    with connection.signed_in() as api:
        found = api.classification_levels(org)

    def render() -> None:
        typer.echo(f"defined by: {found.defined_by or 'defaults'}")
        for name, level in found.levels.items():
            categories = ", ".join(level["categories"]) or "-"
            needs = _requirements(level["handling_requirements"])
            typer.echo(f"  {name}: categories {categories}; requires {needs}")

    show(found, json_output, render)


@classification_app.command("set")
def classification_set(
    org: OrgArg,
    file: Annotated[
        Path,
        typer.Option("--file", "-f", help='The levels as JSON: {"levels": {name: {...}}}'),
    ],
    json_output: JsonFlag = False,
) -> None:
    """Replace the org's levels from a JSON file (seed 001's `data_classification` works)."""
    levels = _levels_file(file)
    with connection.signed_in() as api:
        found = api.set_classification_levels(org, levels)
    show(found, json_output, lambda: typer.echo(f"saved {len(levels)} level(s) of {org}"))
