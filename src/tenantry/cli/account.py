"""`tenantry login`, `logout` and `whoami`."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from tenantry.cli import config, connection
from tenantry.cli.output import CliError, JsonFlag, done, note, print_json, print_table
from tenantry.client import Unauthenticated
from tenantry.client.models import Me, TeamMembership, Tokens


def _read_password(from_stdin: bool) -> str:
    if not from_stdin:
        return str(typer.prompt("Password", hide_input=True))
    # Only the line ending goes: a password may begin or end with spaces.
    password = sys.stdin.read().rstrip("\r\n")
    if not password:
        raise CliError("--password-stdin: nothing was read from standard input")
    return password


ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="Server URL; defaults to $TENANTRY_SERVER, else the last server signed in "
        f"to, else {connection.DEFAULT_SERVER}.",
        show_default=False,
    ),
]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def login(
    email: Annotated[str, typer.Option("--email", help="Your account's email.")],
    server: ServerOption = None,
    password_stdin: PasswordStdin = False,
    json_output: JsonFlag = False,
) -> None:
    """Sign in and keep the session in the user's config directory."""
    stored = config.load()
    url = connection.server_url(stored, server).rstrip("/")
    password = _read_password(password_stdin)
    with connection.anonymous(url) as api:
        tokens = api.login(email, password)
    _keep_session(url, tokens, json_output)


def signup(
    email: Annotated[str, typer.Option("--email", help="The new account's email.")],
    server: ServerOption = None,
    name: Annotated[str | None, typer.Option("--name", help="Your full name.")] = None,
    password_stdin: PasswordStdin = False,
    json_output: JsonFlag = False,
) -> None:
    """Create an account (for example to accept an invitation) and sign in as it."""
    stored = config.load()
    url = connection.server_url(stored, server).rstrip("/")
    password = _read_password(password_stdin)
    with connection.anonymous(url) as api:
        tokens = api.signup(email, password, full_name=name)
    _keep_session(url, tokens, json_output)


def _keep_session(url: str, tokens: Tokens, json_output: bool) -> None:
    path = config.save(config.StoredLogin(server=url).with_tokens(tokens))
    if os.environ.get(connection.TOKEN_ENV):
        note(f"note: ${connection.TOKEN_ENV} is set and takes precedence over this login")
    if json_output:
        print_json(
            {
                "server": url,
                "user": tokens.user.model_dump(mode="json"),
                "session_id": tokens.session_id,
                "expires_at": tokens.expires_at.isoformat(),
                "config_file": str(path),
            }
        )
    else:
        typer.echo(f"Signed in to {url} as {tokens.user.email}")


def logout(json_output: JsonFlag = False) -> None:
    """End the stored session on the server and forget its tokens."""
    stored = config.load()
    if not stored.access_token:
        done(json_output, "Not signed in.", {"signed_out": False})
        return
    try:
        # The stored session, even when $TENANTRY_TOKEN is set: that one is not ours to end.
        with connection.stored_session(stored) as api:
            api.logout()
    except Unauthenticated:
        pass  # the session had already ended on the server; forgetting it locally is the job
    finally:
        config.save(config.load().signed_out())
    done(json_output, f"Signed out of {stored.server}", {"signed_out": True})


def _render_me(me: Me) -> None:
    user = me.user
    via = f" (API key {me.api_key_id})" if me.api_key_id else ""
    name = f" — {user.full_name}" if user.full_name else ""
    typer.echo(f"{user.email} [{user.username}]{name}{via}")
    print_table(
        me.organizations,
        [
            ("ORG", lambda m: m.org_slug),
            ("NAME", lambda m: m.org_name),
            ("ROLE", lambda m: m.role),
            ("ID", lambda m: m.org_id),
        ],
        empty="No organizations.",
    )
    if me.teams:
        teams: list[TeamMembership] = me.teams
        print_table(
            teams,
            [
                ("TEAM", lambda t: t.team_name),
                ("ROLE", lambda t: t.role),
                ("ID", lambda t: t.team_id),
            ],
            empty="",
        )


def whoami(json_output: JsonFlag = False) -> None:
    """Show who the current credentials belong to, and their organizations and teams."""
    with connection.signed_in() as api:
        me = api.me()
    if json_output:
        print_json(me)
    else:
        _render_me(me)
