"""`tenantry model-access ...`: seed 003's `ai_configuration` of an org, a team or an API key
(docs/governance.md#model-access)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tenantry.cli import connection
from tenantry.cli.output import CliError, JsonFlag, show

app = typer.Typer(
    no_args_is_help=True,
    help="Model access: the models, providers and rate limits of an org, a team or an API key.",
)

OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]
TeamOpt = Annotated[str | None, typer.Option("--team", help="A team's (and its subteams')")]
KeyOpt = Annotated[str | None, typer.Option("--api-key", help="An API key's (its id)")]
FIELDS = ("model_access", "providers", "rate_limits", "safety_settings")


def _read_access(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None
    if isinstance(found, dict) and set(found) == {"ai_configuration"}:
        found = found["ai_configuration"]  # the seed's section, as a tenant template has it
    if not isinstance(found, dict):
        raise CliError(f"{path} holds no JSON object")
    unknown = sorted(set(found) - set(FIELDS))
    if unknown:
        raise CliError(f"unknown model access fields: {', '.join(unknown)}")
    return found


def _one_scope(team: str | None, api_key: str | None) -> None:
    if team and api_key:
        raise CliError("give --team or --api-key, not both")


def _render(found: Any) -> None:
    where = found.scope if found.scope == "org" else f"{found.scope} {found.subject_id}"
    typer.echo(f"model access of {where}" + ("" if found.configured else " (nothing set)"))
    for label, patterns in (("models", found.model_access), ("providers", found.providers)):
        for pattern, allowed in patterns.items():
            typer.echo(f"  {label}: {'allow' if allowed else 'deny'} {pattern}")
    for name, value in found.rate_limits.items():
        if value is not None:
            typer.echo(f"  {name}: {value}")


def _render_effective(found: Any) -> None:
    typer.echo("layers: " + ", ".join(f"{x.scope} {x.subject_id}" for x in found.layers))
    for label, view in (("models", found.models), ("providers", found.providers)):
        for effect in ("deny", "allow"):
            for item in view[effect]:
                typer.echo(f"  {label}: {effect} {item['pattern']} ({item['scope']})")
    for name, value in found.rate_limits.items():
        if value is not None:
            typer.echo(f"  {name}: {value['value']} ({value['scope']} {value['subject_id']})")
    if found.check is not None:
        reason = found.check["reason"]
        typer.echo(
            f"decision: {found.check['decision']}" + (f": {reason['detail']}" if reason else "")
        )


@app.command("show")
def show_(
    org: OrgArg,
    team: TeamOpt = None,
    api_key: KeyOpt = None,
    effective: Annotated[
        bool, typer.Option("--effective", help="What applies, every layer resolved")
    ] = False,
    model: Annotated[
        str | None, typer.Option(help="With --effective: may this model be used?")
    ] = None,
    provider: Annotated[str | None, typer.Option(help="With --effective: its provider")] = None,
    json_output: JsonFlag = False,
) -> None:
    """The model access set on the org, a team (--team) or an API key (--api-key); with
    --effective, what applies to a request of that team and key."""
    if not effective:
        _one_scope(team, api_key)
        if model or provider:
            raise CliError("--model and --provider go with --effective")
    with connection.signed_in() as api:
        if effective:
            view = api.effective_model_access(
                org, team=team, api_key=api_key, model_name=model, provider=provider
            )
            show(view, json_output, lambda: _render_effective(view))
            return
        if team:
            found = api.team_model_access(team)
        elif api_key:
            found = api.api_key_model_access(org, api_key)
        else:
            found = api.org_model_access(org)
    show(found, json_output, lambda: _render(found))


@app.command("set")
def set_(
    org: OrgArg,
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            "-f",
            help="Seed 003's ai_configuration as JSON (model_access, providers, "
            "rate_limits, safety_settings)",
        ),
    ],
    team: TeamOpt = None,
    api_key: KeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Replace the model access of the org, a team (--team) or an API key (--api-key)."""
    _one_scope(team, api_key)
    body = _read_access(file)
    with connection.signed_in() as api:
        if team:
            found = api.set_team_model_access(team, **body)
        elif api_key:
            found = api.set_api_key_model_access(org, api_key, **body)
        else:
            found = api.set_org_model_access(org, **body)
    show(found, json_output, lambda: _render(found))
