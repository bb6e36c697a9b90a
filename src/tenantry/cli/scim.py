"""`tenantry scim ...`: SCIM provisioning of an organization: the tokens its directory (Okta,
Entra ID) presents at `/scim/v2`, and the rules that place provisioned people."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import CliError, JsonFlag, print_json, print_record, print_table, show

if TYPE_CHECKING:
    from tenantry.client.scim import ScimToken, ScimTokenCreated

app = typer.Typer(no_args_is_help=True, help="SCIM provisioning: tokens and rules.")
token_app = typer.Typer(no_args_is_help=True, help="SCIM tokens: create, list, revoke.")
app.add_typer(token_app, name="token")

OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]
TOKEN_FIELDS = ["id", "name", "display_prefix", "org_id", "created_at", "last_used_at"]


def _render_created(token: ScimTokenCreated) -> None:
    print_record(token, TOKEN_FIELDS[:5])
    typer.echo(f"\nSCIM base URL: {token.base_url}")
    typer.echo(f"Token (shown once, give it to the directory now): {token.secret}")


@token_app.command("create")
def create(
    org: OrgArg,
    name: Annotated[str, typer.Option("--name", help="Which directory holds it.")] = "directory",
    json_output: JsonFlag = False,
) -> None:
    """Create a SCIM token; it is printed once, with the base URL to give the directory."""
    with connection.signed_in() as api:
        token = api.create_scim_token(org, name)
    show(token, json_output, lambda: _render_created(token))


def _rows(tokens: list[ScimToken]) -> None:
    print_table(
        tokens,
        [
            ("ID", lambda t: t.id),
            ("NAME", lambda t: t.name),
            ("PREFIX", lambda t: t.display_prefix),
            ("LAST USED", lambda t: t.last_used_at.isoformat() if t.last_used_at else "never"),
            ("REVOKED", lambda t: t.revoked_at.isoformat() if t.revoked_at else ""),
        ],
        empty="No SCIM tokens.",
    )


@token_app.command("list")
def list_(org: OrgArg, json_output: JsonFlag = False) -> None:
    """List the organization's SCIM tokens and their last use (never their secrets)."""
    with connection.signed_in() as api:
        tokens = list(api.iter_scim_tokens(org))
    show(tokens, json_output, lambda: _rows(tokens))


@token_app.command("revoke")
def revoke(
    org: OrgArg,
    token_id: Annotated[str, typer.Argument(help="The token's id.", show_default=False)],
    json_output: JsonFlag = False,
) -> None:
    """Revoke a SCIM token; the directory's next request with it is refused."""
    with connection.signed_in() as api:
        token = api.revoke_scim_token(org, token_id)
    show(token, json_output, lambda: typer.echo(f"Revoked SCIM token {token.name} ({token.id})."))


@app.command("mapping")
def mapping(
    org: OrgArg,
    file: Annotated[
        str | None,
        typer.Option(
            "--file", help="Rules as JSON (docs/sso.md), `-` for stdin; without it, show them."
        ),
    ] = None,
) -> None:
    """Show or replace the rules that place provisioned people by their groups (always
    printed as JSON, the form they are written in)."""
    with connection.signed_in() as api:
        if file is None:
            print_json(api.scim_mapping(org))
            return
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
        try:
            rules = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(f"the rules are not JSON: {exc}") from None
        if not isinstance(rules, dict):
            raise CliError("the rules are a JSON object (docs/sso.md)")
        found = api.set_scim_mapping(
            org,
            rules=rules.get("rules"),
            default=rules.get("default"),
            deny_unmatched="default" in rules and rules["default"] is None,
            required_groups=rules.get("required_groups"),
        )
    print_json(found)
