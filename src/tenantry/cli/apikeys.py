"""`tenantry apikey ...`: API keys of an organization."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import connection, values
from tenantry.cli.output import JsonFlag, print_record, print_table, show
from tenantry.cli.teams import TEAM_HELP, resolve_team

if TYPE_CHECKING:
    from tenantry.client.models import ApiKey, ApiKeyCreated

app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys.")

KEY_FIELDS = [
    "id",
    "name",
    "display_prefix",
    "org_id",
    "team_id",
    "permissions",
    "expires_at",
    "last_used_at",
    "revoked_at",
]


def _render_created(key: ApiKeyCreated) -> None:
    print_record(key, KEY_FIELDS[:7])
    typer.echo(f"\nSecret (shown once, store it now): {key.secret}")


@app.command("create")
def create(
    org: Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)],
    name: Annotated[str, typer.Option("--name", help="A name to recognise the key by.")] = "cli",
    team: Annotated[
        str | None, typer.Option("--team", help=f"Limit the key to one team: {TEAM_HELP}")
    ] = None,
    permissions: Annotated[
        str | None,
        typer.Option(
            "--permissions",
            help="Comma-separated permissions (e.g. team:read,model:read); default: all of yours.",
        ),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="Lifetime such as 30d, 12h or 90m; default: never."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Create an API key; its secret is printed once."""
    expires_at = values.expires_at(expires)  # before any request: a typo must not cost a key
    with connection.signed_in() as api:
        team_id = resolve_team(api, team) if team else None
        key = api.create_api_key(
            org,
            name=name,
            team_id=team_id,
            permissions=values.comma_list(permissions),
            expires_at=expires_at,
        )
    show(key, json_output, lambda: _render_created(key))


def _rows(keys: list[ApiKey]) -> None:
    print_table(
        keys,
        [
            ("NAME", lambda k: k.name),
            ("PREFIX", lambda k: k.display_prefix),
            ("TEAM", lambda k: k.team_id),
            ("EXPIRES", lambda k: k.expires_at),
            ("LAST USED", lambda k: k.last_used_at),
            ("REVOKED", lambda k: k.revoked_at),
            ("ID", lambda k: k.id),
        ],
        empty="No API keys.",
    )


@app.command("list")
def list_(
    org: Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)],
    json_output: JsonFlag = False,
) -> None:
    """List an organization's API keys (never their secrets)."""
    with connection.signed_in() as api:
        keys = list(api.iter_api_keys(org))
    show(keys, json_output, lambda: _rows(keys))


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id.", show_default=False)],
    json_output: JsonFlag = False,
) -> None:
    """Revoke an API key; it stops working on the next request."""
    with connection.signed_in() as api:
        key = api.revoke_api_key(key_id)
    show(key, json_output, lambda: typer.echo(f"Revoked API key {key.name} ({key.id})."))
