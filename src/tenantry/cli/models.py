"""`tenantry models ...`: A team's model registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import JsonFlag, done, print_json, print_record, print_table, show
from tenantry.cli.teams import resolve_team

app = typer.Typer(no_args_is_help=True, help="A team's model registry.")

TEAM = "Team: its id, or ORG/TEAM-SLUG."
Team = Annotated[str, typer.Argument(help=TEAM, show_default=False)]
Model = Annotated[str, typer.Argument(help="Model: its id (mdl_…) or name.", show_default=False)]
Version = Annotated[int, typer.Argument(help="Version number.", show_default=False)]


@app.command("register")
def register(
    team: Team,
    name: Annotated[str, typer.Argument(help="Model name.", show_default=False)],
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", help="A file to store with the new version (streamed).", exists=True
        ),
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="Semantic version, e.g. 1.2.0.")
    ] = None,
    framework: Annotated[str | None, typer.Option("--framework", help="e.g. pytorch.")] = None,
    run: Annotated[str | None, typer.Option("--run", help="The run it came from.")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Register a version of NAME (the model is made on its first version), from a run or a
    file."""
    from tenantry.client.errors import NotFound

    with connection.signed_in() as api:
        team_id = resolve_team(api, team)
        try:
            found = api.get_model(team_id, name)
        except NotFound:
            found = api.register_model(team_id, name, description=description)
        version = api.create_model_version(
            team_id,
            found.id,
            run_id=run,
            source=f"runs:/{run}" if run else None,
            label=label,
            framework=framework,
        )
        uploaded = None
        if file is not None:
            with file.open("rb") as handle:
                uploaded = api.upload_model_file(
                    team_id, found.id, version.version, file.name, handle
                )
    if json_output:
        print_json(
            {
                "model": found.model_dump(),
                "version": version.model_dump(),
                "file": uploaded.model_dump() if uploaded else None,
            }
        )
        return
    typer.echo(f"{found.name} version {version.version} registered ({found.id})")
    if uploaded is not None:
        typer.echo(f"  {uploaded.path}: {uploaded.size} bytes, sha256 {uploaded.sha256}")


@app.command("list")
def list_(
    team: Team,
    filter_text: Annotated[
        str | None, typer.Option("--filter", help="e.g. \"name LIKE 'fraud%'\".")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """The team's registered models."""
    with connection.signed_in() as api:
        found = api.list_models(resolve_team(api, team), filter=filter_text).items
    show(found, json_output, lambda: print_table(
        found,
        [("ID", lambda m: m.id), ("NAME", lambda m: m.name), ("LATEST", lambda m: m.latest_version),
         ("ALIASES", lambda m: ", ".join(f"{a}→{v}" for a, v in m.aliases.items())),
         ("DESCRIPTION", lambda m: m.description)],
        empty="No models.", keep_whole=("ID",),
    ))  # fmt: skip


@app.command("show")
def show_(team: Team, model: Model, json_output: JsonFlag = False) -> None:
    """A model: description, metadata, tags, aliases."""
    with connection.signed_in() as api:
        found = api.get_model(resolve_team(api, team), model)
    show(found, json_output, lambda: print_record(found))


@app.command("versions")
def versions(team: Team, model: Model, json_output: JsonFlag = False) -> None:
    """A model's versions: label, stage, source, downloads and views."""
    with connection.signed_in() as api:
        found = api.list_model_versions(resolve_team(api, team), model)
    show(found, json_output, lambda: print_table(
        found,
        [("VERSION", lambda v: v.version), ("LABEL", lambda v: v.label),
         ("STAGE", lambda v: v.stage),
         ("ALIASES", lambda v: ", ".join(v.aliases)), ("SOURCE", lambda v: v.source),
         ("DOWNLOADS", lambda v: v.downloads), ("VIEWS", lambda v: v.views)],
        empty="No versions.",
    ))  # fmt: skip


@app.command("download")
def download(
    team: Team,
    model: Model,
    version: Version,
    path: Annotated[str, typer.Argument(help="The file's path in the version.")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Where to write it.")] = None,
) -> None:
    """Download a file of a version (counted as a download, with who and when)."""
    target = out or Path(Path(path).name)
    with connection.signed_in() as api:
        team_id = resolve_team(api, team)
        model_id = api.get_model(team_id, model).id
        with target.open("wb") as handle:
            written = api.download_model_file(team_id, model_id, version, path, handle)
    typer.echo(f"{target}: {written} bytes")


@app.command("alias")
def alias(
    team: Team,
    model: Model,
    name: Annotated[str, typer.Argument(help="Alias, e.g. champion.")],
    version: Annotated[int | None, typer.Argument(help="Version it points at.")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Point an alias at a version (or remove it with --delete)."""
    with connection.signed_in() as api:
        team_id = resolve_team(api, team)
        if delete:
            api.delete_model_alias(team_id, model, name)
            done(json_output, f"alias {name} removed", {"alias": name, "deleted": True})
            return
        if version is None:
            raise typer.BadParameter("give the VERSION the alias points at, or --delete")
        found = api.set_model_alias(team_id, model, name, version)
    show(found, json_output, lambda: typer.echo(f"{found.name}@{name} → version {version}"))


@app.command("delete")
def delete(
    team: Team,
    model: Model,
    version: Annotated[int | None, typer.Option("--version", help="Only this version.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Delete a model (or one version) and its uploaded files."""
    with connection.signed_in() as api:
        team_id = resolve_team(api, team)
        if version is None:
            api.delete_model(team_id, model)
            done(json_output, f"model {model} deleted", {"model": model, "deleted": True})
        else:
            api.delete_model_version(team_id, model, version)
            done(json_output, f"version {version} of {model} deleted", {"version": version})
