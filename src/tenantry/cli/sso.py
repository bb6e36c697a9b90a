"""`tenantry sso ...`: an organization's SSO connections (docs/sso.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tenantry.cli import connection, values
from tenantry.cli.output import (
    CliError,
    JsonFlag,
    print_json,
    print_record,
    print_table,
    show,
)

if TYPE_CHECKING:
    from tenantry.client.models import SsoConnection

app = typer.Typer(no_args_is_help=True, help="SSO connections: add, test, enable, map groups.")

OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]
ConnectionArg = Annotated[str, typer.Argument(help="The connection's id.", show_default=False)]
CONNECTION_FIELDS = ["id", "name", "protocol", "preset", "enabled", "tested", "settings",
                     "service_provider"]  # fmt: skip


def _render(conn: SsoConnection) -> None:
    print_record(conn, CONNECTION_FIELDS)


@app.command("add")
def add(
    org: OrgArg,
    name: Annotated[str, typer.Option("--name", help="A name people will see.")],
    protocol: Annotated[str, typer.Option("--protocol", help="oidc or saml.")],
    preset: Annotated[
        str,
        typer.Option(
            "--preset", help="generic, google_workspace, entra_id, okta or auth0 (claim names)."
        ),
    ] = "generic",
    issuer: Annotated[str | None, typer.Option("--issuer", help="OIDC issuer URL.")] = None,
    client_id: Annotated[str | None, typer.Option("--client-id", help="OIDC client id.")] = None,
    client_secret_stdin: Annotated[
        bool, typer.Option("--client-secret-stdin", help="Read the OIDC client secret from stdin.")
    ] = False,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Entra ID tenant id (its issuer is made).")
    ] = None,
    domain: Annotated[
        str | None, typer.Option("--domain", help="Okta or Auth0 domain (its issuer is made).")
    ] = None,
    hosted_domain: Annotated[
        str | None, typer.Option("--hosted-domain", help="Google Workspace domain.")
    ] = None,
    metadata_url: Annotated[
        str | None, typer.Option("--metadata-url", help="SAML IdP metadata URL.")
    ] = None,
    metadata_file: Annotated[
        Path | None, typer.Option("--metadata-file", help="SAML IdP metadata file.")
    ] = None,
    allow_idp_initiated: Annotated[
        bool, typer.Option("--allow-idp-initiated", help="SAML: accept IdP-initiated sign-in.")
    ] = False,
    no_jit: Annotated[
        bool, typer.Option("--no-jit", help="Create no accounts; only existing ones sign in.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Add a connection; it stays disabled until a test sign-in succeeds (`sso test`)."""
    settings: dict[str, Any] = {
        key: value
        for key, value in {
            "issuer": issuer,
            "client_id": client_id,
            "tenant": tenant,
            "domain": domain,
            "hosted_domain": hosted_domain,
            "idp_metadata_url": metadata_url,
        }.items()
        if value is not None
    }
    if allow_idp_initiated:
        settings["allow_idp_initiated"] = True
    secret = sys.stdin.readline().strip() if client_secret_stdin else None
    metadata = metadata_file.read_text() if metadata_file is not None else None
    if protocol not in ("oidc", "saml"):
        raise CliError("--protocol must be oidc or saml")
    with connection.signed_in() as api:
        conn = api.create_sso_connection(
            org,
            name=name,
            protocol="oidc" if protocol == "oidc" else "saml",
            preset=preset,  # type: ignore[arg-type]
            settings=settings,
            client_secret=secret,
            idp_metadata_xml=metadata,
            jit_provisioning=False if no_jit else None,
        )
    show(conn, json_output, lambda: _render(conn))


@app.command("list")
def list_(org: OrgArg, json_output: JsonFlag = False) -> None:
    """List the organization's SSO connections."""
    with connection.signed_in() as api:
        found = api.list_sso_connections(org)

    def rows() -> None:
        print_table(
            found,
            [
                ("NAME", lambda c: c.name),
                ("PROTOCOL", lambda c: c.protocol),
                ("PRESET", lambda c: c.preset),
                ("ENABLED", lambda c: c.enabled),
                ("TESTED", lambda c: c.tested),
                ("ID", lambda c: c.id),
            ],
            empty="No SSO connections.",
        )

    show(found, json_output, rows)


@app.command("test")
def test(
    org: OrgArg,
    connection_id: ConnectionArg,
    result: Annotated[
        bool, typer.Option("--result", help="Show the last test's result instead of starting one.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Start a test sign-in (open the printed address in a browser), or show the last one."""
    with connection.signed_in() as api:
        if result:
            shown = api.sso_test_result(org, connection_id)
            show(shown, json_output, lambda: print_json(shown))
            return
        started = api.start_sso_test(org, connection_id)
    show(
        started,
        json_output,
        lambda: typer.echo(
            f"Open this address in a browser and sign in at the identity provider:\n\n"
            f"  {started.redirect_url}\n\nThen: tenantry sso test {org} {connection_id} --result"
        ),
    )


@app.command("enable")
def enable(org: OrgArg, connection_id: ConnectionArg, json_output: JsonFlag = False) -> None:
    """Enable a connection (after a successful test of its current settings)."""
    with connection.signed_in() as api:
        conn = api.enable_sso_connection(org, connection_id)
    show(conn, json_output, lambda: typer.echo(f"Enabled {conn.name} ({conn.id})."))


@app.command("disable")
def disable(org: OrgArg, connection_id: ConnectionArg, json_output: JsonFlag = False) -> None:
    """Disable a connection: nobody signs in through it until it is enabled again."""
    with connection.signed_in() as api:
        conn = api.disable_sso_connection(org, connection_id)
    show(conn, json_output, lambda: typer.echo(f"Disabled {conn.name} ({conn.id})."))


@app.command("mapping")
def mapping(
    org: OrgArg,
    connection_id: ConnectionArg,
    file: Annotated[
        str | None,
        typer.Option(
            "--file", help="Rules as JSON (docs/sso.md), `-` for stdin; without it, show them."
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Show or replace the rules that map groups and claims to roles and teams."""
    with connection.signed_in() as api:
        if file is None:
            conn = api.get_sso_connection(org, connection_id)
            print_json(conn.mapping)
            return
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
        try:
            rules = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(f"the rules are not JSON: {exc}") from None
        if not isinstance(rules, dict):
            raise CliError("the rules are a JSON object (docs/sso.md)")
        conn = api.set_sso_mapping(
            org,
            connection_id,
            rules=rules.get("rules"),
            default=rules.get("default"),
            deny_unmatched="default" in rules and rules["default"] is None,
            required_groups=rules.get("required_groups"),
        )
    show(conn, json_output, lambda: print_json(conn.mapping))


@app.command("policy")
def policy(
    org: OrgArg,
    require: Annotated[
        bool | None,
        typer.Option(
            "--require/--no-require", help="Require SSO for the verified domains, or stop."
        ),
    ] = None,
    break_glass: Annotated[
        str | None,
        typer.Option("--break-glass", help="Comma-separated owner user ids kept on passwords."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Show the SSO policy, or require SSO for the organization's verified domains."""
    with connection.signed_in() as api:
        if require is None:
            found = api.sso_policy(org)
        else:
            found = api.set_sso_policy(
                org, enforced=require, break_glass=values.comma_list(break_glass) or []
            )
    show(found, json_output, lambda: print_record(found))
