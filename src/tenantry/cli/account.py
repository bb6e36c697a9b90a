"""`tenantry login`, `logout`, `whoami`, and `tenantry account export|delete`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import config, connection
from tenantry.cli.output import CliError, JsonFlag, done, note, print_json, print_table
from tenantry.client import MfaRequired, Unauthenticated

if TYPE_CHECKING:
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
    code: Annotated[
        str | None,
        typer.Option(
            "--code",
            help="A code of your authenticator app (or a backup code), if you use two-factor "
            "sign-in; asked for when needed.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Sign in and keep the session in the user's config directory."""
    stored = config.load()
    url = connection.server_url(stored, server).rstrip("/")
    password = _read_password(password_stdin)
    with connection.anonymous(url) as api:
        try:
            tokens = api.login(email, password)
        except MfaRequired as step:
            if step.enrolment_required:
                # An org's policy requires a second factor: enrol it now, as part of signing in.
                from tenantry.cli.mfa import _show_enrolment

                note(f"{step.step.required_by} requires two-factor sign-in.")
                _show_enrolment(api.start_mfa_enrolment_for_sign_in(step.mfa_token))
            given = code or str(typer.prompt("Two-factor code", err=True)).strip()
            finished = api.complete_mfa(step.mfa_token, given)
            if finished.backup_codes:
                from tenantry.cli.mfa import show_backup_codes

                show_backup_codes(finished.backup_codes, err=json_output)
            tokens = finished
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


# ---- `tenantry account ...`: the account's personal data ----

app = typer.Typer(
    no_args_is_help=True, help="Your account's personal data: export it, or erase the account."
)


@app.command("export")
def export(
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Write the export to FILE (mode 0600) instead of stdout."
        ),
    ] = None,
) -> None:
    """Download everything the server holds about your account, as JSON."""
    with connection.signed_in() as api:
        data = api.export_my_data()
    text = json.dumps(data, indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    _write_private(output, text)
    note(f"Wrote your data to {output}")


def _write_private(path: Path, text: str) -> None:
    # Personal data: readable by its owner only, from the moment the file exists.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


@app.command("delete")
def delete(
    confirm: Annotated[
        str, typer.Option("--confirm", help="Your account's email, typed back.", show_default=False)
    ],
    json_output: JsonFlag = False,
) -> None:
    """Erase your account and its personal data, for good. Refused while you are the last owner
    of an organization: transfer ownership or delete it first."""
    stored = config.load()
    with connection.signed_in() as api:
        user_id = api.me().user.id
        api.erase_account(user_id, confirm=confirm)
    if stored.email is not None and stored.email.lower() == confirm.strip().lower():
        # The stored login was this account's; its tokens died with it.
        config.save(config.load().signed_out())
    done(json_output, f"Erased account {user_id}.", {"erased": user_id})
