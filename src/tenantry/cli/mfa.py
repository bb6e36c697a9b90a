"""`tenantry mfa ...`: the signed-in person's two-factor sign-in (TOTP)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import JsonFlag, done, print_json

if TYPE_CHECKING:
    from tenantry.client.models import BackupCodes, MfaEnrolment

app = typer.Typer(no_args_is_help=True, help="Two-factor sign-in: enable, disable, backup codes.")

CodeOption = Annotated[
    str | None,
    typer.Option(
        "--code",
        help="A code of the authenticator app (or a backup code); asked for when left out.",
        show_default=False,
    ),
]


def _code(given: str | None, prompt: str = "Code") -> str:
    # Asked on standard error, so that --json output stays one document.
    return given if given else str(typer.prompt(prompt, err=True)).strip()


def _show_enrolment(enrolment: MfaEnrolment) -> None:
    """On standard error: what a person reads while the command waits for their code."""
    typer.echo("Add this account to your authenticator app:\n", err=True)
    if sys.stderr.isatty():  # a QR code only where someone can scan it
        import segno

        segno.make(enrolment.provisioning_uri, error="m").terminal(out=sys.stderr, compact=True)
    typer.echo(f"  {enrolment.provisioning_uri}\n\nor type the key: {enrolment.secret}\n", err=True)


def _show_codes(codes: BackupCodes) -> None:
    show_backup_codes(codes.backup_codes)


def show_backup_codes(codes: list[str], *, err: bool = False) -> None:
    typer.echo(
        "Backup codes (each signs you in once if you lose the authenticator; keep them safe, "
        "they are not shown again):\n",
        err=err,
    )
    for code in codes:
        typer.echo(f"  {code}", err=err)


@app.command("enable")
def enable(
    code: Annotated[
        str | None,
        typer.Option(
            "--code",
            help="Confirm the enrolment already started with this first code of the app.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Enrol an authenticator app: prints its URI (and a QR code in a terminal) and asks for
    the first code it shows. With --json it prints the URI and key and stops: confirm with
    `tenantry mfa enable --code CODE`."""
    with connection.signed_in() as api:
        if code is None:
            enrolment = api.start_mfa()
            if json_output:
                print_json(enrolment)
                return
            _show_enrolment(enrolment)
            code = _code(None, "Code shown by the app")
        codes = api.confirm_mfa(code)
    if json_output:
        print_json(codes)
    else:
        typer.echo("Two-factor sign-in is on.\n")
        _show_codes(codes)


@app.command("disable")
def disable(code: CodeOption = None, json_output: JsonFlag = False) -> None:
    """Turn two-factor sign-in off (a current code proves it is you)."""
    with connection.signed_in() as api:
        api.disable_mfa(_code(code))
    done(json_output, "Two-factor sign-in is off.", {"enabled": False})


@app.command("backup-codes")
def backup_codes(code: CodeOption = None, json_output: JsonFlag = False) -> None:
    """Make ten new backup codes; the old ones stop working."""
    with connection.signed_in() as api:
        codes = api.regenerate_backup_codes(_code(code))
    if json_output:
        print_json(codes)
    else:
        _show_codes(codes)


@app.command("status")
def status(json_output: JsonFlag = False) -> None:
    """Whether two-factor sign-in is on, and how many backup codes are left."""
    with connection.signed_in() as api:
        found = api.mfa_status()
    if json_output:
        print_json(found)
    elif found.enabled:
        typer.echo(f"Two-factor sign-in is on; {found.backup_codes_remaining} backup codes left.")
    else:
        typer.echo("Two-factor sign-in is off. Turn it on with `tenantry mfa enable`.")
